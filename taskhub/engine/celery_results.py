"""The result check: tracked Celery tasks end when their result comes, or when it is due.

A tracked Celery task whose message its broker accepted stays ``running`` with
``result_due_by`` set and no lease (``writeback``): nothing sends it again. Every
:data:`CHECK_INTERVAL_S` this check reads the results of all such executions, in pages
of :data:`PAGE_SIZE`, one read per page and result backend (a Redis ``MGET`` of
``celery-task-meta-<id>``; a ``SELECT`` of ``celery_taskmeta`` for a ``db+`` backend),
and ends those whose result is final (``core.celery_results``) or overdue (failed, "timed
out waiting for the Celery result after N s"). A FAILURE is never retried.

It runs in its own thread of the process that runs the staging loop, never on a trigger
thread: a trigger thread's send ends when the broker accepts the message. The backends
are read outside any transaction; each page ends in one short transaction that locks
only what still awaits its result, so two checkers end nothing twice, and tasks are
updated through the write-back's own ``finish_tasks`` (last status, failures in a row,
count, auto-pause).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

import redis
from sqlalchemy.engine import Engine, RowMapping

from taskhub.core import celery_results
from taskhub.core.celery_results import Settled
from taskhub.core.named_urls import masked_url
from taskhub.core.statuses import ExecutionStatus
from taskhub.db import celery_taskmeta, metric_queries, result_queries, task_queries
from taskhub.db.rows import ResultEnd
from taskhub.engine import callback_outbox
from taskhub.engine.once_threads import OnceThread
from taskhub.engine.writeback import Ended, finish_tasks
from taskhub.observability import counters

log = logging.getLogger(__name__)

#: How often the check runs, in seconds.
CHECK_INTERVAL_S: Final = 1.0
#: Executions read, and results fetched per backend, at once.
PAGE_SIZE: Final = 1000
#: A backend that does not answer within this many seconds is read again next pass.
BACKEND_TIMEOUT_S: Final = 2.0


class Reader(Protocol):
    def __call__(self, url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        """The final states among ``task_ids``' results on the backend at ``url``."""
        ...


