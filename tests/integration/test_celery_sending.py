"""Celery targets sent by ``firing.fire`` to real Redis, consumed by a real worker of the
user's own Celery app (``tests.userapp``), which has no taskhub code."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kombu
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.celery_calls import CeleryCall
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import THROTTLED, TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings, load
from taskhub.db import execution_queries, hold_queries
from taskhub.db.models import attempts, executions
from taskhub.db.rows import Hold
from taskhub.engine import firing, flow_control, writeback
from taskhub.service import task_service
from tests.support.celery_user import user_worker
from tests.support.engine import soon, statuses
from tests.support.faultproxy import running_proxy
from tests.support.messages import req
from tests.support.processes import Stack, free_port, wait_until
from tests.support.storage import NOW, SETTINGS, add_task, claim_all, execution_rows

TASK = "userapp.tasks.record"


def settings(**env: str) -> Settings:
    return load({"TASKHUB_BROKER_URL": "filesystem://", **env})


def named_urls(urls: dict[str, str]) -> str:
    """``TASKHUB_CELERY_BROKERS``'s text for ``urls``."""
    return ",".join(f"{name}={url}" for name, url in urls.items())


def celery_request(n: int, call: CeleryCall, **overrides: object) -> TriggerRequest:
    values: dict[str, object] = {
        "execution_id": n,
        "task_id": f"task-{n}",
        "idempotency_key": f"idem-{n}",
        "method": "",
        "timeout_s": 30.0,
        "celery": call,
        **overrides,
    }
    return req("", **values)


def assert_accepted(outcome: TriggerOutcome) -> None:
    assert outcome.accepted, outcome
    assert outcome.http_status is None and outcome.error_kind is None and outcome.error is None
    assert outcome.result_due_by is None


@pytest.fixture(autouse=True)
def _fresh_trigger_loop() -> Iterator[None]:
    yield
    firing.shutdown()


def test_each_celery_task_runs_once_with_its_id_headers_arguments_and_queue(
    redis_url: str, tmp_path: Path
) -> None:
    requests = [
        celery_request(
            1, CeleryCall(TASK, args=(1, "a"), kwargs={"region": "eu"}, queue="reports")
        ),
        celery_request(2, CeleryCall(TASK, args=(), kwargs={"n": [1, 2]}, queue="reports")),
        celery_request(3, CeleryCall(TASK, args=(3,)), attempt=4),  # Celery's default queue
        # Due an hour ago and expired a minute after: the user's worker discards it.
        celery_request(
            4,
            CeleryCall(TASK, queue="reports", expires_seconds=60),
            scheduled_for=datetime.now(UTC) - timedelta(hours=1),
        ),
    ]
    with user_worker(redis_url, redis_url, tmp_path, queues="reports,celery") as worker:
        outcomes = firing.fire(requests, settings(TASKHUB_CELERY_BROKERS=f"default={redis_url}"))
        for outcome in outcomes:
            assert_accepted(outcome)
        worker.wait_for_calls(3)
        assert wait_until(lambda: "Discarding revoked task" in worker.logs(), 10), worker.logs()
        time.sleep(1.5)  # nothing more comes: each ran once
        calls = {call["id"]: call for call in worker.calls()}
    assert len(worker.calls()) == 3 and set(calls) == {"idem-1", "idem-2", "idem-3"}
    assert calls["idem-1"] | {"celery": None} == {
        "id": "idem-1",
        "taskhub_task_id": "task-1",
        "taskhub_scheduled_for": "2026-11-22T09:00:00Z",
        "taskhub_attempt": 1,
        "args": [1, "a"],
        "kwargs": {"region": "eu"},
        "queue": "reports",
        "taskhub_imported": False,
        "celery": None,
    }
    assert calls["idem-2"]["args"] == [] and calls["idem-2"]["kwargs"] == {"n": [1, 2]}
    assert calls["idem-3"]["queue"] == "celery" and calls["idem-3"]["taskhub_attempt"] == 4


