"""The SQL of history retention: which ended executions are old enough to go, removing
them a batch at a time, and the lease that lets one prune pass run at a time.

Only ended executions go: ``succeeded`` and ``failed`` ones after their task's
``retention_days`` (or the default), ``dead`` ones (dead letters) after the dead-letter
retention. A ``queued`` or ``running`` execution (one waiting for a retry, one in
flight, one waiting for a Celery result) has no ``finished_at`` and is never selected,
whatever its age. Every batch is read from ``ix_executions_finished_at``, oldest first,
and locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a row a write-back or a
redrive holds is left for the next pass instead of waited for, and a row changed since
the batch's snapshot is checked again once locked (PostgreSQL re-reads it), so a dead
letter redriven meanwhile stays. On SQLite every transaction is ``BEGIN IMMEDIATE``: a
batch is one short write, between the others.

After a pass, the tables it removed rows from may be vacuumed on PostgreSQL
(:func:`vacuum`): a plain ``VACUUM``, which marks the deleted rows' space free for new
rows and takes only a SHARE UPDATE EXCLUSIVE lock, so reads and writes go on. SQLite
reuses a deleted row's pages for new rows by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskhub.core.retention import Autovacuum
from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import insert, one_of
from taskhub.db.models import (
    attempts,
    callback_deliveries,
    executions,
    maintenance_leases,
    next_occurrences,
    notifications,
    scheduled_tasks,
)

E = executions.c
T = scheduled_tasks.c
L = maintenance_leases.c

#: An ended execution that is history, not a dead letter.
ENDED = (
    ExecutionStatus.SUCCEEDED.value,
    ExecutionStatus.FAILED.value,
    ExecutionStatus.SKIPPED.value,
)
DEAD = (ExecutionStatus.DEAD.value,)


def override_days(conn: Connection) -> list[int]:
    """The distinct ``retention_days`` tasks set (from the partial index)."""
    query = (
        sa.select(T.retention_days)
        .where(T.retention_days.is_not(None))
        .distinct()
        .order_by(T.retention_days)
    )
    return [int(days) for days in conn.execute(query).scalars()]


def _expired(
    statuses: Sequence[str], cutoff: datetime, retention_days: int | None, per_task: bool
) -> sa.ColumnElement[bool]:
    """Ended before ``cutoff`` with one of ``statuses``; ``per_task``: only the executions
    of tasks with ``retention_days`` (None: of tasks without one), else of any task."""
    condition = sa.and_(E.finished_at.is_not(None), E.finished_at < cutoff, E.status.in_(statuses))
    if not per_task:
        return condition
    task_has = sa.select(T.id).where(T.id == E.task_id)
    if retention_days is None:
        return sa.and_(condition, ~task_has.where(T.retention_days.is_not(None)).exists())
    return sa.and_(condition, task_has.where(T.retention_days == retention_days).exists())


def lock_expired(
    conn: Connection,
    statuses: Sequence[str],
    cutoff: datetime,
    limit: int,
    *,
    retention_days: int | None = None,
    per_task: bool = True,
) -> list[int]:
    """Lock up to ``limit`` expired executions, oldest first; their ids."""
    query = (
        sa.select(E.id)
        .where(_expired(statuses, cutoff, retention_days, per_task))
        .order_by(E.finished_at)
        .limit(limit)
        .with_for_update(of=executions, skip_locked=True)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def delete_executions(conn: Connection, execution_ids: Sequence[int]) -> tuple[int, int, int]:
    """Delete these executions (locked by :func:`lock_expired` in this transaction),
    their attempts and their callback deliveries (long since sent: a delivery's budget
    runs out within a minute); (executions, attempts, callback deliveries) removed."""
    if not execution_ids:
        return 0, 0, 0
    ids = list(execution_ids)
    removed_deliveries = conn.execute(
        sa.delete(callback_deliveries).where(one_of(conn, callback_deliveries.c.execution_id, ids))
    ).rowcount
    removed_attempts = conn.execute(
        sa.delete(attempts).where(one_of(conn, attempts.c.execution_id, ids))
    ).rowcount
    removed = conn.execute(sa.delete(executions).where(one_of(conn, E.id, ids))).rowcount
    return int(removed), int(removed_attempts), int(removed_deliveries)


def count_expired(
    conn: Connection,
    statuses: Sequence[str],
    cutoff: datetime,
    *,
    retention_days: int | None = None,
    per_task: bool = True,
) -> tuple[int, int]:
    """How many executions (and their attempts) :func:`lock_expired` would take in all."""
    condition = _expired(statuses, cutoff, retention_days, per_task)
    count = conn.execute(sa.select(sa.func.count()).select_from(executions).where(condition))
    attempt_count = conn.execute(
        sa.select(sa.func.count())
        .select_from(attempts.join(executions, E.id == attempts.c.execution_id))
        .where(condition)
    )
    return int(count.scalar_one()), int(attempt_count.scalar_one())


def take_lease(conn: Connection, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take (or renew) the lease ``name`` for ``holder`` until ``until``: True if it was
    free, ran out, or is already ``holder``'s."""
    conn.execute(
        insert(conn, maintenance_leases)
        .values(name=name, holder=holder, held_until=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    taken = conn.execute(
        sa.update(maintenance_leases)
        .where(L.name == name, sa.or_(L.held_until <= now, L.holder == holder))
        .values(holder=holder, held_until=until)
    )
    return bool(taken.rowcount)


def release_lease(conn: Connection, name: str, holder: str, now: datetime) -> None:
    """Give the lease back (only if ``holder`` still holds it)."""
    conn.execute(
        sa.update(maintenance_leases)
        .where(L.name == name, L.holder == holder)
        .values(held_until=now)
    )


def delete_notifications_before(conn: Connection, cutoff: datetime) -> int:
    """Delete the notifications made before ``cutoff`` that are no longer pending."""
    return int(
        conn.execute(
            sa.delete(notifications).where(
                notifications.c.created_at < cutoff, notifications.c.status != "pending"
            )
        ).rowcount
    )


#: The tables a prune pass removes rows from, by name: the only ones :func:`vacuum` takes.
PRUNED_TABLES = (
    executions.name,
    attempts.name,
    callback_deliveries.name,
    notifications.name,
)


#: The tables every claim rewrites (a task's next due time and counters): :func:`vacuum`
#: takes them too, once their dead rows pass autovacuum's own threshold.
CHURNED_TABLES = (next_occurrences.name, scheduled_tasks.name)


def dead_and_live_rows(conn: Connection, tables: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each table's dead and live rows as PostgreSQL's statistics count them (kept with
    ``track_counts``, on by default, even where autovacuum is off)."""
    rows = conn.execute(
        sa.text(
            "SELECT t.name, s.n_dead_tup, s.n_live_tup "
            "FROM unnest(CAST(:tables AS text[])) AS t(name) "
            "JOIN pg_stat_user_tables AS s ON s.relid = to_regclass(t.name)"
        ),
        {"tables": list(tables)},
    )
    return {str(name): (int(dead), int(live)) for name, dead, live in rows}


def autovacuum(conn: Connection, tables: Sequence[str]) -> Autovacuum:
    """PostgreSQL's ``autovacuum`` and ``track_counts`` settings, and the
    ``autovacuum_enabled`` storage parameter of each of ``tables`` (None: not set)."""
    server, track_counts = conn.execute(
        sa.text(
            "SELECT current_setting('autovacuum')::boolean, "
            "current_setting('track_counts')::boolean"
        )
    ).one()
    rows = conn.execute(
        sa.text(
            "SELECT t.name, (SELECT o.option_value::boolean "
            "FROM pg_options_to_table(c.reloptions) AS o "
            "WHERE o.option_name = 'autovacuum_enabled') "
            "FROM unnest(CAST(:tables AS text[])) AS t(name) "
            "JOIN pg_class AS c ON c.oid = to_regclass(t.name)"
        ),
        {"tables": list(tables)},
    )
    return Autovacuum(bool(server), bool(track_counts), {str(n): e for n, e in rows})


#: PostgreSQL's code for a lock not granted within ``lock_timeout``.
LOCK_NOT_AVAILABLE = "55P03"


def vacuum(conn: Connection, table: str, lock_timeout_s: float) -> bool:
    """A plain ``VACUUM`` of ``table`` (one of :data:`PRUNED_TABLES` or
    :data:`CHURNED_TABLES`) on PostgreSQL,
    on a connection in ``AUTOCOMMIT`` (VACUUM cannot run in a transaction). False if
    another VACUUM, an index build or a schema change held the table for longer than
    ``lock_timeout_s``: then it was left as it was."""
    if table not in PRUNED_TABLES + CHURNED_TABLES:
        raise ValueError(f"not a table the prune pass vacuums: {table!r}")
    name = conn.dialect.identifier_preparer.quote(table)
    conn.exec_driver_sql(f"SET lock_timeout = {max(1, round(lock_timeout_s * 1000))}")
    try:
        conn.exec_driver_sql(f"VACUUM {name}")
    except sa.exc.OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return False
        raise
    finally:
        conn.exec_driver_sql("RESET lock_timeout")
    return True
