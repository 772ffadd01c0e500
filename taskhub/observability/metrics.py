"""Prometheus metrics: the database's view of the scheduler, read at scrape time, and the
API's own request counter and latency.

The database is the source of truth, so the gauges are computed from it when Prometheus
scrapes rather than kept in process memory: every API replica reports the same numbers
and a restart loses nothing. A scrape that cannot reach the database still answers, with
``taskhub_database_up 0``, so an outage shows up as a metric instead of a failed scrape.
The gauges count every tenant's rows together; no tenant name appears in a label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy.exc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from taskhub.core.clock import utcnow
from taskhub.core.statuses import ExecutionStatus, PausedBy, TaskStatus, task_status
from taskhub.db import heartbeat_queries, metric_queries
from taskhub.observability import counters, heartbeat, metric_names

log = logging.getLogger(__name__)

#: The classic text format (what ``generate_latest`` writes), which every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets for API calls, in seconds (one database transaction each).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector(Collector):
    """Gauges read from the database at every scrape (one short read transaction)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self.started_at = clock()

    def describe(self) -> Iterable[Metric]:
        # Declared without reading the database, so registering the collector is free.
        return [
            GaugeMetricFamily(metric_names.DATABASE_UP, ""),
            GaugeMetricFamily(metric_names.TASKS, "", labels=["status"]),
            GaugeMetricFamily(metric_names.TASKS_PAUSED, "", labels=["paused_by"]),
            GaugeMetricFamily(metric_names.EXECUTIONS, "", labels=["status"]),
            GaugeMetricFamily(metric_names.DUE_BACKLOG, ""),
            GaugeMetricFamily(metric_names.OLDEST_DUE_AGE_SECONDS, ""),
            GaugeMetricFamily(metric_names.DEAD_LETTERS, ""),
            *(GaugeMetricFamily(name, "") for name in counters.FAMILIES),
            *(GaugeMetricFamily(name, "") for name in PROCESS_FAMILIES),
        ]

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            metric_names.DATABASE_UP, "1 if this scrape could read the database, else 0"
        )
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                task_states = metric_queries.count_tasks_by_state(conn)
                paused = metric_queries.count_paused_tasks(conn)
                execution_statuses = metric_queries.count_executions_by_status(conn)
                backlog, oldest_due = metric_queries.due_backlog(conn, now)
                stored = metric_queries.read_counters(conn)
                processes = heartbeat_queries.live_heartbeats(conn, heartbeat.live_since(now))
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.warning("metrics: cannot read the database (%s)", error.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        tasks = GaugeMetricFamily(metric_names.TASKS, "Tasks by status", labels=["status"])
        by_status = dict.fromkeys((s.value for s in TaskStatus), 0)
        for (is_active, is_finished), count in task_states.items():
            by_status[task_status(is_active=is_active, is_finished=is_finished).value] += count
        for status, count in by_status.items():
            tasks.add_metric([status], count)
        yield tasks

        paused_tasks = GaugeMetricFamily(
            metric_names.TASKS_PAUSED,
            "Paused tasks by who paused them: user, auto_pause (failures in a row), or "
            "target_gone (the target answered 410 Gone)",
            labels=["paused_by"],
        )
        by_whom = dict.fromkeys((p.value for p in PausedBy), 0)
        for paused_by, count in paused.items():
            # Paused before taskhub recorded who pauses: only a user could have.
            by_whom[paused_by or PausedBy.USER.value] += count
        for paused_by, count in by_whom.items():
            paused_tasks.add_metric([paused_by], count)
        yield paused_tasks

        executions = GaugeMetricFamily(
            metric_names.EXECUTIONS, "Executions by status", labels=["status"]
        )
        for status in ExecutionStatus:
            executions.add_metric([status.value], execution_statuses.get(status.value, 0))
        yield executions

        yield GaugeMetricFamily(
            metric_names.DUE_BACKLOG,
            "Active tasks whose next execution time has come and that no tick has claimed yet",
            value=backlog,
        )
        age = 0.0 if oldest_due is None else max(0.0, (now - oldest_due).total_seconds())
        yield GaugeMetricFamily(
            metric_names.OLDEST_DUE_AGE_SECONDS,
            "How long the longest-waiting due task has waited to be claimed (0 if none)",
            value=age,
        )
        yield GaugeMetricFamily(
            metric_names.DEAD_LETTERS,
            "Executions that exhausted their attempts and wait for a redrive",
            value=execution_statuses.get(ExecutionStatus.DEAD.value, 0),
        )
        yield from stored_families(stored)
        own = heartbeat.measure("api", self.engine, self.started_at, now, 0)
        yield from process_families([*(dict(p) for p in processes), own])


def stored_families(stored: Mapping[tuple[str, str], float]) -> Iterator[Metric]:
    """The counters, histograms and gauges kept in ``metric_counters`` (every family in
    ``counters.FAMILIES`` appears, at zero before anything was counted)."""
    samples: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for (name, label_text), value in stored.items():
        family = counters.family_of(name)
        samples.setdefault(family, []).append((name, counters.parse_labels(label_text), value))
    for family, spec in counters.FAMILIES.items():
        rows = samples.get(family, [])
        if spec.kind == "counter":
            label_names = sorted({k for _, labels, _ in rows for k in labels})
            metric = CounterMetricFamily(family, spec.help, labels=label_names)
            if not rows and not label_names:
                metric.add_metric([], 0.0)
            for _, labels, value in sorted(rows, key=lambda r: sorted(r[1].items())):
                metric.add_metric([labels.get(k, "") for k in label_names], value)
            yield metric
        elif spec.kind == "gauge":
            yield GaugeMetricFamily(family, spec.help, value=rows[0][2] if rows else 0.0)
        else:
            yield _histogram(family, spec.help, rows)


def _histogram(
    family: str, help_text: str, rows: list[tuple[str, dict[str, str], float]]
) -> HistogramMetricFamily:
    buckets = {labels["le"]: value for name, labels, value in rows if name.endswith("_bucket")}
    total = sum(value for name, _, value in rows if name.endswith("_sum"))
    count = sum(value for name, _, value in rows if name.endswith("_count"))
    bounds = sorted((float(le), le) for le in buckets)
    cumulative = [(le, buckets[le]) for _, le in bounds]
    if not cumulative or cumulative[-1][0] != "+Inf":
        cumulative.append(("+Inf", count))
    metric = HistogramMetricFamily(family, help_text)
    metric.add_metric([], cumulative, sum_value=total)
    return metric


class ProcessFigure(NamedTuple):
    """One figure every process measures of itself: its heartbeat column, and the family
    /metrics shows it as (a gauge, or a counter for the totals that only grow)."""

    column: str
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily]
    family: str
    help: str


