"""All of taskhub's SQL, in one place (procrastinate's rule).

Every function takes an open ``Connection`` inside a transaction chosen by its caller,
so that the caller decides what is atomic. On PostgreSQL claims use ``FOR NO KEY
UPDATE SKIP LOCKED`` on task rows and ``FOR UPDATE SKIP LOCKED`` on next occurrences
and executions (two claimers never wait on, or share, a row); on SQLite
the engine begins every transaction with ``BEGIN IMMEDIATE``, which serialises writers
and gives the same guarantee. "Now" is always bound from Python in UTC.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.definitions import MAX_SPREAD_S
from taskhub.core.statuses import ExecutionStatus
from taskhub.db.models import (
    UTCDateTime,
    api_keys,
    attempts,
    executions,
    metric_counters,
    next_occurrences,
    read_as_json_object,
    read_as_uuid_text,
    scheduled_tasks,
    signing_secrets,
    worker_heartbeats,
)

T = scheduled_tasks.c
D = next_occurrences.c
E = executions.c

#: The seed system's due predicate, less its time: a task that can fall due has a row in
#: ``next_occurrences`` (at its ``next_execution_time``), and no other task has one.
CAN_FALL_DUE = sa.and_(T.is_active, sa.not_(T.is_finished), T.next_execution_time.is_not(None))


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING``."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# --- tasks -----------------------------------------------------------------------------


def insert_task(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    row = conn.execute(sa.insert(scheduled_tasks).values(**values).returning(T.id)).one()
    task_id: uuid.UUID = row.id
    _add_next_occurrences(conn, [task_id])
    return task_id


# Every writer of a task's next_execution_time, is_active or is_finished keeps its row in
# ``next_occurrences`` in step: remove it (while the old values are stored), write, add it
# again if the task can still fall due. The caller holds the task's row lock first (a
# claim never waits for one: it skips locked rows, so the two never deadlock). A claim,
# the hot path, does the same in its own statements (``claim_due_tasks``,
# ``advance_tasks``).


def _remove_next_occurrences(conn: Connection, task_ids: Sequence[uuid.UUID]) -> None:
    """The tasks' rows in ``next_occurrences``, found by their stored next execution time."""
    if task_ids:
        conn.execute(
            sa.delete(next_occurrences).where(
                sa.tuple_(D.scheduled_for, D.task_id).in_(
                    sa.select(T.next_execution_time, T.id).where(_one_of(conn, T.id, task_ids))
                )
            )
        )


def _add_next_occurrences(conn: Connection, task_ids: Sequence[uuid.UUID]) -> None:
    """A row in ``next_occurrences`` for each of the tasks that can fall due."""
    if task_ids:
        conn.execute(
            sa.insert(next_occurrences).from_select(
                ["scheduled_for", "task_id"],
                sa.select(T.next_execution_time, T.id).where(
                    _one_of(conn, T.id, task_ids), CAN_FALL_DUE
                ),
            )
        )


def get_task(conn: Connection, task_id: uuid.UUID) -> RowMapping | None:
    return conn.execute(sa.select(scheduled_tasks).where(T.id == task_id)).mappings().first()


#: What a send needs of its task: the tenant (for its signing secrets) and the target.
TARGET_COLUMNS = (
    T.tenant,
    T.url,
    T.method,
    read_as_json_object(T.headers),
    T.sealed_headers,
    T.body,
    T.timeout_seconds,
    T.rate_limit_max_in_flight,
    T.rate_limit_per_second,
)

#: What a claim reads of a due task: its schedule, window and misfire rule (to plan) and
#: its target (to send); not its name, tags or results. Fewer columns to read and decode
#: (``tags`` is JSON) is a large part of a claim's cost at thousands of rows.
#: The id comes as text (see ``UUIDText``).
CLAIM_COLUMNS = (
    read_as_uuid_text(T.id),
    T.schedule_kind,
    T.cron_expression,
    T.timezone,
    T.interval_seconds,
    T.run_at,
    T.start_at,
    T.end_at,
    T.max_executions,
    T.created_at,
    T.next_execution_time,
    T.occurrence_count,
    T.misfire_policy,
    T.spread_seconds,
    *TARGET_COLUMNS,
)


def _due_tasks(now: datetime, limit: int) -> sa.Select[Any]:
    """The due query: the oldest ``limit`` next occurrences due by ``now``, with their
    tasks' :data:`CLAIM_COLUMNS` (an index scan of ``next_occurrences``' key)."""
    return (
        sa.select(*CLAIM_COLUMNS)
        .select_from(next_occurrences.join(scheduled_tasks, T.id == D.task_id))
        .where(D.scheduled_for <= now)
        .order_by(D.scheduled_for, D.task_id)
        .limit(limit)
    )


