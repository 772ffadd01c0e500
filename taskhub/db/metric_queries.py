"""The SQL of metrics: stored counters and gauges, and the counts and recent attempts
that ``taskhub stats`` and the Prometheus endpoint read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.db.dialects import insert
from taskhub.db.models import (
    attempts,
    executions,
    metric_counters,
    next_occurrences,
    scheduled_tasks,
)

T = scheduled_tasks.c
D = next_occurrences.c
E = executions.c


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
    statement = insert(conn, metric_counters)
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
    statement = insert(conn, metric_counters)
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
