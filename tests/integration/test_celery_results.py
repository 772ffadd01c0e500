"""The result check of tracked Celery tasks (``engine.celery_results``): on SQLite and
PostgreSQL with results given by the test, and end to end with a real worker of the
user's app (``tests.userapp``) writing its results to real Redis."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from taskhub.core.celery_results import Settled, from_redis
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import load
from taskhub.db import metric_queries, result_queries
from taskhub.db.models import scheduled_tasks
from taskhub.engine import celery_results, firing, writeback
from taskhub.service import task_service
from tests.support.celery_user import user_worker
from tests.support.processes import wait_until
from tests.support.storage import NOW, SETTINGS, claim_all, execution_rows

Q = {"queue": "tracked"}
BACKENDS = {"default": "redis://127.0.0.1:6379/9"}
DUE = NOW + timedelta(seconds=30)
SUCCESS = b'{"status": "SUCCESS", "result": 1, "task_id": "x"}'
FAILURE = (
    b'{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["boom 7"],'
    b' "exc_module": "builtins"}}'
)


def add(
    engine: Engine,
    name: str,
    call: Mapping[str, Any],
    timeout_s: int = 30,
    schedule: dict[str, Any] | None = None,
    **extra: Any,
) -> uuid.UUID:
    created = NOW - timedelta(hours=1)
    data = {
        "name": name,
        "schedule": schedule or {"at": (NOW - timedelta(seconds=1)).isoformat()},
        "target": {
            "celery": {"task": "userapp.tasks.record", "track": True, **call},
            "timeout_seconds": timeout_s,
        },
        **extra,
    }
    with engine.begin() as conn:
        return task_service.create_task(conn, parse_definition(data, created), created, SETTINGS)


def sent(requests: Sequence[TriggerRequest], engine: Engine, due_by: datetime = DUE) -> None:
    """Each request's message accepted by its broker: running until its result."""
    outcomes = [
        TriggerOutcome(r.execution_id, r.attempt, NOW, 3, accepted=True, result_due_by=due_by)
        for r in requests
    ]
    report = writeback.record_outcomes(engine, outcomes, SETTINGS, NOW, lambda: 1.0)
    assert report.awaiting_result == len(requests)