def test_a_repeat_carries_the_same_celery_task_id(redis_url: str, tmp_path: Path) -> None:
    request = celery_request(7, CeleryCall(TASK, args=("once",), queue="repeats"))
    with user_worker(redis_url, redis_url, tmp_path, queues="repeats") as worker:
        [first] = firing.fire([request], settings(TASKHUB_CELERY_BROKERS=f"default={redis_url}"))
        [again] = firing.fire([request], settings(TASKHUB_CELERY_BROKERS=f"default={redis_url}"))
        retried = dataclasses.replace(request, attempt=2)
        [second] = firing.fire([retried], settings(TASKHUB_CELERY_BROKERS=f"default={redis_url}"))
        calls = worker.wait_for_calls(3)
    for outcome in (first, again, second):
        assert_accepted(outcome)
    # Celery does not deduplicate: each message runs, all with the occurrence's id.
    assert [c["id"] for c in calls] == ["idem-7"] * 3
    assert sorted(c["taskhub_attempt"] for c in calls) == [1, 1, 2]


def test_a_tracked_call_is_accepted_and_awaits_its_result_until_its_timeout(
    redis_url: str, tmp_path: Path
) -> None:
    request = celery_request(8, CeleryCall(TASK, queue="tracked", track=True), timeout_s=90.0)
    [outcome] = firing.fire([request], settings(TASKHUB_CELERY_BROKERS=f"default={redis_url}"))
    assert outcome.accepted and outcome.error_kind is None and outcome.http_status is None
    assert outcome.result_due_by is not None
    assert (outcome.result_due_by - outcome.started_at).total_seconds() == 90.0


def test_a_broker_that_is_down_fails_fast_as_a_connection_error_naming_it(
    redis_url: str,
) -> None:
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    refused_port = free_port()
    brokers = {
        "default": redis_url,
        "down": f"redis://:s3cret-password@127.0.0.1:{refused_port}/0",
        "hung": f"redis://:s3cret-password@127.0.0.1:{silent.getsockname()[1]}/0",
        "amqp-down": f"amqp://user:s3cret-password@127.0.0.1:{refused_port}//",
    }
    requests = [
        celery_request(n, CeleryCall(TASK, queue="nowhere", broker=name))
        for n, name in enumerate(["down", "hung", "amqp-down", "unknown"], start=1)
    ]
    try:
        t0 = time.monotonic()
        outcomes = firing.fire(requests, settings(TASKHUB_CELERY_BROKERS=named_urls(brokers)))
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert elapsed < 8, elapsed
    down, hung, amqp_down, unknown = outcomes
    for outcome, name in ((down, "down"), (hung, "hung"), (amqp_down, "amqp-down")):
        assert not outcome.accepted and outcome.http_status is None
        assert outcome.error_kind == "connection", outcome
        assert outcome.error is not None and f"'{name}'" in outcome.error
        assert "s3cret" not in outcome.error and str(refused_port) not in outcome.error
        assert "127.0.0.1" not in outcome.error and "redis://" not in outcome.error
    assert down.error == "cannot send to the Celery broker 'down': Connection refused"
    assert amqp_down.error == "cannot send to the Celery broker 'amqp-down': Connection refused"
    assert hung.error is not None and "in time" in hung.error
    assert unknown.error_kind == "configuration"
    assert unknown.error == (
        "the Celery broker 'unknown' is not configured (TASKHUB_CELERY_BROKERS)"
    )


AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def amqp_reachable() -> bool:
    try:
        with kombu.Connection(AMQP_URL, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("transport", ["redis", "amqp"])
def test_a_broker_that_went_away_and_came_back_is_sent_to_again(
    transport: str, redis_url: str
) -> None:
    """A pooled connection the broker dropped while it was idle costs nothing: the send
    goes again on a new one. While the broker is away, sends fail fast."""
    if transport == "amqp" and not amqp_reachable():
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672")
    queue = f"taskhub-test-comeback-{uuid.uuid4().hex[:8]}"
    upstream = urlsplit(redis_url if transport == "redis" else AMQP_URL)
    assert upstream.hostname is not None and upstream.port is not None
    with running_proxy(upstream.hostname, upstream.port) as proxy:
        url = urlunsplit(
            upstream._replace(netloc=upstream.netloc.replace(f":{upstream.port}", f":{proxy.port}"))
        )

        def fire(n: int) -> TriggerOutcome:
            request = celery_request(n, CeleryCall(TASK, args=(n,), queue=queue))
            [outcome] = firing.fire([request], settings(TASKHUB_CELERY_BROKERS=f"default={url}"))
            return outcome

        assert_accepted(fire(1))
        proxy.cut()  # the pooled connection is reset, and new ones are refused
        t0 = time.monotonic()
        away = fire(2)
        assert time.monotonic() - t0 < 5
        assert away.error_kind == "connection" and away.error is not None
        assert away.error.startswith("cannot send to the Celery broker 'default': ")
        proxy.heal()
        assert_accepted(fire(3))
        proxy.cut()  # reset while idle, and back at once
        proxy.heal()
        assert_accepted(fire(4))
        firing.shutdown()  # its connections closed before the proxy is
    with kombu.Connection(redis_url if transport == "redis" else AMQP_URL) as connection:
        bound = kombu.Queue(queue, kombu.Exchange(queue), routing_key=queue)(connection.channel())
        messages = [bound.get(no_ack=True) for _ in range(4)]
        ids = sorted(message.headers["id"] for message in messages if message is not None)
        bound.delete()
        bound.exchange.delete()
    assert ids == ["idem-1", "idem-3", "idem-4"]


def test_an_amqp_queue_declared_with_arguments_of_its_own_receives_the_task() -> None:
    """A user's worker may declare its queue otherwise than Celery's default (here a
    quorum queue): taskhub's declaration is refused, and the message goes all the same."""
    if not amqp_reachable():
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672")
    queue = f"taskhub-test-quorum-{uuid.uuid4().hex[:8]}"
    with kombu.Connection(AMQP_URL) as connection:
        quorum = kombu.Queue(
            queue,
            kombu.Exchange(queue),
            routing_key=queue,
            queue_arguments={"x-queue-type": "quorum"},
        )(connection.channel())
        quorum.declare()
        try:
            request = celery_request(1, CeleryCall(TASK, queue=queue))
            [outcome] = firing.fire(
                [request], settings(TASKHUB_CELERY_BROKERS=f"default={AMQP_URL}")
            )
            assert_accepted(outcome)
            channel: Any = quorum.channel

            def waiting() -> int:
                return int(channel.queue_declare(queue, passive=True).message_count)

            assert wait_until(lambda: waiting() == 1, 5)
        finally:
            quorum.delete()
            quorum.exchange.delete()


def test_flow_control_and_lane_shares_apply_per_broker(redis_url: str, tmp_path: Path) -> None:
    """``celery:<broker>`` is a host for TASKHUB_HOST_LIMITS: one request a second to
    broker ``slow``, with no wait allowed, sends one and throttles the rest, while the
    same number to broker ``default`` (same Redis) all go."""
    limited = settings(
        TASKHUB_HOST_LIMITS="celery:slow=/1",
        TASKHUB_FLOW_CONTROL_MAX_WAIT_SECONDS="0",
        TASKHUB_CELERY_BROKERS=named_urls({"default": redis_url, "slow": redis_url}),
    )
    requests = [
        celery_request(n, CeleryCall(TASK, args=(n,), queue="limited", broker=broker))
        for n, broker in enumerate(["slow"] * 3 + ["default"] * 3, start=1)
    ]
    with user_worker(redis_url, redis_url, tmp_path, queues="limited") as worker:
        outcomes = firing.fire(requests, limited, limiter=flow_control.LocalLimiter())
        calls = worker.wait_for_calls(4)
        time.sleep(1)
    slow, default = outcomes[:3], outcomes[3:]
    assert sum(o.accepted for o in slow) == 1
    assert sum(o.error_kind == THROTTLED for o in slow) == 2
    assert all(o.accepted for o in default)
    assert len(worker.calls()) == len(calls) == 4


@pytest.mark.slow
def test_the_whole_engine_sends_each_occurrence_once_to_the_users_worker(
    stack: Stack, pg_engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    """taskhub's own worker and beat, on the broker the tasks name (``default``: taskhub's
    own, as TASKHUB_CELERY_BROKERS has it unset): one-time and interval tasks."""
    now = datetime.now(UTC)
    call = {"task": TASK, "kwargs": {"region": "eu"}, "queue": "engine"}
    definitions = [
        {"name": f"once-{i}", "schedule": {"at": soon(3)}, "target": {"celery": call}}
        for i in range(10)
    ]
    definitions.append(
        {"name": "every-2s", "schedule": {"interval_seconds": 2}, "target": {"celery": call}}
    )
    with pg_engine.begin() as conn:
        for data in definitions:
            task_service.create_task(conn, parse_definition(data, now), now, load())
    with user_worker(redis_url, redis_url, tmp_path, queues="engine") as worker:
        stack.start("worker", "all")
        stack.start("beat", "beat")
        assert wait_until(lambda: statuses(pg_engine)["succeeded"] >= 13, 60), stack.logs()
        stack.stop("beat")
        stack.stop("worker")  # nothing more is sent: what was sent arrives
        queue = redis.Redis.from_url(redis_url)
        assert wait_until(lambda: queue.llen("engine") == 0, 10), worker.logs()
        time.sleep(1)  # and runs
        calls = worker.calls()
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.select(executions)).mappings().all()
        attempt_rows = conn.execute(sa.select(attempts)).mappings().all()
    keys = {row["idempotency_key"] for row in rows if row["status"] == "succeeded"}
    ids = [call["id"] for call in calls]
    assert len(ids) == len(set(ids)), "an occurrence ran twice"
    assert keys <= set(ids) and len(keys) >= 13
    assert all(c["kwargs"] == {"region": "eu"} and c["queue"] == "engine" for c in calls)
    assert all(not c["taskhub_imported"] for c in calls)
    assert {a["http_status"] for a in attempt_rows} == {None}
    assert {a["error_kind"] for a in attempt_rows} == {None}


def sent(request: TriggerRequest, **fields: Any) -> TriggerOutcome:
    """What ``celery_publishing.send`` reports for a message its broker accepted."""
    accepted = TriggerOutcome(request.execution_id, request.attempt, NOW, 3, accepted=True)
    return dataclasses.replace(accepted, **fields)


def test_an_accepted_message_succeeds_and_a_failed_send_is_retried(engine: Engine) -> None:
    retry = {"max_attempts": 3, "backoff_seconds": 10}
    add_task(engine, "sent", {"at": NOW.isoformat()}, retry=retry)
    add_task(engine, "down", {"at": NOW.isoformat()}, retry=retry)
    first, second = claim_all(engine, NOW)
    down = sent(second, accepted=False, error_kind="connection", error="cannot send")
    report = writeback.record_outcomes(engine, [sent(first), down], SETTINGS, NOW, lambda: 1.0)
    assert (report.applied, report.finished, report.retries_scheduled) == (2, 1, 1)
    rows = {row["id"]: row for row in execution_rows(engine)}
    succeeded, queued = rows[first.execution_id], rows[second.execution_id]
    columns = ("status", "attempts", "next_attempt_at", "http_status", "duration_ms", "error")
    assert [succeeded[c] for c in columns] == ["succeeded", 1, None, None, 3, None]
    assert succeeded["finished_at"] == NOW
    assert (queued["status"], queued["next_attempt_at"]) == ("queued", NOW + timedelta(seconds=10))
    with engine.connect() as conn:
        [attempt] = execution_queries.attempts_of_execution(conn, succeeded["id"])
    assert [attempt[c] for c in ("http_status", "error_kind", "duration_ms")] == [None, None, 3]
    # The retry is the same Celery task again: same idempotency key, the next attempt.
    [again] = claim_all(engine, NOW + timedelta(seconds=10))
    assert (again.idempotency_key, again.attempt) == (second.idempotency_key, 2)


def test_a_tracked_message_accepted_stays_running_with_no_lease(engine: Engine) -> None:
    add_task(engine, "tracked", {"at": NOW.isoformat()})
    [request] = claim_all(engine, NOW)
    with engine.begin() as conn:  # taken by a trigger process that will die later
        hold = Hold(request.execution_id, request.attempt, NOW + timedelta(seconds=60))
        assert hold_queries.hold_executions(conn, [hold], "trigger@dead", "message-1")
    due_by = NOW + timedelta(seconds=30)
    report = writeback.record_outcomes(
        engine, [sent(request, result_due_by=due_by)], SETTINGS, NOW, lambda: 1.0
    )
    assert (report.applied, report.awaiting_result, report.finished) == (1, 1, 0)
    [row] = execution_rows(engine)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("running", 1, None)
    assert row["finished_at"] is None and row["result_due_by"] == due_by
    assert (row["held_by"], row["message_id"]) == (None, None)
    # No lease runs out: nothing sends it again, however long it waits, nor when the
    # process that sent it dies.
    assert claim_all(engine, NOW + timedelta(days=1)) == []
    later = NOW + timedelta(days=1)
    with engine.begin() as conn:
        dead = ["trigger@dead"]
        assert execution_queries.claim_publishable_executions(conn, later, 10, None, dead) == []
        assert hold_queries.held_fires_to_look_up(conn, later, dead, 10) == []
