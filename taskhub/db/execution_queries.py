"""The SQL of executions and their attempts: the claim's inserts, sends and leases, the
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
from taskhub.db import json_rows
from taskhub.db.dialects import as_uuid, insert, one_of
from taskhub.db.models import UTCDateTime, attempts, executions, scheduled_tasks
from taskhub.db.task_queries import TARGET_COLUMNS

T = scheduled_tasks.c
E = executions.c


def insert_executions(
    conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime
) -> Sequence[RowMapping]:
    """Insert occurrences, created at ``now`` with no attempts yet; one that already has an
    execution is skipped, not doubled.

    Each mapping has ``task_id`` (a UUID or its text), ``scheduled_for``,
    ``idempotency_key``, ``status``, ``next_dispatch_at`` and ``dispatch_count``.
    Returns the rows actually inserted, as ``execution_id`` and ``idempotency_key``
    (which names the occurrence: the caller has the rest).
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        return _insert_executions_pg(conn, rows, now)
    statement = (
        insert(conn, executions)
        .values(created_at=now, attempts=0)
        .on_conflict_do_nothing(index_elements=["task_id", "scheduled_for"])
        .returning(E.id.label("execution_id"), E.idempotency_key)
    )
    return (
        conn.execute(statement, [{**r, "task_id": as_uuid(r["task_id"])} for r in rows])
        .mappings()
        .all()
    )


_INSERT_EXECUTIONS_PG = sa.text(
    """
    INSERT INTO executions (task_id, scheduled_for, idempotency_key, status, attempts,
                            next_dispatch_at, dispatch_count, created_at)
    SELECT task_id, scheduled_for, idempotency_key, status, 0, next_dispatch_at,
           dispatch_count, :now
    FROM json_to_recordset(CAST(:rows AS json))
         AS v(task_id uuid, scheduled_for timestamptz, idempotency_key varchar,
              status varchar, next_dispatch_at timestamptz, dispatch_count integer)
    ON CONFLICT (task_id, scheduled_for) DO NOTHING
    RETURNING id AS execution_id, idempotency_key
    """
).bindparams(sa.bindparam("now", type_=UTCDateTime))


def _insert_executions_pg(
    conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime
) -> Sequence[RowMapping]:
    """One statement over one JSON parameter: no per-row placeholders to build and parse
    (an executemany's cost), no per-element array dumping (``unnest``'s). The rows are
    spelled out field by field: a claim's thousand rows are its hottest loop, and the
    generic encoder's per-value callback cost more than the rest of the encoding."""
    encoded = [
        {
            "task_id": str(r["task_id"]),
            "scheduled_for": json_rows.instant_text(r["scheduled_for"]),
            "idempotency_key": r["idempotency_key"],
            "status": r["status"],
            "next_dispatch_at": json_rows.instant_text(r["next_dispatch_at"]),
            "dispatch_count": r["dispatch_count"],
        }
        for r in rows
    ]
    return (
        conn.execute(_INSERT_EXECUTIONS_PG, {"rows": json_rows.encode_plain(encoded), "now": now})
        .mappings()
        .all()
    )


def claim_dispatchable_executions(
    conn: Connection,
    now: datetime,
    limit: int,
    lead_until: datetime | None = None,
    dead_holders: Sequence[str] = (),
) -> Sequence[RowMapping]:
    """Lock executions whose retry backoff or dispatch lease has run out, or whose send
    a process in ``dead_holders`` started, with what is needed to send them again (their
    task's target and retry policy)."""
    query = (
        sa.select(
            E.id.label("execution_id"),
            E.task_id,
            E.scheduled_for,
            E.idempotency_key,
            E.status,
            E.attempts,
            E.dispatch_count,
            E.next_dispatch_at,
            *TARGET_COLUMNS,
        )
        .join(scheduled_tasks, T.id == E.task_id)
        .where(
            sa.or_(
                E.next_dispatch_at <= now,
                # Published ahead (held by the worker until then): only what was never
                # sent or is waiting in the database. A running execution's lease is
                # never anticipated: its outcome may still come back before the lease
                # ends, and a send held until then would fire it a second time.
                sa.and_(
                    E.status == ExecutionStatus.QUEUED.value,
                    E.next_dispatch_at <= (lead_until or now),
                ),
                # Started by a process that died: its outcome can no longer come back.
                *_held_by_any(dead_holders),
            )
        )
        .order_by(E.next_dispatch_at)
        .limit(limit)
        .with_for_update(of=executions, skip_locked=True)
    )
    return conn.execute(query).mappings().all()


