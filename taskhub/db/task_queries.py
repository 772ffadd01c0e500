"""The SQL of tasks: their rows, their next occurrences (kept in step with every write),
the claim of due tasks and the write-back's effect on them."""

from __future__ import annotations

import collections
import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db import callback_queries, quota_queries
from taskhub.db.dialects import as_uuid, one_of
from taskhub.db.models import (
    UTCDateTime,
    executions,
    next_occurrences,
    occurrence_skips,
    read_as_json_object,
    read_as_uuid_text,
    scheduled_tasks,
)
from taskhub.db.recordsets import Recordset
from taskhub.db.rows import TaskAdvance, TaskResult

T = scheduled_tasks.c
D = next_occurrences.c
E = executions.c

#: The seed system's due predicate, less its time: a task that can fall due has a row in
#: ``next_occurrences`` (at its ``next_execution_time``), and no other task has one.
CAN_FALL_DUE = sa.and_(T.is_active, sa.not_(T.is_finished), T.next_execution_time.is_not(None))


def insert_task(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    """A new task (counted among its tenant's) and its next occurrence."""
    statement = sa.insert(scheduled_tasks).values(**values).returning(T.id, T.tenant)
    row = conn.execute(statement).one()
    task_id: uuid.UUID = row.id
    add_next_occurrences(conn, [task_id])
    quota_queries.add_held(conn, row.tenant, 1)
    return task_id


def insert_named_task(conn: Connection, values: Mapping[str, Any]) -> RowMapping | None:
    """A new task (``values`` with its ``id``) and its next occurrence, unless its tenant
    holds a task of its name:
    then None, and nothing is written (the unique (tenant, name) decides, so nothing is
    read first). The row as stored. Not counted among the tenant's tasks: the caller
    takes its place (``quota_queries.take_place``), last, as a create checks its quota.

    PostgreSQL: one statement (the next occurrence written by a second insert in it)."""
    postgres = conn.dialect.name == "postgresql"
    statement = _insert_named(tuple(values), postgres)
    row = conn.execute(statement, dict(values)).mappings().first()
    if row is not None and not postgres:
        add_next_occurrences(conn, [row["id"]])
    return row


@functools.lru_cache(maxsize=8)
def _insert_named(fields: tuple[str, ...], postgres: bool) -> sa.TextClause:
    """:func:`insert_named_task`'s statement for rows of these columns. Plain SQL, typed
    by the table's columns both ways: SQLAlchemy compiles a dialect's ``ON CONFLICT``
    insert anew on every call, which cost more than the statement itself."""
    stored = ", ".join(c.name for c in scheduled_tasks.c)
    sql = (
        f"INSERT INTO scheduled_tasks ({', '.join(fields)}) "
        f"VALUES ({', '.join(f':{f}' for f in fields)}) "
        f"ON CONFLICT (tenant, name) DO NOTHING RETURNING {stored}"
    )
    if postgres:
        sql = (
            f"WITH inserted AS ({sql}), following AS ("
            "INSERT INTO next_occurrences (scheduled_for, task_id) "
            "SELECT next_execution_time, id FROM inserted "
            "WHERE is_active AND NOT is_finished AND next_execution_time IS NOT NULL) "
            f"SELECT {stored} FROM inserted"
        )
    binds = [sa.bindparam(f, type_=scheduled_tasks.c[f].type) for f in fields]
    return sa.text(sql).bindparams(*binds).columns(*scheduled_tasks.c)  # type: ignore[return-value]


# Every writer of a task's next_execution_time, is_active or is_finished keeps its row in
# ``next_occurrences`` in step: remove it (while the old values are stored), write, add it
# again if the task can still fall due. The caller holds the task's row lock first (a
# claim never waits for one: it skips locked rows, so the two never deadlock). A claim,
# the hot path, does the same in its own statements (``claim_due_tasks``,
# ``advance_tasks``).


def remove_next_occurrences(conn: Connection, task_ids: Sequence[uuid.UUID]) -> None:
    """The tasks' rows in ``next_occurrences``, found by their stored next execution time."""
    if task_ids:
        conn.execute(
            sa.delete(next_occurrences).where(
                sa.tuple_(D.scheduled_for, D.task_id).in_(
                    sa.select(T.next_execution_time, T.id).where(one_of(conn, T.id, task_ids))
                )
            )
        )


def add_next_occurrences(conn: Connection, task_ids: Sequence[uuid.UUID]) -> None:
    """A row in ``next_occurrences`` for each of the tasks that can fall due."""
    if task_ids:
        conn.execute(
            sa.insert(next_occurrences).from_select(
                ["scheduled_for", "task_id"],
                sa.select(T.next_execution_time, T.id).where(
                    one_of(conn, T.id, task_ids), CAN_FALL_DUE
                ),
            )
        )


def get_task(conn: Connection, task_id: uuid.UUID) -> RowMapping | None:
    return conn.execute(sa.select(scheduled_tasks).where(T.id == task_id)).mappings().first()


#: What a fire needs of its task: the tenant (for its signing secrets) and the target,
#: an HTTP call or a Celery task (``rows.celery_call_of``).
TARGET_COLUMNS = (
    T.tenant,
    T.url,
    T.method,
    read_as_json_object(T.headers),
    T.sealed_headers,
    T.body,
    read_as_json_object(T.celery),
    T.timeout_seconds,
    T.rate_limit_max_in_flight,
    T.rate_limit_per_second,
    T.overlap,
)

#: What a claim reads of a due task: its schedule, window and misfire rule (to plan) and
#: its target (to fire); not its name, tags or results. Fewer columns to read and decode
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
    T.exclude_calendars,
    T.has_skips,
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
            [{"b_time": r["next_execution_time"], "b_id": as_uuid(r["id"])} for r in rows],
        )
    return rows


