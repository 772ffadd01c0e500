"""Callback deliveries: the outbox the write-back fills and the sender empties.

A sender takes due deliveries with a lease (``take_due``): it counts the attempt and
moves ``next_attempt_at`` to the lease's end in the statement that takes them, so a
second sender skips them (``SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
serialises the takes) until the lease ends. What an attempt did is written only if the
delivery is still pending at that attempt (``record_attempt``): a sender whose lease ran
out and whose delivery was taken again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import CallbackStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import callback_deliveries
from taskhub.db.rows import CallbackAttempt, NewCallbackDelivery

C = callback_deliveries.c


def insert_deliveries(conn: Connection, rows: Sequence[NewCallbackDelivery], now: datetime) -> None:
    """One statement for a chunk's deliveries, each due at once; nothing when none."""
    if not rows:
        return
    conn.execute(
        sa.insert(callback_deliveries),
        [
            {
                **row._asdict(),
                "document": dict(row.document),
                "status": CallbackStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for row in rows
        ],
    )


def take_due(conn: Connection, now: datetime, lease_s: float, limit: int) -> list[RowMapping]:
    """Up to ``limit`` pending deliveries due by ``now``, oldest due first, taken: their
    attempt counted and their ``next_attempt_at`` the end of a lease of ``lease_s``.
    Returned as taken (``attempts`` is the number of the attempt to make)."""
    ids = [
        row[0]
        for row in conn.execute(
            sa.select(C.id)
            .where(C.status == CallbackStatus.PENDING.value, C.next_attempt_at <= now)
            .order_by(C.next_attempt_at, C.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ]
    if not ids:
        return []
    conn.execute(
        sa.update(callback_deliveries)
        .where(one_of(conn, C.id, ids))
        .values(attempts=C.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
    )
    return list(
        conn.execute(
            sa.select(callback_deliveries).where(one_of(conn, C.id, ids)).order_by(C.id)
        ).mappings()
    )


def record_attempt(conn: Connection, result: CallbackAttempt) -> bool:
    """Write what attempt ``result.attempt`` did, if the delivery is still pending at that
    attempt (False: another sender took it again meanwhile, and this changes nothing)."""
    done = result.status != CallbackStatus.PENDING.value
    updated = conn.execute(
        sa.update(callback_deliveries)
        .where(
            C.id == result.id,
            C.attempts == result.attempt,
            C.status == CallbackStatus.PENDING.value,
        )
        .values(
            status=result.status,
            next_attempt_at=None if done else result.next_attempt_at,
            http_status=result.http_status,
            error=result.error,
            last_attempt_at=result.at,
            finished_at=result.at if done else None,
        )
    )
    return bool(updated.rowcount)


VIEW_COLUMNS = (
    C.execution_id,
    C.url,
    C.event,
    C.status,
    C.attempts,
    C.next_attempt_at,
    C.http_status,
    C.error,
    C.last_attempt_at,
    C.finished_at,
)


def latest_for_executions(conn: Connection, execution_ids: Iterable[int]) -> dict[int, RowMapping]:
    """Each execution's newest delivery (a redriven execution that ended again has one
    per ending), by execution id; an execution without any is absent."""
    ids = sorted(set(execution_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(*VIEW_COLUMNS)
        .where(one_of(conn, C.execution_id, ids))
        .order_by(C.execution_id, C.id)
    ).mappings()
    return {row["execution_id"]: row for row in rows}  # the last (newest) wins


def deliveries_of_task(conn: Connection, task_id: Any) -> list[RowMapping]:
    """Every delivery of a task, oldest first (tests and tools)."""
    return list(
        conn.execute(
            sa.select(callback_deliveries).where(C.task_id == task_id).order_by(C.id)
        ).mappings()
    )


def delete_of_tasks(conn: Connection, task_ids: Sequence[Any]) -> None:
    """A deleted task's deliveries go with its executions."""
    if task_ids:
        conn.execute(sa.delete(callback_deliveries).where(C.task_id.in_(task_ids)))
