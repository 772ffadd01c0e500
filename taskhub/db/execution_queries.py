"""The SQL of executions and their attempts: the claim's inserts, publications and leases, the
write-back's results, listings, and the redrive of dead letters."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import UTCDateTime, attempts, executions, scheduled_tasks
from taskhub.db.recordsets import Recordset
from taskhub.db.rows import (
    AttemptRow,
    AwaitingResult,
    Deferral,
    ExecutionResult,
    NewExecution,
    PublishLease,
)
from taskhub.db.task_queries import TARGET_COLUMNS

T = scheduled_tasks.c
E = executions.c


NEW_EXECUTIONS = Recordset.of_table(NewExecution, executions)


def insert_executions(
    conn: Connection, rows: Sequence[NewExecution], now: datetime
) -> Sequence[RowMapping]:
    """Insert occurrences, created at ``now`` with no attempts yet; one that already has an
    execution is skipped, not doubled. (PostgreSQL: one statement over one JSON
    parameter; SQLite: an executemany.)

    Returns the rows actually inserted, as ``execution_id`` and ``idempotency_key``
    (which names the occurrence: the caller has the rest).
    """
    if not rows:
        return []
    statement = (
        NEW_EXECUTIONS.insert(conn, executions, attempts=0, created_at=now)
        .on_conflict_do_nothing(index_elements=["task_id", "scheduled_for"])
        .returning(E.id.label("execution_id"), E.idempotency_key)
    )
    return conn.execute(statement, NEW_EXECUTIONS.params(conn, rows)).mappings().all()


def claim_publishable_executions(
    conn: Connection,
    now: datetime,
    limit: int,
    lead_until: datetime | None = None,
    dead_holders: Sequence[str] = (),
    held_due_by: datetime | None = None,
) -> Sequence[RowMapping]:
    """Lock executions whose retry backoff or publish lease has run out, or whose fire
    a process in ``dead_holders`` started, with what is needed to publish them again (their
    task's target and retry policy). With ``held_due_by``, a fire a message started
    (``message_id`` set) is taken only if its lease had run out by then: the moment
    its outcome was looked for in the result backend (``holders.recover_outcomes``)."""
    query = (
        sa.select(
            E.id.label("execution_id"),
            E.task_id,
            E.scheduled_for,
            E.idempotency_key,
            E.status,
            E.attempts,
            E.publish_count,
            E.next_attempt_at,
            *TARGET_COLUMNS,
        )
        .join(scheduled_tasks, T.id == E.task_id)
        .where(
            sa.or_(
                E.next_attempt_at <= now,
                # Published ahead (held by the worker until then): only what was never
                # published or is waiting in the database. A running execution's lease is
                # never anticipated: its outcome may still come back before the lease
                # ends, and a fire held until then would fire it a second time.
                sa.and_(
                    E.status == ExecutionStatus.QUEUED.value,
                    E.next_attempt_at <= (lead_until or now),
                ),
                # Started by a process that died: its outcome can no longer come back.
                *_held_by_any(dead_holders),
            )
        )
        .order_by(E.next_attempt_at)
        .limit(limit)
        .with_for_update(of=executions, skip_locked=True)
    )
    if held_due_by is not None and held_due_by < now:
        query = query.where(
            sa.or_(
                E.status != ExecutionStatus.RUNNING.value,
                E.message_id.is_(None),
                E.next_attempt_at <= held_due_by,
                *_held_by_any(dead_holders),
            )
        )
    return conn.execute(query).mappings().all()


def _held_by_any(processes: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """Running executions started by one of ``processes`` (none: no condition at all,
    and the claim's statement is the usual one)."""
    if not processes:
        return []
    return [sa.and_(E.status == ExecutionStatus.RUNNING.value, E.held_by.in_(list(processes)))]


PUBLISH_LEASES = Recordset.of_table(PublishLease, executions, lease_until=UTCDateTime())


def mark_published(conn: Connection, leases: Sequence[PublishLease]) -> None:
    """The executions are published (again): ``running``, not held by any process, until
    their lease ends (when a tick may publish them once more)."""
    if not leases:
        return
    v = PUBLISH_LEASES.source(conn)
    conn.execute(
        sa.update(executions)
        .where(E.id == v.columns["id"])
        .values(
            status=ExecutionStatus.RUNNING.value,
            next_attempt_at=v.columns["lease_until"],
            publish_count=E.publish_count + 1,
            held_by=None,
            message_id=None,
        ),
        PUBLISH_LEASES.params(conn, leases),
    )


DEFERRALS = Recordset.of_table(Deferral, executions)


def defer_executions(conn: Connection, rows: Sequence[Deferral]) -> None:
    """Throttled fires: back to ``queued`` until their ``next_attempt_at``."""
    if not rows:
        return
    DEFERRALS.update_by_id(conn, executions, rows, status=ExecutionStatus.QUEUED.value)


def lock_executions(conn: Connection, execution_ids: Iterable[int]) -> dict[int, RowMapping]:
    ids = sorted(set(execution_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            E.id, E.task_id, E.status, E.attempts, E.attempt_offset, E.scheduled_for, E.started_at
        )
        .where(one_of(conn, E.id, ids))
        .order_by(E.id)
        .with_for_update()
    ).mappings()
    return {row["id"]: row for row in rows}


EXECUTION_RESULTS = Recordset.of_table(ExecutionResult, executions)


def update_execution_results(conn: Connection, updates: Sequence[ExecutionResult]) -> None:
    """Write each execution's every field (by its ``id``)."""
    if not updates:
        return
    EXECUTION_RESULTS.update_by_id(conn, executions, updates)


AWAITING_RESULTS = Recordset.of_table(AwaitingResult, executions)


def release_to_result_check(conn: Connection, rows: Sequence[AwaitingResult]) -> None:
    """Tracked Celery tasks whose message was accepted: due for their result by
    ``result_due_by``, held by no process and carried by no message any more, so neither
    a dead holder's recovery nor a look-up of its message sends them again; only the
    result check ends them."""
    if not rows:
        return
    AWAITING_RESULTS.update_by_id(conn, executions, rows, held_by=None, message_id=None)


ATTEMPTS = Recordset.of_table(AttemptRow, attempts)


def insert_attempts(conn: Connection, rows: Sequence[AttemptRow]) -> None:
    """Write the attempts; one already written is skipped."""
    if not rows:
        return
    conn.execute(
        ATTEMPTS.insert(conn, attempts).on_conflict_do_nothing(
            index_elements=["execution_id", "number"]
        ),
        ATTEMPTS.params(conn, rows),
    )


def executions_of_task(conn: Connection, task_id: uuid.UUID) -> Sequence[RowMapping]:
    return (
        conn.execute(sa.select(executions).where(E.task_id == task_id).order_by(E.scheduled_for))
        .mappings()
        .all()
    )


def attempts_of_execution(conn: Connection, execution_id: int) -> Sequence[RowMapping]:
    return (
        conn.execute(
            sa.select(attempts)
            .where(attempts.c.execution_id == execution_id)
            .order_by(attempts.c.number)
        )
        .mappings()
        .all()
    )


def insert_execution(conn: Connection, values: Mapping[str, Any]) -> RowMapping:
    return (
        conn.execute(sa.insert(executions).values(**values).returning(executions)).mappings().one()
    )


@dataclass(frozen=True)
class ExecutionFilters:
    task_id: uuid.UUID | None = None
    status: str | None = None
    since: datetime | None = None  # scheduled_for >= since
    until: datetime | None = None  # scheduled_for < until
    tags: tuple[tuple[str, str], ...] = ()  # the task's tags, each key == value


def _filtered_executions(
    query: sa.Select[Any], tenant: str, filters: ExecutionFilters
) -> sa.Select[Any]:
    query = query.join(scheduled_tasks, T.id == E.task_id).where(T.tenant == tenant)
    if filters.task_id is not None:
        query = query.where(E.task_id == filters.task_id)
    if filters.status is not None:
        query = query.where(E.status == filters.status)
    if filters.since is not None:
        query = query.where(E.scheduled_for >= filters.since)
    if filters.until is not None:
        query = query.where(E.scheduled_for < filters.until)
    for key, value in filters.tags:
        query = query.where(T.tags[key].as_string() == value)
    return query


def list_executions(
    conn: Connection,
    tenant: str,
    filters: ExecutionFilters,
    before_id: int | None,
    limit: int,
) -> Sequence[RowMapping]:
    """A page of a tenant's executions, newest first, keyset-paged on id."""
    query = _filtered_executions(sa.select(executions), tenant, filters)
    if before_id is not None:
        query = query.where(E.id < before_id)
    return conn.execute(query.order_by(E.id.desc()).limit(limit)).mappings().all()


def count_executions(conn: Connection, tenant: str, filters: ExecutionFilters) -> int:
    """How many of a tenant's executions match ``filters`` (what a bulk redrive would
    take, shown before it is confirmed)."""
    query = _filtered_executions(
        sa.select(sa.func.count()).select_from(executions), tenant, filters
    )
    return int(conn.execute(query).scalar_one())


def get_tenant_execution(conn: Connection, tenant: str, execution_id: int) -> RowMapping | None:
    return (
        conn.execute(
            sa.select(executions)
            .join(scheduled_tasks, T.id == E.task_id)
            .where(E.id == execution_id, T.tenant == tenant)
            .with_for_update(of=executions)
        )
        .mappings()
        .first()
    )


def redrive_execution(conn: Connection, execution_id: int, now: datetime) -> None:
    """A dead letter goes back to ``queued`` with a fresh attempt budget, the same key."""
    conn.execute(
        sa.update(executions)
        .where(E.id == execution_id, E.status == ExecutionStatus.DEAD.value)
        .values(
            status=ExecutionStatus.QUEUED.value,
            next_attempt_at=now,
            attempt_offset=E.attempts,
            finished_at=None,
        )
    )


def lock_dead_letters(
    conn: Connection, tenant: str, filters: ExecutionFilters, after_id: int | None, limit: int
) -> list[int]:
    """Lock the next ``limit`` of a tenant's dead letters matching ``filters``, by
    ascending id after ``after_id`` (a bulk redrive's batches)."""
    dead = ExecutionFilters(
        task_id=filters.task_id,
        status=ExecutionStatus.DEAD.value,
        since=filters.since,
        until=filters.until,
        tags=filters.tags,
    )
    query = _filtered_executions(sa.select(E.id), tenant, dead)
    if after_id is not None:
        query = query.where(E.id > after_id)
    query = query.order_by(E.id).limit(limit).with_for_update(of=executions)
    return [row.id for row in conn.execute(query)]


def redrive_executions(conn: Connection, execution_ids: Sequence[int], now: datetime) -> int:
    """:func:`redrive_execution` for many dead letters at once; how many were redriven."""
    if not execution_ids:
        return 0
    result = conn.execute(
        sa.update(executions)
        .where(E.id.in_(list(execution_ids)), E.status == ExecutionStatus.DEAD.value)
        .values(
            status=ExecutionStatus.QUEUED.value,
            next_attempt_at=now,
            attempt_offset=E.attempts,
            finished_at=None,
        )
    )
    return int(result.rowcount)
