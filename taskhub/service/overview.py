"""The console's overview: how one tenant's tasks have fared over the last hour.

Every figure comes from taskhub's own tables (executions, scheduled_tasks,
next_occurrences), never from the broker, so the overview reads the same on SQS as on
Redis. The hour is cut into :data:`BUCKETS` buckets of due time, so each figure has a
small series to chart beside its number.

What it costs (:func:`read_overview`): five queries, each answering a bounded number of
rows. The counts are grouped in the database (at most buckets times statuses rows). The
fire lag's percentiles are computed here from at most :data:`MAX_LAG_SAMPLE` sent
executions of the hour, a random sample when there are more (and
:attr:`Overview.lag_sampled` says so). The database reads the tenant's executions due in
the last hour (per task by the ``(task_id, scheduled_for)`` index, or one scan of
``executions`` when the tenant has most of them: the planner picks), its due backlog
(``next_occurrences``' key, the due ones only), its dead letters (no index on status:
a scan of the tenant's executions) and its tasks once. Measured on PostgreSQL with
100,000 tasks of one tenant, 1,000,000 executions, 90,000 of them due in the last hour
and a backlog of 45,000, on a shared 2-core machine: 0.7 to 1.5 s, mostly the two scans
of ``executions``; a tenant with an ordinary hour answers in milliseconds. Memory: the
sample, never the hour's rows.

:func:`summarize` is pure (rows in, figures out), so it is tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db import console_queries
from taskhub.observability.stats import quantile

#: The overview's window, cut into this many buckets of equal length.
WINDOW: Final = timedelta(hours=1)
BUCKETS: Final = 12
#: The most sent executions whose fire lag is read (a page is never unbounded).
MAX_LAG_SAMPLE: Final = 5_000

_ENDED: Final = frozenset(
    s.value for s in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.DEAD)
)
_SKIPPED: Final = ExecutionStatus.SKIPPED.value

Series = tuple[float | None, ...]


@dataclass(frozen=True)
class Overview:
    """One tenant's figures at ``at``; each ``*_series`` holds one value per bucket of
    the window, oldest first (None: nothing to measure in that bucket)."""

    at: datetime
    window_start: datetime
    bucket_seconds: int
    #: Occurrences fired (an execution written for them) with a due time in the window.
    fired: int
    fired_series: Series
    #: Of the window's executions that ended, the share that succeeded.
    success_rate: float | None
    success_series: Series
    #: How long after its due time an occurrence's first attempt started.
    lag_p50_s: float | None
    lag_p99_s: float | None
    lag_p99_series: Series
    lag_sampled: bool
    #: Occurrences due and not yet fired, and the oldest one's due time.
    backlog: int
    oldest_due: datetime | None
    oldest_due_age_s: float | None
    #: The backlog by due time (its older part counts in the first bucket).
    backlog_series: Series
    #: Every dead letter of the tenant; the series: the window's executions now dead.
    dead_letters: int
    dead_series: Series
    #: The tenant's paused tasks; the series: when those were paused.
    paused_tasks: int
    paused_series: Series
    #: The window's executions by status.
    statuses: dict[str, int]


def bucket_edges(now: datetime) -> list[datetime]:
    """The window's ``BUCKETS + 1`` edges, oldest first, the last one ``now``."""
    step = WINDOW / BUCKETS
    return [now - WINDOW + step * i for i in range(BUCKETS)] + [now]


def _bucket(edges: Sequence[datetime], when: datetime) -> int:
    """The bucket of ``when`` as the database's CASE computes it."""
    for index, edge in enumerate(edges[1:-1]):
        if when < edge:
            return index
    return len(edges) - 2


def _spread(by_bucket: Mapping[int, int], fold_older: bool = False) -> Series:
    """Counts by bucket as a series; ``fold_older``: what precedes the window counts in
    the first bucket (an old backlog is shown, not dropped)."""
    values = [float(by_bucket.get(i, 0)) for i in range(BUCKETS)]
    if fold_older:
        values[0] += by_bucket.get(-1, 0)
    return tuple(values)


