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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import sqlalchemy.exc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from taskhub import queries
from taskhub.statuses import ExecutionStatus, PausedBy, TaskStatus, task_status

log = logging.getLogger(__name__)

#: The classic text format (what ``generate_latest`` writes), which every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets for API calls, in seconds (one database transaction each).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseCollector(Collector):
    """Gauges read from the database at every scrape (one short read transaction)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        # Declared without reading the database, so registering the collector is free.
        return [
            GaugeMetricFamily("taskhub_database_up", ""),
            GaugeMetricFamily("taskhub_tasks", "", labels=["status"]),
            GaugeMetricFamily("taskhub_tasks_paused", "", labels=["paused_by"]),
            GaugeMetricFamily("taskhub_executions", "", labels=["status"]),
            GaugeMetricFamily("taskhub_due_backlog", ""),
            GaugeMetricFamily("taskhub_oldest_due_age_seconds", ""),
            GaugeMetricFamily("taskhub_dead_letters", ""),
        ]

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "taskhub_database_up", "1 if this scrape could read the database, else 0"
        )
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                task_states = queries.count_tasks_by_state(conn)
                paused = queries.count_paused_tasks(conn)
                execution_statuses = queries.count_executions_by_status(conn)
                backlog, oldest_due = queries.due_backlog(conn, now)
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.warning("metrics: cannot read the database (%s)", error.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        tasks = GaugeMetricFamily("taskhub_tasks", "Tasks by status", labels=["status"])
        by_status = dict.fromkeys((s.value for s in TaskStatus), 0)
        for (is_active, is_finished), count in task_states.items():
            by_status[task_status(is_active=is_active, is_finished=is_finished).value] += count
        for status, count in by_status.items():
            tasks.add_metric([status], count)
        yield tasks

        paused_tasks = GaugeMetricFamily(
            "taskhub_tasks_paused",
            "Paused tasks by who paused them: user, or auto_pause (failures in a row)",
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
            "taskhub_executions", "Executions by status", labels=["status"]
        )
        for status in ExecutionStatus:
            executions.add_metric([status.value], execution_statuses.get(status.value, 0))
        yield executions

        yield GaugeMetricFamily(
            "taskhub_due_backlog",
            "Active tasks whose next execution time has come and that no tick has claimed yet",
            value=backlog,
        )
        age = 0.0 if oldest_due is None else max(0.0, (now - oldest_due).total_seconds())
        yield GaugeMetricFamily(
            "taskhub_oldest_due_age_seconds",
            "How long the longest-waiting due task has waited to be claimed (0 if none)",
            value=age,
        )
        yield GaugeMetricFamily(
            "taskhub_dead_letters",
            "Executions that exhausted their attempts and wait for a redrive",
            value=execution_statuses.get(ExecutionStatus.DEAD.value, 0),
        )


class Metrics:
    """One registry per API app (tests build many apps; the global registry would clash)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(DatabaseCollector(engine, clock))
        self.api_requests = Counter(
            "taskhub_api_requests",
            "API requests by method, route template and response status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.api_latency = Histogram(
            "taskhub_api_request_duration_seconds",
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