PROCESS_FIGURES = (
    ProcessFigure(
        "rss_bytes",
        GaugeMetricFamily,
        metric_names.PROCESS_RESIDENT_MEMORY_BYTES,
        "Resident memory",
    ),
    ProcessFigure(
        "in_flight",
        GaugeMetricFamily,
        metric_names.PROCESS_TRIGGERS_IN_FLIGHT,
        "Trigger requests handed to the process's HTTP client and not yet ended",
    ),
    ProcessFigure(
        "db_pool_size",
        GaugeMetricFamily,
        metric_names.DB_POOL_SIZE,
        "Connections the process's pool keeps",
    ),
    ProcessFigure(
        "db_pool_checked_out",
        GaugeMetricFamily,
        metric_names.DB_POOL_CHECKED_OUT,
        "Connections of the process's pool in use",
    ),
    ProcessFigure(
        "db_queries",
        CounterMetricFamily,
        metric_names.DB_QUERIES,
        "Database statements the process ran",
    ),
    ProcessFigure(
        "db_query_seconds",
        CounterMetricFamily,
        metric_names.DB_QUERY_SECONDS,
        "Time the process spent in database statements",
    ),
)
PROCESS_FAMILIES = tuple(figure.family for figure in PROCESS_FIGURES)


def process_families(processes: Iterable[Mapping[str, Any]]) -> Iterator[Metric]:
    """Each live process's own figures (from its heartbeat; the scraping API's, live)."""
    families = {
        figure.column: figure.kind(figure.family, figure.help, labels=["process", "role"])
        for figure in PROCESS_FIGURES
    }
    for p in processes:
        labels = [str(p["process"]), str(p["role"])]
        for column, family in families.items():
            family.add_metric(labels, float(p[column]))
    yield from families.values()


class Metrics:
    """One registry per API app (tests build many apps; the global registry would clash)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(DatabaseCollector(engine, clock))
        self.api_requests = Counter(
            metric_names.API_REQUESTS,
            "API requests by method, route template and response status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.api_latency = Histogram(
            metric_names.API_REQUEST_DURATION_SECONDS,
            "API request latency by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.api_requests.labels(method, route, str(status)).inc()
        self.api_latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (reads the database)."""
        return generate_latest(self.registry)