def claim_due_tasks_statement(now: datetime, limit: int) -> sa.Select[Any]:
    """PostgreSQL's claim, in one statement (the benchmark prints its plan: it must stay
    an index scan).

    It locks each due row of ``next_occurrences`` and its task row together, skipping
    any that another transaction holds (a claimer, or a writer of the task), and deletes
    the due rows it took. ``FOR NO KEY UPDATE`` on the task: the claim only changes
    non-key columns, so it takes the lock its own UPDATE takes anyway, exclusive among
    claimers. A due row locked whose task was skipped stays, unclaimed.
    """
    claimed = (
        _due_tasks(now, limit)
        .add_columns(sa.literal_column("next_occurrences.ctid").label("due_row"))
        .with_for_update(of=next_occurrences, skip_locked=True)
        .suffix_with("FOR NO KEY UPDATE OF scheduled_tasks SKIP LOCKED")
        .cte("claimed")
    )
    taken = sa.func.array(sa.select(claimed.c.due_row).scalar_subquery())  # a TID scan
    dequeued = (
        sa.delete(next_occurrences)
        .where(sa.literal_column("next_occurrences.ctid") == sa.any_(taken))
        .cte("dequeued")
    )
    return sa.select(*(claimed.c[str(c.key)] for c in CLAIM_COLUMNS)).add_cte(dequeued)


def claim_due_tasks(conn: Connection, now: datetime, limit: int) -> Sequence[RowMapping]:
    """Lock up to ``limit`` due tasks, oldest first, and take their next occurrences out
    of ``next_occurrences`` (:func:`advance_tasks` puts the following ones in); rows
    another claimer holds are skipped.

    Each row holds :data:`CLAIM_COLUMNS`."""
    if conn.dialect.name == "postgresql":
        return conn.execute(claim_due_tasks_statement(now, limit)).mappings().all()
    # SQLite: the transaction began IMMEDIATE, so nobody else writes until it ends.
    rows = conn.execute(_due_tasks(now, limit)).mappings().all()
    if rows:
        conn.execute(
            sa.delete(next_occurrences).where(
                D.scheduled_for == sa.bindparam("b_time"), D.task_id == sa.bindparam("b_id")
            ),
            [{"b_time": r["next_execution_time"], "b_id": _as_uuid(r["id"])} for r in rows],
        )
    return rows


def _json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as one JSON parameter for ``json_to_recordset``: one string, encoded in C,
    where arrays (``unnest``) cost psycopg a Python call per element to dump. Instants
    must be aware; they travel as ISO 8601 in UTC. (Flat rows: no cycle to look for.)

    Each distinct value is converted once per call: a claim's rows share their instants
    (one ``now``, occurrences due at the same second). Equal instants in other zones
    convert to the same UTC text, so sharing a conversion between them is exact."""
    converted: dict[Any, Any] = {}

    def default(value: Any) -> Any:
        text = converted.get(value)
        if text is None:
            text = converted[value] = _json_value(value)
        return text

    return json.dumps(rows, default=default, separators=(",", ":"), check_circular=False)


def _json_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of plain JSON values (instants already text, see :func:`_instant_text`)."""
    return json.dumps(rows, separators=(",", ":"), check_circular=False)