class Results:
    """A result backend given by the test: Redis values by task id; every read recorded."""

    def __init__(self, values: Mapping[str, bytes]) -> None:
        self.values = dict(values)
        self.reads: list[tuple[str, list[str]]] = []

    def __call__(self, url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        self.reads.append((url, list(task_ids)))
        found = {i: from_redis(self.values.get(i)) for i in task_ids}
        return {i: s for i, s in found.items() if s is not None}


def task_row(engine: Engine, task_id: uuid.UUID) -> RowMapping:
    with engine.connect() as conn:
        query = sa.select(scheduled_tasks).where(scheduled_tasks.c.id == task_id)
        return conn.execute(query).mappings().one()


def finished_counts(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        counts = metric_queries.read_counters(conn)
    return {
        labels: value
        for (name, labels), value in counts.items()
        if name == "taskhub_executions_finished_total"
    }


def test_success_failure_revoked_and_timeout_end_their_executions_once(engine: Engine) -> None:
    ids = {name: add(engine, name, {}) for name in ("ok", "bad", "revoked", "late", "pending")}
    requests = claim_all(engine, NOW)
    sent([r for r in requests if r.task_id != str(ids["late"])], engine)
    [late] = [r for r in requests if r.task_id == str(ids["late"])]
    sent([late], engine, due_by=NOW + timedelta(seconds=5))
    key = {uuid.UUID(r.task_id): r.idempotency_key for r in requests}
    results = Results(
        {
            key[ids["ok"]]: SUCCESS,
            key[ids["bad"]]: FAILURE,
            key[ids["revoked"]]: b'{"status": "REVOKED", "result": null}',
            key[ids["pending"]]: b'{"status": "STARTED", "result": {"pid": 1}}',
        }
    )
    before = finished_counts(engine)

    report = celery_results.check(engine, BACKENDS, results, lambda: NOW + timedelta(seconds=10))
    assert (report.awaiting, report.succeeded, report.failed, report.timed_out) == (5, 1, 2, 1)
    # One read of the backend for the page: every task id at once.
    assert [(url, len(task_ids)) for url, task_ids in results.reads] == [(BACKENDS["default"], 5)]
    rows = {row["task_id"]: row for row in execution_rows(engine)}
    ended = {name: (rows[i]["status"], rows[i]["error"]) for name, i in ids.items()}
    assert ended == {
        "ok": ("succeeded", None),
        "bad": ("failed", "ValueError: boom 7"),
        "revoked": ("failed", "revoked"),
        "late": ("failed", "timed out waiting for the Celery result after 30 s"),
        "pending": ("running", None),
    }
    for name in ("ok", "bad", "revoked", "late"):
        row = rows[ids[name]]
        assert row["result_due_by"] is None and row["next_attempt_at"] is None
        assert row["finished_at"] == NOW + timedelta(seconds=10) and row["attempts"] == 1
    assert rows[ids["pending"]]["result_due_by"] == DUE
    tasks = {name: task_row(engine, i) for name, i in ids.items()}
    assert tasks["ok"]["last_status"] == "succeeded" and tasks["ok"]["is_finished"]
    assert tasks["bad"]["last_status"] == "failed" and tasks["bad"]["consecutive_failures"] == 1
    assert tasks["ok"]["execution_count"] == tasks["bad"]["execution_count"] == 1
    assert not tasks["pending"]["is_finished"] and tasks["pending"]["execution_count"] == 0
    after = finished_counts(engine)
    assert after.get('{"status":"succeeded"}', 0) - before.get('{"status":"succeeded"}', 0) == 1
    assert after.get('{"status":"failed"}', 0) - before.get('{"status":"failed"}', 0) == 3

    # Checked again (or by a second checker that read the same results): nothing changes,
    # nothing is counted twice, and nothing was sent again.
    again = celery_results.check(engine, BACKENDS, results, lambda: NOW + timedelta(seconds=10))
    assert (again.awaiting, again.succeeded, again.failed, again.timed_out) == (1, 0, 0, 0)
    assert finished_counts(engine) == after
    assert claim_all(engine, NOW + timedelta(days=1)) == []
    # The pending one times out at its due time.
    final = celery_results.check(engine, BACKENDS, results, lambda: DUE)
    assert final.timed_out == 1
    assert task_row(engine, ids["pending"])["last_status"] == "failed"


def test_a_result_read_by_two_checkers_is_written_once(engine: Engine) -> None:
    task_id = add(engine, "ok", {})
    [request] = claim_all(engine, NOW)
    sent([request], engine)
    results = Results({request.idempotency_key: FAILURE})
    page = celery_results._ends(
        _awaiting(engine),
        BACKENDS,
        results,
        NOW,
        celery_results.CheckReport(),
    )
    first, second = celery_results.CheckReport(), celery_results.CheckReport()
    celery_results._end(engine, page, NOW, first)
    celery_results._end(engine, page, NOW, second)
    assert (first.failed, second.failed, second.skipped) == (1, 0, 1)
    task = task_row(engine, task_id)
    assert (task["consecutive_failures"], task["execution_count"]) == (1, 1)


def _awaiting(engine: Engine) -> Sequence[RowMapping]:
    with engine.connect() as conn:
        return result_queries.awaiting_results(conn, 0, 100)


def test_a_failure_counts_toward_the_auto_pause(engine: Engine) -> None:
    every_hour = {"interval_seconds": 3600}
    task_id = add(engine, "bad", {}, auto_pause_after_failures=1, schedule=every_hour)
    request = claim_all(engine, NOW)[0]
    sent([request], engine)
    celery_results.check(engine, BACKENDS, Results({request.idempotency_key: FAILURE}), lambda: NOW)
    task = task_row(engine, task_id)
    assert (task["is_active"], task["paused_by"]) == (False, "auto_pause")
    assert "ValueError: boom 7" in task["paused_reason"]


def test_an_unreadable_backend_ends_only_what_is_overdue(engine: Engine) -> None:
    add(engine, "a", {})
    [request] = claim_all(engine, NOW)
    sent([request], engine)

    def away(url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        raise ConnectionError("backend down")

    report = celery_results.check(engine, BACKENDS, away, lambda: NOW)
    assert report.unreadable == ["redis://127.0.0.1:6379/9"] and report.timed_out == 0
    assert celery_results.check(engine, BACKENDS, away, lambda: DUE).timed_out == 1


def test_a_database_backend_is_read_and_a_pickled_failure_is_not_unpickled(
    tmp_path: Path,
) -> None:
    """Celery's ``celery_taskmeta`` as its database backend writes it: JSON since 5.7,
    pickled before."""
    path = tmp_path / "results.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE celery_taskmeta (task_id TEXT, status TEXT, result BLOB)")
        db.executemany(
            "INSERT INTO celery_taskmeta VALUES (?, ?, ?)",
            [
                ("ok", "SUCCESS", b"\x80\x05K\x01."),
                ("bad", "FAILURE", b'{"exc_type": "KeyError", "exc_message": ["k"]}'),
                ("old", "FAILURE", b"\x80\x05\x95..."),
                ("started", "STARTED", None),
            ],
        )
    backends = celery_results.Backends()
    try:
        found = backends.read(f"db+sqlite:///{path}", ["ok", "bad", "old", "started", "none"])
    finally:
        backends.close()
    assert {i: (s.status.value, s.error) for i, s in found.items()} == {
        "ok": ("succeeded", None),
        "bad": ("failed", "KeyError: k"),
        "old": (
            "failed",
            "FAILURE, with a pickled result (Celery before 5.7 writes its database backend's "
            "results so); taskhub does not unpickle it",
        ),
    }


@pytest.fixture(autouse=True)
def _fresh_trigger_loop() -> Any:
    yield
    firing.shutdown()


def test_a_real_worker_s_success_failure_and_timeout(
    pg_engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    """The user's worker writes its results to Redis; taskhub sends each task once and
    ends each execution from what the worker wrote, or from its timeout."""
    engine = pg_engine
    ids = {
        "ok": add(engine, "ok", {"args": [1]} | Q),
        "bad": add(engine, "bad", {"task": "userapp.tasks.fail", "args": ["quota", 7]} | Q),
        "slow": add(
            engine,
            "slow",
            {"task": "userapp.tasks.sleep", "args": [6]} | Q,
            timeout_s=2,
        ),
    }
    requests = claim_all(engine, NOW)
    settings = load(
        {
            "TASKHUB_BROKER_URL": "filesystem://",
            "TASKHUB_CELERY_BROKERS": f"default={redis_url}",
            "TASKHUB_CELERY_RESULT_BACKENDS": f"default={redis_url}",
        }
    )
    backend_urls = settings.celery_result_backends
    worker_env = {"USERAPP_RESULT_BACKEND": redis_url}
    with user_worker(redis_url, redis_url, tmp_path, queues="tracked", env=worker_env) as worker:
        outcomes = firing.fire(requests, settings)
        assert all(o.accepted and o.result_due_by is not None for o in outcomes), outcomes
        report = writeback.record_outcomes(engine, outcomes, SETTINGS, NOW, lambda: 1.0)
        assert report.awaiting_result == 3
        backends = celery_results.Backends()

        def utcnow() -> datetime:
            return datetime.now(UTC)

        def ended() -> bool:
            celery_results.check(engine, backend_urls, backends.read, utcnow)
            return all(row["status"] != "running" for row in execution_rows(engine))

        try:
            assert wait_until(ended, 30, every_s=0.5), worker.logs()
            worker.wait_for_calls(3)
            # The slow task ends after its timeout: its SUCCESS changes nothing.
            assert wait_until(lambda: _stored(redis_url, requests, ids["slow"]), 15)
            celery_results.check(engine, backend_urls, backends.read, utcnow)
        finally:
            backends.close()
        calls = worker.calls()
    rows = {row["task_id"]: row for row in execution_rows(engine)}
    assert (rows[ids["ok"]]["status"], rows[ids["ok"]]["error"]) == ("succeeded", None)
    assert (rows[ids["bad"]]["status"], rows[ids["bad"]]["error"]) == (
        "failed",
        "QuotaExceeded: quota, 7",
    )
    assert (rows[ids["slow"]]["status"], rows[ids["slow"]]["error"]) == (
        "failed",
        "timed out waiting for the Celery result after 2 s",
    )
    assert all(row["attempts"] == 1 for row in rows.values())
    # Each user task ran exactly once: nothing was sent again.
    assert sorted(c["id"] for c in calls) == sorted(r.idempotency_key for r in requests)


def _stored(redis_url: str, requests: Sequence[TriggerRequest], task_id: uuid.UUID) -> bool:
    [key] = [r.idempotency_key for r in requests if r.task_id == str(task_id)]
    return bool(redis.Redis.from_url(redis_url).exists(f"celery-task-meta-{key}"))
