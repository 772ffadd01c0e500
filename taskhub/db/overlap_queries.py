"""The SQL of the overlap policy: what a clearance reads of a task under one (its policy,
under its row lock; its open executions that have fired or wait) and what it writes
(fired, skipped, waiting), and the release of waiting executions whose task has nothing
running any more (``engine.overlap``).

Only tasks whose policy is not ``allow`` come here, and only their executions carry an
``overlap_state``: the partial index ``ix_executions_overlap_open`` holds their open
ones, and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import OVERLAP_OPEN, executions, scheduled_tasks

T = scheduled_tasks.c
E = executions.c

#: ``executions.overlap_state``: let go by its clearance (it runs until it ends) ...
FIRED: Final = "fired"
#: ... or waiting for the running one to end (``buffer_one``).
WAITING: Final = "waiting"

#: The partial index's own predicate, written as it is, so both databases use it.
_OPEN = sa.text(OVERLAP_OPEN)


def lock_policies(conn: Connection, task_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Lock the tasks (in id order, before any of their executions: the order a writer
    takes) and read their overlap policy; a deleted task is absent."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(T.id, T.overlap).where(one_of(conn, T.id, ids)).order_by(T.id).with_for_update()
    )
    return {row.id: row.overlap for row in rows}


def executions_asked(conn: Connection, execution_ids: Collection[int]) -> dict[int, RowMapping]:
    """What a clearance needs of the executions it is asked about (no lock: their
    tasks' locks are held, and every change of an unfired execution takes it)."""
    ids = sorted(set(execution_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            E.id,
            E.task_id,
            E.scheduled_for,
            E.status,
            E.attempts,
            E.started_at,
            E.overlap_state,
            E.message_id,
        ).where(one_of(conn, E.id, ids))
    ).mappings()
    return {row["id"]: row for row in rows}


def open_of_tasks(conn: Connection, task_ids: Collection[uuid.UUID]) -> Sequence[RowMapping]:
    """The tasks' open executions that fired or wait (the partial index's entries)."""
    ids = sorted(set(task_ids))
    if not ids:
        return []
    return (
        conn.execute(
            sa.select(E.id, E.task_id, E.overlap_state).where(_OPEN, one_of(conn, E.task_id, ids))
        )
        .mappings()
        .all()
    )


def _unfired(ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """Published and not yet let go: the only executions a decision may change."""
    return sa.and_(
        E.id.in_(list(ids)),
        E.status == ExecutionStatus.RUNNING.value,
        E.started_at.is_(None),
    )


def mark_fired(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Let go: marked as begun (as any first send is) and as fired under the policy."""
    if ids:
        conn.execute(
            sa.update(executions).where(_unfired(ids)).values(started_at=now, overlap_state=FIRED)
        )


def mark_skipped(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Never fired: ``skipped``, ended now, with no attempt."""
    if ids:
        conn.execute(
            sa.update(executions)
            .where(_unfired(ids))
            .values(
                status=ExecutionStatus.SKIPPED.value,
                next_attempt_at=None,
                finished_at=now,
                held_by=None,
                message_id=None,
                overlap_state=None,
            )
        )


def mark_waiting(conn: Connection, ids: Sequence[int]) -> None:
    """Waiting (``queued``) with no time to be published until :func:`release_waiting`
    gives it one; held by no process and carried by no message."""
    if ids:
        conn.execute(
            sa.update(executions)
            .where(_unfired(ids))
            .values(
                status=ExecutionStatus.QUEUED.value,
                next_attempt_at=None,
                held_by=None,
                message_id=None,
                overlap_state=WAITING,
            )
        )


def release_waiting(conn: Connection, now: datetime) -> int:
    """Waiting executions whose task has nothing fired still open: due to be published
    now (their clearance decides again). Returns how many.

    One statement over the partial index, whatever the number of tasks; nothing to do
    (no task buffers) costs one look at an empty index."""
    running = executions.alias("running")
    R = running.c
    still_running = (
        sa.select(R.id)
        .where(
            R.task_id == E.task_id,
            sa.text("running.overlap_state IS NOT NULL"),
            sa.text("running.status IN ('queued', 'running')"),
            R.overlap_state == FIRED,
        )
        .exists()
    )
    result = conn.execute(
        sa.update(executions)
        .where(
            _OPEN,
            E.overlap_state == WAITING,
            E.status == ExecutionStatus.QUEUED.value,
            E.next_attempt_at.is_(None),
            sa.not_(still_running),
        )
        .values(next_attempt_at=now)
    )
    return int(result.rowcount)