def _held_by_any(processes: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """Running executions started by one of ``processes`` (none: no condition at all,
    and the claim's statement is the usual one)."""
    if not processes:
        return []
    return [sa.and_(E.status == ExecutionStatus.RUNNING.value, E.held_by.in_(list(processes)))]


def mark_dispatched(conn: Connection, leases: Sequence[Mapping[str, Any]]) -> None:
    """Each mapping: ``b_id`` and ``b_lease_until`` (when a tick may send it again)."""
    if not leases:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            _MARK_DISPATCHED_PG,
            {
                "rows": json_rows.encode(
                    [{"id": m["b_id"], "lease_until": m["b_lease_until"]} for m in leases]
                )
            },
        )
        return
    conn.execute(
        sa.update(executions)
        .where(E.id == sa.bindparam("b_id"))
        .values(
            status=ExecutionStatus.RUNNING.value,
            next_dispatch_at=sa.bindparam("b_lease_until"),
            dispatch_count=E.dispatch_count + 1,
            held_by=None,
            message_id=None,
        ),
        list(leases),
    )


_MARK_DISPATCHED_PG = sa.text(
    """
    UPDATE executions AS e
    SET status = 'running', next_dispatch_at = v.lease_until,
        dispatch_count = e.dispatch_count + 1, held_by = NULL, message_id = NULL
    FROM json_to_recordset(CAST(:rows AS json)) AS v(id bigint, lease_until timestamptz)
    WHERE e.id = v.id
    """
)


def defer_executions(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Throttled sends: back to ``queued`` until ``b_next_dispatch_at`` (``b_id``)."""
    if not rows:
        return
    conn.execute(
        sa.update(executions)
        .where(E.id == sa.bindparam("b_id"))
        .values(
            status=ExecutionStatus.QUEUED.value, next_dispatch_at=sa.bindparam("b_next_dispatch_at")
        ),
        list(rows),
    )


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


def update_execution_results(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> None:
    """Each mapping holds ``b_id`` and every column written (``b_status`` ...)."""
    if not updates:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            _UPDATE_EXECUTION_RESULTS_PG, {"rows": json_rows.encode(json_rows.unprefixed(updates))}
        )
        return
    conn.execute(
        sa.update(executions)
        .where(E.id == sa.bindparam("b_id"))
        .values(
            status=sa.bindparam("b_status"),
            attempts=sa.bindparam("b_attempts"),
            next_dispatch_at=sa.bindparam("b_next_dispatch_at"),
            http_status=sa.bindparam("b_http_status"),
            duration_ms=sa.bindparam("b_duration_ms"),
            error=sa.bindparam("b_error"),
            response_excerpt=sa.bindparam("b_response_excerpt"),
            started_at=sa.bindparam("b_started_at"),
            finished_at=sa.bindparam("b_finished_at"),
        ),
        list(updates),
    )


_UPDATE_EXECUTION_RESULTS_PG = sa.text(
    """
    UPDATE executions AS e
    SET status = v.status, attempts = v.attempts, next_dispatch_at = v.next_dispatch_at,
        http_status = v.http_status, duration_ms = v.duration_ms, error = v.error,
        response_excerpt = v.response_excerpt, started_at = v.started_at,
        finished_at = v.finished_at
    FROM json_to_recordset(CAST(:rows AS json))
         AS v(id bigint, status varchar, attempts integer, next_dispatch_at timestamptz,
              http_status integer, duration_ms integer, error text, response_excerpt text,
              started_at timestamptz, finished_at timestamptz)
    WHERE e.id = v.id
    """
)


def insert_attempts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each mapping holds the columns of one attempt; one already written is skipped."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_INSERT_ATTEMPTS_PG, {"rows": json_rows.encode(rows)})
        return
    conn.execute(
        insert(conn, attempts).on_conflict_do_nothing(index_elements=["execution_id", "number"]),
        list(rows),
    )


_INSERT_ATTEMPTS_PG = sa.text(
    """
    INSERT INTO attempts (execution_id, number, started_at, duration_ms, http_status,
                          error_kind, error)
    SELECT execution_id, number, started_at, duration_ms, http_status, error_kind, error
    FROM json_to_recordset(CAST(:rows AS json))
         AS v(execution_id bigint, number integer, started_at timestamptz,
              duration_ms integer, http_status integer, error_kind varchar, error text)
    ON CONFLICT (execution_id, number) DO NOTHING
    """
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
            next_dispatch_at=now,
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
            next_dispatch_at=now,
            attempt_offset=E.attempts,
            finished_at=None,
        )
    )
    return int(result.rowcount)
