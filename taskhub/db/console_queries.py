"""The SQL of the console's overview and dead letters: one tenant's figures, read from
taskhub's own tables (never the broker), so the console works on any broker.

Executions have no tenant column: every query joins them through
``scheduled_tasks.tenant``. A query over a window of due times is served per task by the
unique ``(task_id, scheduled_for)`` index (or, when the tenant has most of the rows, by
one scan of ``executions``: the planner picks). Each query answers a bounded number of
rows: counts grouped into the window's buckets, or at most ``limit`` rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import executions, next_occurrences, scheduled_tasks

T = scheduled_tasks.c
E = executions.c
D = next_occurrences.c


def _bucket_of(column: sa.ColumnElement[Any], edges: Sequence[datetime]) -> sa.ColumnElement[int]:
    """The index ``i`` of the bucket ``[edges[i], edges[i + 1])`` that ``column`` falls in,
    as a portable CASE over bound instants (no date arithmetic, which the two databases
    write differently); the last bucket also holds ``edges[-1]`` itself, -1 is before."""
    whens = [(column < edge, index) for index, edge in enumerate(edges[1:-1])]
    return sa.case(
        (column.is_(None), -1), (column < edges[0], -1), *whens, else_=len(edges) - 2
    ).label("bucket")


def _tenant_window(query: sa.Select[Any], tenant: str, edges: Sequence[datetime]) -> sa.Select[Any]:
    return (
        query.select_from(executions)
        .join(scheduled_tasks, T.id == E.task_id)
        .where(T.tenant == tenant, E.scheduled_for >= edges[0], E.scheduled_for <= edges[-1])
    )


def execution_counts(
    conn: Connection, tenant: str, edges: Sequence[datetime]
) -> Sequence[RowMapping]:
    """The tenant's executions due in ``[edges[0], edges[-1]]``, counted by bucket of due
    time and status: at most ``buckets times statuses`` rows, whatever the number counted."""
    bucket = _bucket_of(E.scheduled_for, edges)
    query = _tenant_window(
        sa.select(bucket, E.status, sa.func.count().label("count")), tenant, edges
    )
    return conn.execute(query.group_by(bucket, E.status)).mappings().all()


def fire_times(
    conn: Connection, tenant: str, edges: Sequence[datetime], limit: int
) -> Sequence[RowMapping]:
    """At most ``limit`` of the tenant's executions due in the window that were sent:
    ``scheduled_for`` and ``started_at`` (its first attempt's start), for the fire lag."""
    query = _tenant_window(sa.select(E.scheduled_for, E.started_at), tenant, edges)
    return conn.execute(query.where(E.started_at.is_not(None)).limit(limit)).mappings().all()


def due_backlog(
    conn: Connection, tenant: str, now: datetime, edges: Sequence[datetime]
) -> tuple[int, datetime | None, dict[int, int]]:
    """The tenant's occurrences due by ``now`` and not yet claimed: how many, the oldest's
    due time, and how many fell due in each bucket (-1: before the window). A claim takes
    its tasks' next occurrences out of ``next_occurrences``, so a due one is unclaimed;
    its key is in due order, so only the due ones are read."""
    due = (
        sa.select(D.scheduled_for)
        .join(scheduled_tasks, T.id == D.task_id)
        .where(T.tenant == tenant, D.scheduled_for <= now)
        .subquery()
    )
    bucket = _bucket_of(due.c.scheduled_for, edges)
    rows = conn.execute(
        sa.select(
            bucket, sa.func.count().label("count"), sa.func.min(due.c.scheduled_for).label("oldest")
        ).group_by(bucket)
    ).mappings()
    by_bucket: dict[int, int] = {}
    oldest: datetime | None = None
    for row in rows:
        by_bucket[int(row["bucket"])] = int(row["count"])
        first: datetime = row["oldest"]
        oldest = first if oldest is None or first < oldest else oldest
    return sum(by_bucket.values()), oldest, by_bucket


def count_dead_letters(conn: Connection, tenant: str) -> int:
    """The tenant's dead letters (executions with status ``dead``), however old."""
    query = (
        sa.select(sa.func.count())
        .select_from(executions)
        .join(scheduled_tasks, T.id == E.task_id)
        .where(T.tenant == tenant, E.status == ExecutionStatus.DEAD.value)
    )
    return int(conn.execute(query).scalar_one())


def paused_tasks(
    conn: Connection, tenant: str, edges: Sequence[datetime]
) -> tuple[int, dict[int, int]]:
    """The tenant's paused tasks (inactive, not finished): how many, and how many of them
    were paused in each bucket (-1: before the window). Reads the tenant's tasks once."""
    bucket = _bucket_of(T.paused_at, edges)
    rows = conn.execute(
        sa.select(bucket, sa.func.count().label("count"))
        .where(T.tenant == tenant, sa.not_(T.is_active), sa.not_(T.is_finished))
        .group_by(bucket)
    ).mappings()
    by_bucket = {int(row["bucket"]): int(row["count"]) for row in rows}
    return sum(by_bucket.values()), by_bucket


def task_names(
    conn: Connection, tenant: str, task_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of the tenant's tasks among ``task_ids`` (a page's worth)."""
    if not task_ids:
        return {}
    rows = conn.execute(
        sa.select(T.id, T.name).where(T.tenant == tenant, one_of(conn, T.id, list(task_ids)))
    )
    return {row.id: row.name for row in rows}