def summarize(
    *,
    now: datetime,
    edges: Sequence[datetime],
    counts: Sequence[Mapping[str, Any]] | Sequence[RowMapping],
    fires: Sequence[Mapping[str, Any]] | Sequence[RowMapping],
    lag_sampled: bool,
    backlog: tuple[int, datetime | None, Mapping[int, int]],
    dead_letters: int,
    paused: tuple[int, Mapping[int, int]],
) -> Overview:
    """The figures from the queries' rows: ``counts`` (bucket, status, count), ``fires``
    (scheduled_for, started_at), the backlog (how many, oldest, by bucket), the dead
    letters and the paused tasks (how many, by bucket)."""
    per_bucket: list[dict[str, int]] = [{} for _ in range(BUCKETS)]
    statuses = dict.fromkeys((s.value for s in ExecutionStatus), 0)
    for row in counts:
        bucket, status, count = int(row["bucket"]), str(row["status"]), int(row["count"])
        if 0 <= bucket < BUCKETS:
            per_bucket[bucket][status] = per_bucket[bucket].get(status, 0) + count
        statuses[status] = statuses.get(status, 0) + count
    ended = [sum(c for s, c in b.items() if s in _ENDED) for b in per_bucket]
    succeeded = [b.get(ExecutionStatus.SUCCEEDED.value, 0) for b in per_bucket]
    lags: list[list[float]] = [[] for _ in range(BUCKETS)]
    for fire in fires:
        lag = max(0.0, (fire["started_at"] - fire["scheduled_for"]).total_seconds())
        lags[_bucket(edges, fire["scheduled_for"])].append(lag)
    every_lag = [lag for bucket in lags for lag in bucket]
    total_ended = sum(ended)
    count, oldest, backlog_buckets = backlog
    paused_count, paused_buckets = paused
    return Overview(
        at=now,
        window_start=edges[0],
        bucket_seconds=int((WINDOW / BUCKETS).total_seconds()),
        # A skipped occurrence (overlap policy) was never fired.
        fired=sum(c for s, c in statuses.items() if s != _SKIPPED),
        fired_series=tuple(
            float(sum(c for s, c in b.items() if s != _SKIPPED)) for b in per_bucket
        ),
        success_rate=sum(succeeded) / total_ended if total_ended else None,
        success_series=tuple(s / e if e else None for s, e in zip(succeeded, ended, strict=True)),
        lag_p50_s=quantile(every_lag, 0.5),
        lag_p99_s=quantile(every_lag, 0.99),
        lag_p99_series=tuple(quantile(bucket, 0.99) for bucket in lags),
        lag_sampled=lag_sampled,
        backlog=count,
        oldest_due=oldest,
        oldest_due_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        backlog_series=_spread(backlog_buckets, fold_older=True),
        dead_letters=dead_letters,
        dead_series=tuple(float(b.get(ExecutionStatus.DEAD.value, 0)) for b in per_bucket),
        paused_tasks=paused_count,
        paused_series=_spread(paused_buckets),
        statuses=statuses,
    )


def read_overview(conn: Connection, tenant: str, now: datetime) -> Overview:
    """The tenant's overview at ``now`` (see the module's docstring for what it costs)."""
    edges = bucket_edges(now)
    fires = console_queries.fire_times(conn, tenant, edges, MAX_LAG_SAMPLE + 1)
    return summarize(
        now=now,
        edges=edges,
        counts=console_queries.execution_counts(conn, tenant, edges),
        fires=fires[:MAX_LAG_SAMPLE],
        lag_sampled=len(fires) > MAX_LAG_SAMPLE,
        backlog=console_queries.due_backlog(conn, tenant, now, edges),
        dead_letters=console_queries.count_dead_letters(conn, tenant),
        paused=console_queries.paused_tasks(conn, tenant, edges),
    )