@functools.lru_cache(maxsize=4096)
def _instant_text(value: datetime | None) -> str | None:
    """:func:`_json_value`'s text of an instant, each distinct instant converted once (a
    claim's rows share their due times, leases and ``now``)."""
    return None if value is None else str(_json_value(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            return value.isoformat()
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: taskhub stores aware instants only")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as a JSON row")


def advance_tasks(conn: Connection, advances: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Write each claimed task's new ``next_execution_time`` (by primary key), updated at
    ``now``, and put it in ``next_occurrences`` (the claim took the old one out).

    Each mapping has ``b_id`` (a UUID or its text), ``b_next``, ``b_occurrences`` (added
    to the count) and ``b_finished``. A claimed task is active; one with a next time is
    not finished.
    """
    if not advances:
        return
    if conn.dialect.name == "postgresql":
        rows = [
            {
                "id": str(a["b_id"]),
                "next_time": _instant_text(a["b_next"]),
                "occurrences": a["b_occurrences"],
                "finished": a["b_finished"],
            }
            for a in advances
        ]
        conn.execute(_ADVANCE_TASKS_PG, {"rows": _json_text(rows), "now": now})
        return
    advances = [{**a, "b_id": _as_uuid(a["b_id"])} for a in advances]
    conn.execute(
        sa.update(scheduled_tasks)
        .where(T.id == sa.bindparam("b_id"))
        .values(
            next_execution_time=sa.bindparam("b_next"),
            occurrence_count=T.occurrence_count + sa.bindparam("b_occurrences"),
            is_finished=sa.bindparam("b_finished"),
            updated_at=now,
        ),
        advances,
    )
    following = [
        {"scheduled_for": a["b_next"], "task_id": a["b_id"]}
        for a in advances
        if a["b_next"] is not None
    ]
    if following:
        conn.execute(sa.insert(next_occurrences), following)


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """A task id as SQLite's UUID column binds it (a claim reads ids as text)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


_ADVANCE_TASKS_PG = sa.text(
    """
    WITH v AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json))
            AS v(id uuid, next_time timestamptz, occurrences integer, finished boolean)
    ), advanced AS (
        UPDATE scheduled_tasks AS t
        SET next_execution_time = v.next_time,
            occurrence_count = t.occurrence_count + v.occurrences,
            is_finished = v.finished, updated_at = :now
        FROM v
        WHERE t.id = v.id
    )
    INSERT INTO next_occurrences (scheduled_for, task_id)
    SELECT next_time, id FROM v WHERE next_time IS NOT NULL
    """
).bindparams(sa.bindparam("now", type_=UTCDateTime))


def lock_tasks(conn: Connection, task_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RowMapping]:
    """Lock tasks in id order (a fixed order, so two callbacks never deadlock)."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(*WRITE_BACK_TASK_COLUMNS)
        .where(_one_of(conn, T.id, ids))
        .order_by(T.id)
        .with_for_update()
    ).mappings()
    return {row["id"]: row for row in rows}


#: What a chunk's write-back reads of a task: its retry policy and the columns it
#: updates (not its target, schedule or tags, which it never reads).
WRITE_BACK_TASK_COLUMNS = (
    T.id,
    T.max_attempts,
    T.backoff_seconds,
    T.max_backoff_seconds,
    T.auto_pause_after_failures,
    T.consecutive_failures,
    T.execution_count,
    T.is_active,
    T.is_finished,
    T.last_execution_time,
    T.last_status,
    T.next_execution_time,
    T.paused_at,
    T.paused_by,
    T.paused_reason,
)


def _one_of(
    conn: Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as one array parameter (``= ANY``) rather than
    a placeholder per value, which the driver would parse for every chunk."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        )
    return column.in_(values)


def update_task_results(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> None:
    """Write a chunk's effect on its tasks; each mapping holds ``b_id`` and every column.

    A chunk never changes a task's next time, and never makes a task active or
    unfinished: it only takes the next occurrences of tasks it pauses or finishes out."""
    if not updates:
        return
    _remove_next_occurrences(
        conn,
        [_as_uuid(u["b_id"]) for u in updates if u["b_is_finished"] or not u["b_is_active"]],
    )
    if conn.dialect.name == "postgresql":
        conn.execute(_UPDATE_TASK_RESULTS_PG, {"rows": _json_rows(_unprefixed(updates))})
        return
    conn.execute(
        sa.update(scheduled_tasks)
        .where(T.id == sa.bindparam("b_id"))
        .values(
            last_execution_time=sa.bindparam("b_last_execution_time"),
            last_status=sa.bindparam("b_last_status"),
            execution_count=sa.bindparam("b_execution_count"),
            consecutive_failures=sa.bindparam("b_consecutive_failures"),
            is_finished=sa.bindparam("b_is_finished"),
            is_active=sa.bindparam("b_is_active"),
            paused_by=sa.bindparam("b_paused_by"),
            paused_reason=sa.bindparam("b_paused_reason"),
            paused_at=sa.bindparam("b_paused_at"),
            updated_at=sa.bindparam("b_now"),
        ),
        list(updates),
    )


_UPDATE_TASK_RESULTS_PG = sa.text(
    """
    UPDATE scheduled_tasks AS t
    SET last_execution_time = v.last_execution_time, last_status = v.last_status,
        execution_count = v.execution_count, consecutive_failures = v.consecutive_failures,
        is_finished = v.is_finished, is_active = v.is_active, paused_by = v.paused_by,
        paused_reason = v.paused_reason, paused_at = v.paused_at, updated_at = v.now
    FROM json_to_recordset(CAST(:rows AS json))
         AS v(id uuid, last_execution_time timestamptz, last_status varchar,
              execution_count integer, consecutive_failures integer, is_finished boolean,
              is_active boolean, paused_by varchar, paused_reason text,
              paused_at timestamptz, now timestamptz)
    WHERE t.id = v.id
    """
)


def _unprefixed(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Executemany's ``b_``-named parameters as a JSON row's fields (``b_id`` → ``id``)."""
    return [{key.removeprefix("b_"): value for key, value in row.items()} for row in rows]


def tasks_with_open_executions(conn: Connection, task_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    ids = list(set(task_ids))
    if not ids:
        return set()
    open_statuses = [ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value]
    rows = conn.execute(
        sa.select(E.task_id)
        .where(_one_of(conn, E.task_id, ids), E.status.in_(open_statuses))
        .distinct()
    )
    return {row.task_id for row in rows}


def get_tenant_task(conn: Connection, tenant: str, task_id: uuid.UUID) -> RowMapping | None:
    return (
        conn.execute(sa.select(scheduled_tasks).where(T.id == task_id, T.tenant == tenant))
        .mappings()
        .first()
    )


def lock_tenant_task(conn: Connection, tenant: str, task_id: uuid.UUID) -> RowMapping | None:
    return (
        conn.execute(
            sa.select(scheduled_tasks).where(T.id == task_id, T.tenant == tenant).with_for_update()
        )
        .mappings()
        .first()
    )


def task_name_taken(
    conn: Connection, tenant: str, name: str, except_id: uuid.UUID | None = None
) -> bool:
    query = sa.select(T.id).where(T.tenant == tenant, T.name == name)
    if except_id is not None:
        query = query.where(T.id != except_id)
    return conn.execute(query.limit(1)).first() is not None


@dataclass(frozen=True)
class TaskFilters:
    status: str | None = None  # active | paused | finished
    tags: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    name_prefix: str | None = None
    last_status: str | None = None
    next_before: datetime | None = None
    next_after: datetime | None = None


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_tasks(
    conn: Connection,
    tenant: str,
    filters: TaskFilters,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[RowMapping]:
    """A page of a tenant's tasks in creation order, keyset-paged on (created_at, id)."""
    query = sa.select(scheduled_tasks).where(T.tenant == tenant)
    if filters.status == "finished":
        query = query.where(T.is_finished)
    elif filters.status == "paused":
        query = query.where(sa.not_(T.is_finished), sa.not_(T.is_active))
    elif filters.status == "active":
        query = query.where(sa.not_(T.is_finished), T.is_active)
    for key, value in filters.tags:
        query = query.where(T.tags[key].as_string() == value)
    if filters.name is not None:
        query = query.where(T.name == filters.name)
    if filters.name_prefix is not None:
        query = query.where(T.name.like(_like_prefix(filters.name_prefix), escape="\\"))
    if filters.last_status is not None:
        query = query.where(T.last_status == filters.last_status)
    if filters.next_before is not None:
        query = query.where(T.next_execution_time < filters.next_before)
    if filters.next_after is not None:
        query = query.where(T.next_execution_time > filters.next_after)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            sa.or_(T.created_at > created_at, sa.and_(T.created_at == created_at, T.id > last_id))
        )
    query = query.order_by(T.created_at, T.id).limit(limit)
    return conn.execute(query).mappings().all()


def update_task(conn: Connection, task_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """Change a task's columns, its row in ``next_occurrences`` with them. The caller
    holds the task's row lock."""
    _remove_next_occurrences(conn, [task_id])
    conn.execute(sa.update(scheduled_tasks).where(T.id == task_id).values(**values))
    _add_next_occurrences(conn, [task_id])


def delete_task(conn: Connection, task_id: uuid.UUID) -> None:
    """The task, its next occurrence, its executions and (by their foreign key) their
    attempts. The caller holds the task's row lock, so no claim or run-now adds an
    execution meanwhile."""
    _remove_next_occurrences(conn, [task_id])
    conn.execute(sa.delete(executions).where(E.task_id == task_id))
    conn.execute(sa.delete(scheduled_tasks).where(T.id == task_id))


# --- executions ------------------------------------------------------------------------


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
        _insert(conn, executions)
        .values(created_at=now, attempts=0)
        .on_conflict_do_nothing(index_elements=["task_id", "scheduled_for"])
        .returning(E.id.label("execution_id"), E.idempotency_key)
    )
    return (
        conn.execute(statement, [{**r, "task_id": _as_uuid(r["task_id"])} for r in rows])
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
            "scheduled_for": _instant_text(r["scheduled_for"]),
            "idempotency_key": r["idempotency_key"],
            "status": r["status"],
            "next_dispatch_at": _instant_text(r["next_dispatch_at"]),
            "dispatch_count": r["dispatch_count"],
        }
        for r in rows
    ]
    return (
        conn.execute(_INSERT_EXECUTIONS_PG, {"rows": _json_text(encoded), "now": now})
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
                "rows": _json_rows(
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


def hold_executions(
    conn: Connection, holds: Sequence[Mapping[str, Any]], holder: str, message_id: str
) -> set[int]:
    """A trigger message starts: take its executions for ``holder``. Each mapping holds
    ``b_id``, ``b_attempt`` and ``b_lease_until`` (the lease, counted from now).

    Only an execution still ``running``, waiting for exactly that attempt and not yet
    started by any message is taken: of two messages carrying one send (a lease that ran
    out before the first one started, a broker's redelivery), one fires. Returns the ids
    taken; the others must not be fired."""
    if not holds:
        return set()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _HOLD_EXECUTIONS_PG,
            {
                "rows": _json_rows(
                    [
                        {"id": h["b_id"], "attempt": h["b_attempt"], "lease": h["b_lease_until"]}
                        for h in holds
                    ]
                ),
                "holder": holder,
                "message_id": message_id,
            },
        )
        return {row[0] for row in rows}
    wanted = {h["b_id"]: h for h in holds}
    found = conn.execute(
        sa.select(E.id, E.attempts).where(
            E.id.in_(sorted(wanted)),
            E.status == ExecutionStatus.RUNNING.value,
            E.held_by.is_(None),
        )
    )
    taken = [row.id for row in found if row.attempts == wanted[row.id]["b_attempt"] - 1]
    if taken:
        conn.execute(
            sa.update(executions)
            .where(E.id == sa.bindparam("b_id"))
            .values(
                held_by=holder, message_id=message_id, next_dispatch_at=sa.bindparam("b_lease")
            ),
            [{"b_id": i, "b_lease": wanted[i]["b_lease_until"]} for i in taken],
        )
    return set(taken)


_HOLD_EXECUTIONS_PG = sa.text(
    """
    UPDATE executions AS e
    SET held_by = :holder, message_id = :message_id, next_dispatch_at = v.lease
    FROM json_to_recordset(CAST(:rows AS json))
         AS v(id bigint, attempt integer, lease timestamptz)
    WHERE e.id = v.id AND e.status = 'running' AND e.attempts = v.attempt - 1
      AND e.held_by IS NULL
    RETURNING e.id
    """
)


def renew_holds(
    conn: Connection, execution_ids: Sequence[int], holder: str, message_id: str, lease: datetime
) -> int:
    """Move the lease of the sends ``message_id`` still holds in ``holder`` to ``lease``
    (never earlier); returns how many."""
    if not execution_ids:
        return 0
    result = conn.execute(
        sa.update(executions)
        .where(
            _one_of(conn, E.id, list(execution_ids)),
            E.held_by == holder,
            E.message_id == message_id,
            E.status == ExecutionStatus.RUNNING.value,
            E.next_dispatch_at < lease,
        )
        .values(next_dispatch_at=lease)
    )
    return int(result.rowcount)


def held_sends_to_look_up(
    conn: Connection, now: datetime, dead_holders: Sequence[str], limit: int
) -> Sequence[RowMapping]:
    """Started sends whose lease ran out, or whose holder is in ``dead_holders``: their
    outcome may be in the result backend under ``message_id``."""
    due: sa.ColumnElement[bool] = E.next_dispatch_at <= now
    if dead_holders:
        due = sa.or_(due, E.held_by.in_(dead_holders))
    query = (
        sa.select(E.id, E.attempts, E.message_id)
        .where(E.status == ExecutionStatus.RUNNING.value, E.message_id.is_not(None), due)
        .limit(limit)
    )
    return conn.execute(query).mappings().all()


def stale_processes(conn: Connection, seen_before: datetime, seen_since: datetime) -> list[str]:
    """Processes whose last heartbeat is older than ``seen_before`` but not older than
    ``seen_since``."""
    query = sa.select(worker_heartbeats.c.process).where(
        worker_heartbeats.c.seen_at < seen_before, worker_heartbeats.c.seen_at >= seen_since
    )
    return [row[0] for row in conn.execute(query)]


def lock_executions(conn: Connection, execution_ids: Iterable[int]) -> dict[int, RowMapping]:
    ids = sorted(set(execution_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            E.id, E.task_id, E.status, E.attempts, E.attempt_offset, E.scheduled_for, E.started_at
        )
        .where(_one_of(conn, E.id, ids))
        .order_by(E.id)
        .with_for_update()
    ).mappings()
    return {row["id"]: row for row in rows}


def update_execution_results(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> None:
    """Each mapping holds ``b_id`` and every column written (``b_status`` ...)."""
    if not updates:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_UPDATE_EXECUTION_RESULTS_PG, {"rows": _json_rows(_unprefixed(updates))})
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
        conn.execute(_INSERT_ATTEMPTS_PG, {"rows": _json_rows(rows)})
        return
    conn.execute(
        _insert(conn, attempts).on_conflict_do_nothing(index_elements=["execution_id", "number"]),
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


# --- withdrawal ------------------------------------------------------------------------

#: How far before ``now`` an unsent occurrence is looked for (a range of the unique index
#: on (task, scheduled_for), never a task's whole history). A staged occurrence is due at
#: most ``spread_seconds`` (at most an hour) before its send time; one still unsent an
#: hour past that means no tick ran for an hour, and is left to the tick that sends it.
UNSENT_LOOKBACK = timedelta(seconds=MAX_SPREAD_S) + timedelta(hours=1)


def _unsent(now: datetime) -> sa.ColumnElement[bool]:
    """Occurrences of a task's schedule written down and not yet sent (see ``withdrawal``).

    Staged: ``queued``, never dispatched, written before its send time (a run-now is
    written due at once, ``next_dispatch_at = created_at``; a retry, a redrive or a
    throttled send was dispatched). Published ahead: ``running`` with no attempt, that
    no trigger worker has cleared to send (``started_at`` unset, see
    :func:`clear_to_send`), due after ``now`` (so never a run-now, nor an occurrence
    already due when the writer came: that one goes out).
    """
    return sa.and_(
        E.scheduled_for >= now - UNSENT_LOOKBACK,
        sa.or_(
            sa.and_(
                E.status == ExecutionStatus.QUEUED.value,
                E.dispatch_count == 0,
                E.next_dispatch_at > E.created_at,
            ),
            sa.and_(
                E.status == ExecutionStatus.RUNNING.value,
                E.attempts == 0,
                E.started_at.is_(None),
                E.scheduled_for > now,
            ),
        ),
    )


def unsent_occurrences(
    conn: Connection, task_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, tuple[datetime, int]]:
    """Per task, its earliest unsent occurrence and how many it has (tasks with none are
    left out): what fires before its ``next_execution_time``."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(E.task_id, sa.func.min(E.scheduled_for), sa.func.count())
        .where(_one_of(conn, E.task_id, ids), _unsent(now))
        .group_by(E.task_id)
    )
    return {task_id: (earliest, int(count)) for task_id, earliest, count in rows}


def withdraw_unsent(conn: Connection, task_ids: Sequence[uuid.UUID], now: datetime) -> int:
    """Delete the tasks' unsent occurrences and put them back into their schedule: each
    task's ``occurrence_count`` drops by what it lost and its ``next_execution_time``
    moves back to the earliest of them (its row in ``next_occurrences`` with it). The
    caller holds the task rows' locks and then writes what its change means (a pause,
    a new schedule); a task left active claims them again, unchanged ones at the same
    due times (the deleted rows no longer hold their (task, scheduled_for)).

    Returns how many were withdrawn. A trigger worker holding one of them finds it gone
    when it asks to send it (:func:`clear_to_send`), and drops it.
    """
    ids = sorted(set(task_ids))
    if not ids:
        return 0
    withdrawn = conn.execute(
        sa.delete(executions)
        .where(_one_of(conn, E.task_id, ids), _unsent(now))
        .returning(E.task_id, E.scheduled_for)
    ).all()
    if not withdrawn:
        return 0
    per_task: dict[uuid.UUID, tuple[datetime, int]] = {}
    for task_id, scheduled_for in withdrawn:
        earliest, count = per_task.get(task_id, (scheduled_for, 0))
        per_task[task_id] = (min(earliest, scheduled_for), count + 1)
    affected = sorted(per_task)
    earliest_param = sa.bindparam("b_earliest", type_=UTCDateTime())
    _remove_next_occurrences(conn, affected)
    conn.execute(
        sa.update(scheduled_tasks)
        .where(T.id == sa.bindparam("b_id"))
        .values(
            occurrence_count=T.occurrence_count - sa.bindparam("b_count"),
            next_execution_time=sa.case(
                (T.next_execution_time.is_(None), earliest_param),
                (T.next_execution_time > earliest_param, earliest_param),
                else_=T.next_execution_time,
            ),
        ),
        [
            {"b_id": task_id, "b_earliest": per_task[task_id][0], "b_count": per_task[task_id][1]}
            for task_id in affected
        ],
    )
    _add_next_occurrences(conn, affected)
    return len(withdrawn)


def clear_to_send(conn: Connection, expected: Mapping[int, int], now: datetime) -> set[int]:
    """Which of these executions a trigger worker may send now; ``expected`` maps each
    execution id to the attempts its request expects written (``attempt - 1``).

    One that is still ``running`` and waiting for exactly that attempt may go. A first
    send is marked (``started_at = now``, which the write-back replaces with the
    attempt's own start) in the same statement, under the row's lock: a writer's
    :func:`withdraw_unsent` then no longer takes it, and one that committed first has
    deleted it, so it is not sent. Exactly one of the two wins.
    """
    ids = sorted(expected)
    if not ids:
        return set()
    running = ExecutionStatus.RUNNING.value
    conn.execute(
        sa.update(executions)
        .where(_one_of(conn, E.id, ids), E.status == running, E.started_at.is_(None))
        .values(started_at=now)
    )
    rows = conn.execute(
        sa.select(E.id, E.attempts).where(_one_of(conn, E.id, ids), E.status == running)
    )
    return {execution_id for execution_id, attempts in rows if expected[execution_id] == attempts}


# --- metrics ---------------------------------------------------------------------------


def count_tasks_by_state(conn: Connection) -> dict[tuple[bool, bool], int]:
    """Every tenant's tasks, counted by (``is_active``, ``is_finished``)."""
    rows = conn.execute(
        sa.select(T.is_active, T.is_finished, sa.func.count()).group_by(T.is_active, T.is_finished)
    )
    return {(bool(active), bool(finished)): count for active, finished, count in rows}


def count_executions_by_status(conn: Connection) -> dict[str, int]:
    """Every tenant's executions, counted by status (dead letters included, as ``dead``)."""
    rows = conn.execute(sa.select(E.status, sa.func.count()).group_by(E.status))
    return {status: count for status, count in rows}


def count_paused_tasks(conn: Connection) -> dict[str | None, int]:
    """Every tenant's paused (not finished) tasks, counted by ``paused_by``."""
    rows = conn.execute(
        sa.select(T.paused_by, sa.func.count())
        .where(sa.not_(T.is_active), sa.not_(T.is_finished))
        .group_by(T.paused_by)
    )
    return {paused_by: count for paused_by, count in rows}


def due_backlog(conn: Connection, now: datetime) -> tuple[int, datetime | None]:
    """How many tasks are due and not yet claimed, and the oldest one's due time.

    A claim takes its tasks' next occurrences out, so a due one is an unclaimed one.
    """
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(D.scheduled_for)).where(D.scheduled_for <= now)
    ).one()
    oldest: datetime | None = row[1]
    return int(row[0]), oldest


def add_to_counters(conn: Connection, increments: Mapping[tuple[str, str], float]) -> None:
    """Add to counters (upserts), in key order so that two writers never deadlock."""
    if not increments:
        return
    statement = _insert(conn, metric_counters)
    statement = statement.on_conflict_do_update(
        index_elements=["name", "labels"],
        set_={"value": metric_counters.c.value + statement.excluded.value},
    )
    rows = [
        {"name": name, "labels": labels, "value": value}
        for (name, labels), value in sorted(increments.items())
    ]
    conn.execute(statement, rows)


def set_gauges(conn: Connection, values: Mapping[tuple[str, str], float]) -> None:
    if not values:
        return
    statement = _insert(conn, metric_counters)
    statement = statement.on_conflict_do_update(
        index_elements=["name", "labels"], set_={"value": statement.excluded.value}
    )
    rows = [
        {"name": name, "labels": labels, "value": value}
        for (name, labels), value in sorted(values.items())
    ]
    conn.execute(statement, rows)


def read_gauge(conn: Connection, name: str, labels: str = "") -> float | None:
    row = conn.execute(
        sa.select(metric_counters.c.value).where(
            metric_counters.c.name == name, metric_counters.c.labels == labels
        )
    ).first()
    return None if row is None else float(row[0])


def read_counters(conn: Connection) -> dict[tuple[str, str], float]:
    rows = conn.execute(sa.select(metric_counters))
    return {(row.name, row.labels): row.value for row in rows}


def write_heartbeat(conn: Connection, values: Mapping[str, Any]) -> None:
    statement = _insert(conn, worker_heartbeats).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["process"],
        set_={k: statement.excluded[k] for k in values if k not in ("process", "started_at")},
    )
    conn.execute(statement)


def live_heartbeats(conn: Connection, seen_since: datetime) -> Sequence[RowMapping]:
    """Processes seen since ``seen_since``; rows of processes gone longer are deleted."""
    conn.execute(sa.delete(worker_heartbeats).where(worker_heartbeats.c.seen_at < seen_since))
    query = sa.select(worker_heartbeats).order_by(
        worker_heartbeats.c.role, worker_heartbeats.c.process
    )
    return conn.execute(query).mappings().all()


def attempt_outcomes_since(conn: Connection, since: datetime) -> Sequence[RowMapping]:
    """The attempts started since ``since`` with their occurrence's due time (for
    `taskhub stats`' recent-window figures)."""
    query = (
        sa.select(
            attempts.c.number,
            attempts.c.started_at,
            attempts.c.duration_ms,
            attempts.c.http_status,
            attempts.c.error_kind,
            E.scheduled_for,
        )
        .join(executions, E.id == attempts.c.execution_id)
        .where(attempts.c.started_at >= since)
    )
    return conn.execute(query).mappings().all()


# --- api keys --------------------------------------------------------------------------


K = api_keys.c

#: Every column but the secret's digest: what may leave this module for listings.
_API_KEY_PUBLIC = (K.id, K.tenant, K.prefix, K.created_at, K.revoked_at, K.last_used_at)


def api_key_prefix_taken(conn: Connection, prefix: str) -> bool:
    return conn.execute(sa.select(K.id).where(K.prefix == prefix).limit(1)).first() is not None


def insert_api_key(conn: Connection, values: Mapping[str, Any]) -> RowMapping:
    """Insert one key; returns its public columns (never the digest)."""
    return (
        conn.execute(sa.insert(api_keys).values(**values).returning(*_API_KEY_PUBLIC))
        .mappings()
        .one()
    )


def get_api_key_by_prefix(conn: Connection, prefix: str) -> RowMapping | None:
    """One key with its digest, for authentication."""
    return conn.execute(sa.select(api_keys).where(K.prefix == prefix)).mappings().first()


def get_api_key_public(conn: Connection, key_id: uuid.UUID) -> RowMapping | None:
    return conn.execute(sa.select(*_API_KEY_PUBLIC).where(K.id == key_id)).mappings().first()


def get_api_key_public_by_prefix(conn: Connection, prefix: str) -> RowMapping | None:
    return conn.execute(sa.select(*_API_KEY_PUBLIC).where(K.prefix == prefix)).mappings().first()


def list_api_keys(conn: Connection, tenant: str | None) -> Sequence[RowMapping]:
    """Keys (public columns), newest first; every tenant's when ``tenant`` is None."""
    query = sa.select(*_API_KEY_PUBLIC)
    if tenant is not None:
        query = query.where(K.tenant == tenant)
    return conn.execute(query.order_by(K.created_at.desc(), K.id.desc())).mappings().all()


def revoke_api_key(conn: Connection, key_id: uuid.UUID, now: datetime) -> None:
    """Revoke a key; one already revoked keeps its first ``revoked_at``."""
    conn.execute(
        sa.update(api_keys).where(K.id == key_id, K.revoked_at.is_(None)).values(revoked_at=now)
    )


def touch_api_key(
    conn: Connection, key_id: uuid.UUID, now: datetime, stale_before: datetime
) -> None:
    """Record a use, unless one at or after ``stale_before`` is already recorded (the
    condition also keeps two concurrent requests from moving it backwards)."""
    conn.execute(
        sa.update(api_keys)
        .where(
            K.id == key_id,
            sa.or_(K.last_used_at.is_(None), K.last_used_at < stale_before),
        )
        .values(last_used_at=now)
    )


# --- signing secrets -------------------------------------------------------------------


S = signing_secrets.c

#: Every column but the sealed secret: what may leave this module for listings.
_SIGNING_PUBLIC = (S.id, S.tenant, S.hint, S.created_at, S.revoked_at)


def lock_tenant_signing_secrets(conn: Connection, tenant: str) -> None:
    """Serialise changes to one tenant's secrets until the transaction ends, so two
    concurrent creates cannot both see one active secret and make three. (SQLite's
    ``BEGIN IMMEDIATE`` already serialises every writer.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("signing:" + tenant)))
        )


def count_active_signing_secrets(conn: Connection, tenant: str) -> int:
    query = sa.select(sa.func.count()).where(S.tenant == tenant, S.revoked_at.is_(None))
    return int(conn.execute(query).scalar_one())


def insert_signing_secret(conn: Connection, values: Mapping[str, Any]) -> RowMapping:
    """Insert one secret; returns its public columns (never the sealed secret)."""
    return (
        conn.execute(sa.insert(signing_secrets).values(**values).returning(*_SIGNING_PUBLIC))
        .mappings()
        .one()
    )


def list_signing_secrets(conn: Connection, tenant: str | None) -> Sequence[RowMapping]:
    """Secrets (public columns), newest first; every tenant's when ``tenant`` is None."""
    query = sa.select(*_SIGNING_PUBLIC)
    if tenant is not None:
        query = query.where(S.tenant == tenant)
    return conn.execute(query.order_by(S.created_at.desc(), S.id.desc())).mappings().all()


def get_signing_secret_public(
    conn: Connection, secret_id: uuid.UUID, tenant: str | None
) -> RowMapping | None:
    query = sa.select(*_SIGNING_PUBLIC).where(S.id == secret_id)
    if tenant is not None:
        query = query.where(S.tenant == tenant)
    return conn.execute(query).mappings().first()


def revoke_signing_secret(conn: Connection, secret_id: uuid.UUID, now: datetime) -> None:
    """Revoke a secret; one already revoked keeps its first ``revoked_at``."""
    conn.execute(
        sa.update(signing_secrets)
        .where(S.id == secret_id, S.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def active_sealed_signing_secrets(conn: Connection, tenants: Iterable[str]) -> dict[str, list[str]]:
    """Each tenant's active secrets, sealed, oldest first (what a dispatch signs with)."""
    names = sorted(set(tenants))
    if not names:
        return {}
    rows = conn.execute(
        sa.select(S.tenant, S.sealed_secret)
        .where(S.tenant.in_(names), S.revoked_at.is_(None))
        .order_by(S.created_at, S.id)
    )
    found: dict[str, list[str]] = {}
    for tenant, sealed in rows:
        found.setdefault(tenant, []).append(sealed)
    return found


# --- re-sealing ------------------------------------------------------------------------


def tasks_headers_after(
    conn: Connection, after_id: uuid.UUID | None, limit: int
) -> Sequence[RowMapping]:
    """A page of tasks' header columns in id order, locked for the re-seal that follows."""
    query = sa.select(T.id, T.headers, T.sealed_headers).order_by(T.id).limit(limit)
    if after_id is not None:
        query = query.where(T.id > after_id)
    return conn.execute(query.with_for_update()).mappings().all()


def update_task_headers(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each mapping: ``b_id``, ``b_headers``, ``b_sealed_headers``."""
    if not rows:
        return
    conn.execute(
        sa.update(scheduled_tasks)
        .where(T.id == sa.bindparam("b_id"))
        .values(headers=sa.bindparam("b_headers"), sealed_headers=sa.bindparam("b_sealed")),
        list(rows),
    )


def sealed_signing_secrets(conn: Connection) -> Sequence[RowMapping]:
    S = signing_secrets.c
    return (
        conn.execute(sa.select(S.id, S.sealed_secret).order_by(S.id).with_for_update())
        .mappings()
        .all()
    )


def update_sealed_signing_secret(conn: Connection, secret_id: uuid.UUID, sealed: str) -> None:
    S = signing_secrets.c
    conn.execute(sa.update(signing_secrets).where(S.id == secret_id).values(sealed_secret=sealed))