class Backends:
    """This process's clients of the result backends, one per URL, made when first read."""

    def __init__(self) -> None:
        self._redis: dict[str, redis.Redis] = {}
        self._databases: dict[str, Engine] = {}

    def read(self, url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        if celery_results.backend_kind(url) == "redis":
            return self._read_redis(url, task_ids)
        return self._read_database(url, task_ids)

    def _read_redis(self, url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        client = self._redis.get(url)
        if client is None:
            client = self._redis[url] = redis.Redis.from_url(
                url, socket_timeout=BACKEND_TIMEOUT_S, socket_connect_timeout=BACKEND_TIMEOUT_S
            )
        values = client.mget([celery_results.redis_key(task_id) for task_id in task_ids])
        found = {}
        for task_id, value in zip(task_ids, values, strict=True):
            settled = celery_results.from_redis(value)
            if settled is not None:
                found[task_id] = settled
        return found

    def _read_database(self, url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        engine = self._databases.get(url)
        if engine is None:
            engine = self._databases[url] = celery_taskmeta.connect(
                url.removeprefix(celery_results.DATABASE_PREFIX)
            )
        found = {}
        for task_id, status, result in celery_taskmeta.read_results(engine, task_ids):
            settled = celery_results.from_database(status, result)
            if settled is not None:
                found[task_id] = settled
        return found

    def close(self) -> None:
        for client in self._redis.values():
            client.close()
        for engine in self._databases.values():
            engine.dispose()
        self._redis.clear()
        self._databases.clear()


@dataclass
class CheckReport:
    """What one pass did."""

    awaiting: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    #: Read by another checker meanwhile (or ended by it): left to it.
    skipped: int = 0
    #: Backends that could not be read this pass (their overdue executions still end).
    unreadable: list[str] = field(default_factory=list)


def check(
    engine: Engine,
    backend_urls: Mapping[str, str],
    read: Reader,
    now: Callable[[], datetime],
) -> CheckReport:
    """One pass over every execution awaiting its result."""
    report = CheckReport()
    after_id = 0
    while True:
        with engine.connect() as conn:
            page = result_queries.awaiting_results(conn, after_id, PAGE_SIZE)
        if not page:
            return report
        after_id = page[-1]["id"]
        report.awaiting += len(page)
        _end(engine, _ends(page, backend_urls, read, now(), report), now(), report)
        if len(page) < PAGE_SIZE:
            return report


def _ends(
    page: Sequence[RowMapping],
    backend_urls: Mapping[str, str],
    read: Reader,
    now: datetime,
    report: CheckReport,
) -> dict[int, tuple[Settled, bool]]:
    """Per execution id: how it ends (and whether by its timeout); the others wait on."""
    by_backend: dict[str, list[RowMapping]] = {}
    ends: dict[int, tuple[Settled, bool]] = {}
    for row in page:
        broker = (row["celery"] or {}).get("broker")
        url = backend_urls.get(broker) if isinstance(broker, str) else None
        if url is None or celery_results.backend_kind(url) is None:
            error = (
                celery_results.unsupported_backend_error(url)
                if url is not None
                else f"no result backend is configured for the broker {broker}"
            )
            ends[row["id"]] = (Settled(ExecutionStatus.FAILED, error), False)
            continue
        by_backend.setdefault(url, []).append(row)
    for url, rows in by_backend.items():
        try:
            found = read(url, [row["idempotency_key"] for row in rows])
        except Exception:  # away for now: read again at the next pass
            log.warning(
                "the result backend %s could not be read",
                masked_url(url),
                exc_info=True,
            )
            report.unreadable.append(masked_url(url))
            found = {}
        for row in rows:
            settled = found.get(row["idempotency_key"])
            if settled is not None:
                ends[row["id"]] = (settled, False)
            elif row["result_due_by"] <= now:
                timeout_s = row["timeout_seconds"] or (
                    (row["result_due_by"] - row["started_at"]).total_seconds()
                )
                error = celery_results.timed_out_error(timeout_s)
                ends[row["id"]] = (Settled(ExecutionStatus.FAILED, error), True)
    return ends


def _end(
    engine: Engine,
    ends: dict[int, tuple[Settled, bool]],
    now: datetime,
    report: CheckReport,
) -> None:
    if not ends:
        return
    with engine.begin() as conn:
        locked = result_queries.lock_awaiting(conn, list(ends))
        report.skipped += len(ends) - len(locked)
        tasks = task_queries.lock_tasks(conn, {row["task_id"] for row in locked.values()})
        rows: list[ResultEnd] = []
        ended: dict[uuid.UUID, list[Ended]] = {}
        deliveries: list[callback_outbox.Delivery] = []
        for execution_id, row in locked.items():
            task = tasks.get(row["task_id"])
            if task is None:  # deleted meanwhile; its executions went with it
                continue
            settled, timed_out = ends[execution_id]
            rows.append(ResultEnd(execution_id, settled.status.value, settled.error, now))
            ended.setdefault(row["task_id"], []).append(
                Ended(
                    row["scheduled_for"],
                    settled.status,
                    row["started_at"] or now,
                    row["attempt_offset"] > 0,
                    settled.error,
                )
            )
            delivery = callback_outbox.delivery(
                task, row, settled.status.value, row["attempts"], None, row["duration_ms"], None
            )
            if delivery is not None:
                deliveries.append(delivery)
            _count(report, settled, timed_out)
            _log_end(row, settled)
        result_queries.end_awaiting(conn, rows)
        callback_outbox.write(conn, deliveries, now)
        finish_tasks(conn, tasks, ended, now)
        metric_queries.add_to_counters(conn, counters.for_finished(r.status for r in rows))


def _count(report: CheckReport, settled: Settled, timed_out: bool) -> None:
    if settled.status is ExecutionStatus.SUCCEEDED:
        report.succeeded += 1
    elif timed_out:
        report.timed_out += 1
    else:
        report.failed += 1


def _log_end(row: RowMapping, settled: Settled) -> None:
    level = logging.DEBUG if settled.status is ExecutionStatus.SUCCEEDED else logging.WARNING
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "execution %s of task %s due %s: Celery result %s%s",
        row["id"],
        row["task_id"],
        row["scheduled_for"].isoformat(),
        settled.status.value,
        f" ({settled.error})" if settled.error else "",
        extra={
            "task_id": str(row["task_id"]),
            "execution_id": row["id"],
            "scheduled_for": row["scheduled_for"].isoformat(),
            "status": settled.status.value,
        },
    )


def run(
    engine: Engine,
    backend_urls: Mapping[str, str],
    now: Callable[[], datetime],
    stop: threading.Event,
) -> None:
    """Until ``stop`` is set: a pass every :data:`CHECK_INTERVAL_S`."""
    backends = Backends()
    try:
        while not stop.wait(CHECK_INTERVAL_S):
            started = time.monotonic()
            try:
                report = check(engine, backend_urls, backends.read, now)
            except Exception:  # the database is away: the next pass tries again
                log.warning("result check failed; retrying at the next pass", exc_info=True)
                continue
            ended = report.succeeded + report.failed + report.timed_out
            if ended:
                log.info(
                    "results: %d succeeded, %d failed, %d timed out of %d awaiting (%.0f ms)",
                    report.succeeded,
                    report.failed,
                    report.timed_out,
                    report.awaiting,
                    (time.monotonic() - started) * 1000,
                )
    finally:
        backends.close()


_thread = OnceThread("taskhub-results")


def start(
    engine: Engine, backend_urls: Mapping[str, str], now: Callable[[], datetime]
) -> threading.Event:
    """Start this process's result check (once); returns the event that stops it."""
    return _thread.start(lambda stop: run(engine, backend_urls, now, stop))