TASK_ADVANCES = Recordset.of_table(
    TaskAdvance,
    scheduled_tasks,
    next_time=UTCDateTime(),
    occurrences=sa.Integer(),
    finished=sa.Boolean(),
)


def advance_tasks(conn: Connection, advances: Sequence[TaskAdvance], now: datetime) -> None:
    """Write each claimed task's new ``next_execution_time`` (by primary key), updated at
    ``now``, and put it in ``next_occurrences`` (the claim took the old one out).

    A claimed task is active; one with a next time is not finished.
    """
    if not advances:
        return
    v = TASK_ADVANCES.source(conn)
    c = v.columns
    advance = (
        sa.update(scheduled_tasks)
        .where(T.id == c["id"])
        .values(
            next_execution_time=c["next_time"],
            occurrence_count=T.occurrence_count + c["occurrences"],
            is_finished=c["finished"],
            updated_at=now,
        )
    )
    params = TASK_ADVANCES.params(conn, advances)
    if v.cte is not None:  # one statement: the update, then the following occurrences
        following = sa.select(c["next_time"], c["id"]).where(c["next_time"].is_not(None))
        conn.execute(
            sa.insert(next_occurrences)
            .from_select(["scheduled_for", "task_id"], following)
            .add_cte(advance.cte("advanced")),
            params,
        )
        return
    conn.execute(advance, params)
    following_rows = [
        {"scheduled_for": a.next_time, "task_id": as_uuid(a.id)}
        for a in advances
        if a.next_time is not None
    ]
    if following_rows:
        conn.execute(sa.insert(next_occurrences), following_rows)


