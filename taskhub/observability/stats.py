"""`taskhub stats`: the KPIs of the system this replaces, read from the database.

Everything comes from taskhub's own tables, like /metrics, so it works on any broker:
task and execution counts, the due backlog, the last tick, and over a recent window
(default five minutes) the attempts made, their success rate, timeouts, fire lag and
target latency percentiles; then each live process's memory, requests in flight,
database pool and query time (from its heartbeat).

:func:`summarize` is pure (rows in, figures out) and :func:`render` only formats, so
both are tested without a database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus, TaskStatus, task_status
from taskhub.db import heartbeat_queries, metric_queries
from taskhub.observability import counters, heartbeat, metric_names


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile by the nearest-rank method (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Process:
    process: str
    role: str
    rss_mb: float
    in_flight: int
    db_pool_checked_out: int
    db_pool_size: int
    db_queries: int
    db_query_avg_ms: float | None
    seen_s_ago: float


@dataclass(frozen=True)
class Figures:
    at: str
    window_s: float
    tasks: dict[str, int]
    tasks_auto_paused: int
    executions: dict[str, int]
    due_backlog: int
    oldest_due_age_s: float
    last_tick_age_s: float | None
    tick_duration_avg_s: float | None
    attempts: int
    attempts_per_minute: float
    success_rate: float | None
    timeouts: int
    retries: int
    fire_lag_p50_s: float | None
    fire_lag_p99_s: float | None
    fire_lag_max_s: float | None
    target_latency_p50_s: float | None
    target_latency_p99_s: float | None
    processes: list[Process] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    *,
    now: datetime,
    window_s: float,
    task_states: Mapping[tuple[bool, bool], int],
    paused_by: Mapping[str | None, int],
    execution_statuses: Mapping[str, int],
    backlog: int,
    oldest_due: datetime | None,
    stored: Mapping[tuple[str, str], float],
    attempts: Sequence[Mapping[str, Any]] | Sequence[RowMapping],
    heartbeats: Sequence[Mapping[str, Any]] | Sequence[RowMapping],
) -> Figures:
    tasks = dict.fromkeys((s.value for s in TaskStatus), 0)
    for (is_active, is_finished), count in task_states.items():
        tasks[task_status(is_active=is_active, is_finished=is_finished).value] += count
    outcomes = [counters.attempt_outcome(a["http_status"], a["error_kind"]) for a in attempts]
    lags = [
        max(0.0, (a["started_at"] - a["scheduled_for"]).total_seconds())
        for a in attempts
        if a["number"] == 1
    ]
    latencies = [a["duration_ms"] / 1000 for a in attempts]
    waited_s = 0.0 if oldest_due is None else max(0.0, (now - oldest_due).total_seconds())
    last_tick = stored.get((metric_names.LAST_TICK, ""))
    tick_count = stored.get((f"{metric_names.TICK_DURATION_SECONDS}_count", ""), 0.0)
    tick_sum = stored.get((f"{metric_names.TICK_DURATION_SECONDS}_sum", ""), 0.0)
    return Figures(
        at=now.isoformat(),
        window_s=window_s,
        tasks=tasks,
        tasks_auto_paused=paused_by.get("auto_pause", 0),
        executions={s.value: execution_statuses.get(s.value, 0) for s in ExecutionStatus},
        due_backlog=backlog,
        oldest_due_age_s=waited_s,
        last_tick_age_s=None if last_tick is None else max(0.0, now.timestamp() - last_tick),
        tick_duration_avg_s=tick_sum / tick_count if tick_count else None,
        attempts=len(attempts),
        attempts_per_minute=len(attempts) * 60 / window_s,
        success_rate=outcomes.count("success") / len(outcomes) if outcomes else None,
        timeouts=outcomes.count("timeout"),
        retries=sum(1 for a in attempts if a["number"] > 1),
        fire_lag_p50_s=quantile(lags, 0.5),
        fire_lag_p99_s=quantile(lags, 0.99),
        fire_lag_max_s=max(lags) if lags else None,
        target_latency_p50_s=quantile(latencies, 0.5),
        target_latency_p99_s=quantile(latencies, 0.99),
        processes=[
            Process(
                process=str(h["process"]),
                role=str(h["role"]),
                rss_mb=h["rss_bytes"] / 1e6,
                in_flight=int(h["in_flight"]),
                db_pool_checked_out=int(h["db_pool_checked_out"]),
                db_pool_size=int(h["db_pool_size"]),
                db_queries=int(h["db_queries"]),
                db_query_avg_ms=h["db_query_seconds"] * 1000 / h["db_queries"]
                if h["db_queries"]
                else None,
                seen_s_ago=max(0.0, (now - h["seen_at"]).total_seconds()),
            )
            for h in heartbeats
        ],
    )


def read(conn: Connection, now: datetime, window_s: float) -> Figures:
    backlog, oldest_due = metric_queries.due_backlog(conn, now)
    return summarize(
        now=now,
        window_s=window_s,
        task_states=metric_queries.count_tasks_by_state(conn),
        paused_by=metric_queries.count_paused_tasks(conn),
        execution_statuses=metric_queries.count_executions_by_status(conn),
        backlog=backlog,
        oldest_due=oldest_due,
        stored=metric_queries.read_counters(conn),
        attempts=metric_queries.attempt_outcomes_since(conn, now - timedelta(seconds=window_s)),
        heartbeats=heartbeat_queries.live_heartbeats(conn, heartbeat.live_since(now)),
    )


def _s(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if unit == "s" and value < 1 else f"{value:.2f} {unit}"


def render(f: Figures) -> str:
    """A screenful of plain text (no colours: it is read over ssh and in CI logs too)."""
    rate = "—" if f.success_rate is None else f"{f.success_rate * 100:.1f} %"
    lines = [
        f"taskhub stats at {f.at}  (rates over the last {f.window_s:.0f} s)",
        "",
        "tasks        "
        + "  ".join(f"{k} {v}" for k, v in f.tasks.items())
        + f"  (auto-paused {f.tasks_auto_paused})",
        "executions   " + "  ".join(f"{k} {v}" for k, v in f.executions.items()),
        f"backlog      {f.due_backlog} due and unclaimed, oldest waiting {_s(f.oldest_due_age_s)}",
        f"tick         last {_s(f.last_tick_age_s)} ago, average {_s(f.tick_duration_avg_s)}",
        f"attempts     {f.attempts} ({f.attempts_per_minute:.1f}/min), success {rate}, "
        f"timeouts {f.timeouts}, retries {f.retries}",
        f"fire lag     p50 {_s(f.fire_lag_p50_s)}  p99 {_s(f.fire_lag_p99_s)}  "
        f"max {_s(f.fire_lag_max_s)}",
        f"target       p50 {_s(f.target_latency_p50_s)}  p99 {_s(f.target_latency_p99_s)}",
        "",
        f"{'process':<36} {'role':<8} {'memory':>9} {'in flight':>9} {'db pool':>8} "
        f"{'queries':>9} {'avg query':>10} {'seen':>6}",
    ]
    for p in f.processes:
        avg = "—" if p.db_query_avg_ms is None else f"{p.db_query_avg_ms:.1f} ms"
        lines.append(
            f"{p.process[:36]:<36} {p.role[:8]:<8} {p.rss_mb:>6.0f} MB {p.in_flight:>9} "
            f"{p.db_pool_checked_out:>3}/{p.db_pool_size:<4} {p.db_queries:>9} {avg:>10} "
            f"{p.seen_s_ago:>4.0f} s"
        )
    if not f.processes:
        lines.append("(no process has reported in the last minute: are workers running?)")
    return "\n".join(lines)