def lock_tasks(conn: Connection, task_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RowMapping]:
    """Lock tasks in id order (a fixed order, so two callbacks never deadlock)."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(*WRITE_BACK_TASK_COLUMNS)
        .where(one_of(conn, T.id, ids))
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
    # Its callback and whose it is (the deliveries of the executions that end), and when
    # it is late (its tenant's channels hear of its events).
    T.tenant,
    T.callback,
    T.max_lag_seconds,
)


TASK_RESULTS = Recordset.of_table(TaskResult, scheduled_tasks)


def update_task_results(conn: Connection, updates: Sequence[TaskResult]) -> None:
    """Write a chunk's effect on its tasks: every field, by the task's ``id``.

    A chunk never changes a task's next time, and never makes a task active or
    unfinished: it only takes the next occurrences of tasks it pauses or finishes out."""
    if not updates:
        return
    remove_next_occurrences(
        conn, [as_uuid(u.id) for u in updates if u.is_finished or not u.is_active]
    )
    TASK_RESULTS.update_by_id(conn, scheduled_tasks, updates)


def tasks_with_open_executions(conn: Connection, task_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    ids = list(set(task_ids))
    if not ids:
        return set()
    open_statuses = [ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value]
    rows = conn.execute(
        sa.select(E.task_id)
        .where(one_of(conn, E.task_id, ids), E.status.in_(open_statuses))
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
        # The redundant ``created_at >=`` is the bound the index can seek to: without it
        # a page 90,000 tasks deep reads the 90,000 before it to filter them out.
        query = query.where(
            T.created_at >= created_at,
            sa.or_(T.created_at > created_at, sa.and_(T.created_at == created_at, T.id > last_id)),
        )
    query = query.order_by(T.created_at, T.id).limit(limit)
    return conn.execute(query).mappings().all()


def update_task(conn: Connection, task_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """Change a task's columns, its row in ``next_occurrences`` with them. The caller
    holds the task's row lock."""
    remove_next_occurrences(conn, [task_id])
    conn.execute(sa.update(scheduled_tasks).where(T.id == task_id).values(**values))
    add_next_occurrences(conn, [task_id])


def delete_task(conn: Connection, task_id: uuid.UUID) -> None:
    """The task, its next occurrence, its executions and (by their foreign key) their
    attempts. The caller holds the task's row lock, so no claim or run-now adds an
    execution meanwhile."""
    remove_next_occurrences(conn, [task_id])
    conn.execute(sa.delete(executions).where(E.task_id == task_id))
    conn.execute(sa.delete(occurrence_skips).where(occurrence_skips.c.task_id == task_id))
    callback_queries.delete_of_tasks(conn, [task_id])
    deleted = conn.execute(
        sa.delete(scheduled_tasks).where(T.id == task_id).returning(T.tenant)
    ).first()
    if deleted is not None:
        quota_queries.add_held(conn, deleted.tenant, -1)


@functools.lru_cache(maxsize=8)
def _new_tasks(fields: tuple[str, ...]) -> Recordset[Any]:
    """The recordset of new tasks' rows with these columns (a batch's rows all have the
    same: those a create writes)."""
    return Recordset.of_table(collections.namedtuple("NewTask", fields), scheduled_tasks)


def insert_tasks(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[uuid.UUID]:
    """Many new tasks (each row with its ``id``, all rows with the same columns) in one
    statement (PostgreSQL: one JSON parameter read by ``json_to_recordset``; SQLite: an
    executemany), and their next occurrences in one more; their ids, in the rows' order.
    The columns a row leaves out take their defaults, as in :func:`insert_task`."""
    if not rows:
        return []
    fields = tuple(rows[0])
    recordset = _new_tasks(fields)
    conn.execute(
        recordset.insert(conn, scheduled_tasks),
        recordset.params(conn, [tuple(row[name] for name in fields) for row in rows]),
    )
    ids: list[uuid.UUID] = [row["id"] for row in rows]
    add_next_occurrences(conn, ids)
    for tenant, count in collections.Counter(row["tenant"] for row in rows).items():
        quota_queries.add_held(conn, tenant, count)
    return ids


def get_tasks(conn: Connection, task_ids: Sequence[uuid.UUID]) -> Sequence[RowMapping]:
    """The tasks' rows, in one statement (in no particular order)."""
    if not task_ids:
        return []
    return (
        conn.execute(sa.select(scheduled_tasks).where(one_of(conn, T.id, task_ids)))
        .mappings()
        .all()
    )


def tenant_tasks_named(conn: Connection, tenant: str, names: Iterable[str]) -> Sequence[RowMapping]:
    """The tenant's tasks of these names, in one statement (read from the (tenant, name)
    index)."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    query = sa.select(scheduled_tasks).where(T.tenant == tenant, one_of(conn, T.name, wanted))
    return conn.execute(query).mappings().all()
