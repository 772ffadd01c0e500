"""Callbacks: the field through the API, the outbox on PostgreSQL and SQLite (written in
the write-back that ends an execution, taken with a lease, recorded once), posts to a
real loopback target that verify, and real worker and beat processes delivering them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core import callbacks, signing
from taskhub.core.celery_results import Settled
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings, load
from taskhub.core.statuses import ExecutionStatus
from taskhub.db import callback_queries, engines
from taskhub.db.models import callback_deliveries
from taskhub.db.rows import CallbackAttempt
from taskhub.engine import callback_sender, celery_results, discovery, writeback
from taskhub.service import executions, signing_secrets, task_service
from tests.support.api import T0, Api, dump, new_key, task_body, with_env
from tests.support.cli import Cli
from tests.support.console import form_of, signed_in_client
from tests.support.processes import Stack, wait_until
from tests.support.storage import NOW, claim_all, outcome
from tests.support.storage import SETTINGS as STORAGE_SETTINGS
from tests.support.target import Target, running_target

STANDARD = "standard-webhooks"


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(callback_deliveries).order_by(callback_deliveries.c.id))
            .mappings()
            .all()
        )


# --- the field through the API ----------------------------------------------------------


@pytest.mark.parametrize(
    ("callback", "field"),
    [
        ({"url": "not a url"}, "callback.url"),
        ({"url": "ftp://example.com/cb"}, "callback.url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "callback.url"),
        ({"url": "http://127.0.0.1:9/cb"}, "callback.url"),
        ({}, "callback.url"),
        ({"url": "https://example.com/cb", "on": ["finished"]}, "callback.on"),
        ({"url": "https://example.com/cb", "on": []}, "callback.on"),
        ({"url": "https://example.com/cb", "on": "dead"}, "callback.on"),
        ({"url": "https://example.com/cb", "when": "dead"}, "callback.when"),
        ("https://example.com/cb", "callback"),
    ],
)
def test_a_bad_callback_is_a_422_naming_it_and_stores_nothing(
    engine: Engine, callback: Any, field: str
) -> None:
    api = Api(engine, T0)
    refused = api.a.post("/v1/tasks", json=task_body("cb") | {"callback": callback})
    error = Api.error(refused, 422)
    assert error["field"] == field
    assert api.a.get("/v1/tasks").json()["items"] == []
    # A change is refused alike, and changes nothing.
    task = api.task("kept")
    refused = api.a.patch(f"/v1/tasks/{task['id']}", json={"callback": callback})
    assert Api.error(refused, 422)["field"] == field
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["callback"] is None


def test_a_task_shows_its_callback_with_on_in_full_and_a_patch_replaces_or_clears_it(
    engine: Engine,
) -> None:
    api = Api(engine, T0)
    task = api.task("cb", callback={"url": "https://example.com/cb"})
    assert task["callback"] == {
        "url": "https://example.com/cb",
        "on": ["success", "failure", "dead"],
    }
    changed = api.a.patch(
        f"/v1/tasks/{task['id']}",
        json={"callback": {"url": "https://example.com/other", "on": ["dead", "failure"]}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["callback"] == {
        "url": "https://example.com/other",
        "on": ["failure", "dead"],
    }
    cleared = api.a.patch(f"/v1/tasks/{task['id']}", json={"callback": None})
    assert cleared.json()["callback"] is None
    document = api.a.get("/openapi.json").json()["components"]["schemas"]
    assert document["Callback"]["properties"]["on"]["items"]["enum"] == list(callbacks.EVENTS)
    assert "callback" in document["Execution"]["properties"]


# --- the outbox -------------------------------------------------------------------------


def ended_once(
    engine: Engine, settings: Settings, callback: dict[str, Any] | None, status: int = 200
) -> tuple[str, TriggerRequest]:
    """A task (``callback`` on it) whose one occurrence is sent and answered ``status``
    (its only attempt): its id and the request."""
    body = task_body(f"t-{uuid.uuid4().hex[:6]}", schedule={"cron": "0 0 1 1 *"})
    body["retry"] = {"max_attempts": 1}
    if callback is not None:
        body["callback"] = callback
    with engine.begin() as conn:
        task_id = task_service.add_task(conn, "acme", body, T0, settings)["id"]
        task_service.run_task_now(conn, "acme", task_id, T0)
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, published.extend, lambda: T0)
    [request] = [r for r in published if r.task_id == task_id]
    answer = outcome(request, status)
    writeback.record_outcomes(engine, [answer], settings, T0, lambda: 0.5)
    # A repeated chord callback writes nothing twice.
    writeback.record_outcomes(engine, [answer], settings, T0, lambda: 0.5)
    return task_id, request


def test_the_write_back_that_ends_an_execution_writes_its_callback_once(engine: Engine) -> None:
    settings = with_env()
    url = "https://example.com/cb"
    ok_id, ok = ended_once(engine, settings, {"url": url})
    dead_id, dead = ended_once(engine, settings, {"url": url}, 503)
    failed_id, _ = ended_once(engine, settings, {"url": url, "on": ["dead"]}, 404)
    ended_once(engine, settings, None)  # no callback: nothing
    rows = deliveries(engine)
    assert [(str(r["task_id"]), r["event"]) for r in rows] == [
        (ok_id, "success"),
        (dead_id, "dead"),
    ]
    first = rows[0]
    assert (first["status"], first["attempts"], first["tenant"], first["url"]) == (
        "pending",
        0,
        "acme",
        url,
    )
    assert first["next_attempt_at"] == T0
    assert dict(first["document"]) == {
        "task_id": ok_id,
        "execution_id": ok.execution_id,
        "scheduled_for": ok.scheduled_for.isoformat(),
        "status": "succeeded",
        "attempts": 1,
        "http_status": 200,
        "duration_ms": 12,
        "response_excerpt": "ok",
    }
    assert rows[1]["document"]["status"] == "dead"
    assert rows[1]["document"]["http_status"] == 503
    # Shown on the execution, and absent from one without a callback.
    with engine.connect() as conn:
        shown = executions.get_execution(conn, "acme", dead.execution_id)
        page = executions.list_executions(conn, "acme", task_id=failed_id)
    assert shown["callback"] is not None
    assert (shown["callback"]["status"], shown["callback"]["event"]) == ("pending", "dead")
    assert shown["callback"]["next_attempt_at"] == T0.isoformat()
    assert [item["callback"] for item in page["items"]] == [None]
    # A deleted task's deliveries go with it.
    with engine.begin() as conn:
        task_service.delete_task(conn, "acme", dead_id, T0)
    assert [str(r["task_id"]) for r in deliveries(engine)] == [ok_id]


def test_a_taken_delivery_is_not_taken_again_within_its_lease(engine: Engine) -> None:
    settings = with_env()
    ended_once(engine, settings, {"url": "https://example.com/cb"})
    with engine.begin() as conn:
        [taken] = callback_queries.take_due(conn, T0, callbacks.LEASE_S, 10)
    assert taken["attempts"] == 1
    assert taken["next_attempt_at"] == T0 + timedelta(seconds=callbacks.LEASE_S)
    within = T0 + timedelta(seconds=callbacks.LEASE_S - 1)
    with engine.begin() as conn:
        assert callback_queries.take_due(conn, within, callbacks.LEASE_S, 10) == []
    # Its sender died before recording: after the lease, taken again (one repeat).
    after = T0 + timedelta(seconds=callbacks.LEASE_S)
    with engine.begin() as conn:
        [again] = callback_queries.take_due(conn, after, callbacks.LEASE_S, 10)
    assert again["attempts"] == 2
    # The first sender's late record changes nothing; the second's is written.
    late = CallbackAttempt(taken["id"], 1, "delivered", None, 200, None, after)
    now_ok = CallbackAttempt(taken["id"], 2, "delivered", None, 200, None, after)
    with engine.begin() as conn:
        assert callback_queries.record_attempt(conn, late) is False
        assert callback_queries.record_attempt(conn, now_ok) is True
        assert callback_queries.record_attempt(conn, now_ok) is False  # done: once
    [row] = deliveries(engine)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("delivered", 2, None)
    assert row["finished_at"] == after


def test_postgresql_skips_a_delivery_another_sender_is_taking(pg_engine: Engine) -> None:
    settings = with_env()
    ended_once(pg_engine, settings, {"url": "https://example.com/cb"})
    ended_once(pg_engine, settings, {"url": "https://example.com/cb"})
    with pg_engine.begin() as first:
        mine = callback_queries.take_due(first, T0, callbacks.LEASE_S, 1)
        with pg_engine.begin() as second:
            theirs = callback_queries.take_due(second, T0, callbacks.LEASE_S, 10)
    assert len(mine) == len(theirs) == 1
    assert mine[0]["id"] != theirs[0]["id"]


def test_a_tracked_celery_tasks_ending_is_written_down_by_the_result_check(
    engine: Engine,
) -> None:
    """A tracked Celery target ends in the result check, not the write-back: its callback
    is written there, in the transaction that ends it (no HTTP status, no excerpt)."""
    data = {
        "name": "tracked",
        "schedule": {"at": (NOW - timedelta(seconds=1)).isoformat()},
        "target": {"celery": {"task": "userapp.tasks.record", "track": True}},
        "callback": {"url": "https://example.com/cb", "on": ["failure"]},
    }
    created = NOW - timedelta(hours=1)
    with engine.begin() as conn:
        task_id = task_service.create_task(
            conn, parse_definition(data, created), created, STORAGE_SETTINGS
        )
    [request] = claim_all(engine, NOW)
    accepted = TriggerOutcome(
        request.execution_id, 1, NOW, 3, accepted=True, result_due_by=NOW + timedelta(seconds=30)
    )
    writeback.record_outcomes(engine, [accepted], STORAGE_SETTINGS, NOW, lambda: 1.0)
    assert deliveries(engine) == []  # running: not ended yet
    failure = Settled(ExecutionStatus.FAILED, "ValueError: boom")
    backends = {"default": "redis://127.0.0.1:6379/9"}

    def results(url: str, task_ids: Sequence[str]) -> Mapping[str, Settled]:
        return {i: failure for i in task_ids}

    later = NOW + timedelta(seconds=5)
    celery_results.check(engine, backends, results, lambda: later)
    celery_results.check(engine, backends, results, lambda: later)  # a repeat: nothing
    [row] = deliveries(engine)
    assert (row["task_id"], row["event"]) == (task_id, "failure")
    assert dict(row["document"]) == {
        "task_id": str(task_id),
        "execution_id": request.execution_id,
        "scheduled_for": request.scheduled_for.isoformat(),
        "status": "failed",
        "attempts": 1,
        "http_status": None,
        "duration_ms": 3,
        "response_excerpt": None,
    }


# --- posting to a real target -----------------------------------------------------------


def test_posts_verify_and_a_failing_callback_is_retried_to_its_budget(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with engine.begin() as conn:
        mine, _ = signing_secrets.create_secret(conn, "acme", T0, settings)
        standard, _ = signing_secrets.create_secret(conn, "acme", T0, settings, STANDARD)
    with running_target() as target:
        ok_id, ok = ended_once(engine, settings, {"url": target.url("/ok")})
        bad_id, bad = ended_once(engine, settings, {"url": target.url("/missing")}, 503)
        assert callback_sender.send_due(engine, settings, T0) == 2
        received = target.wait_for(2, 5)
        by_path = {r.path: r for r in received}
        posted = by_path["/ok"]
        assert posted.method == "POST"
        document = json.loads(posted.body)
        assert list(document) == list(callbacks.DOCUMENT_KEYS)
        assert (document["task_id"], document["execution_id"], document["status"]) == (
            ok_id,
            ok.execution_id,
            "succeeded",
        )
        # Signed as a trigger is, with the tenant's secrets of both schemes.
        header = posted.headers[signing.HEADER]
        assert signing.verify(header, posted.body.encode(), [mine])
        assert not signing.verify(header, posted.body.encode() + b" ", [mine])
        from standardwebhooks import Webhook

        assert Webhook(standard).verify(posted.body, posted.headers) == document
        assert posted.headers["Idempotency-Key"].startswith("taskhub-callback-")
        # The failing one: sent again after each backoff, until its budget is spent.
        at = T0
        for attempt in range(2, callbacks.MAX_ATTEMPTS + 1):
            assert callback_sender.send_due(engine, settings, at) == 0  # not due yet
            at += timedelta(seconds=callbacks.retry_in_s(attempt - 1) + 1)
            assert callback_sender.send_due(engine, settings, at) == 1
        assert callback_sender.send_due(engine, settings, at + timedelta(hours=1)) == 0
        failing = [r for r in target.wait_for(1 + callbacks.MAX_ATTEMPTS, 5) if r.path != "/ok"]
    assert len(failing) == callbacks.MAX_ATTEMPTS
    assert len({r.headers["Idempotency-Key"] for r in failing}) == 1
    assert [r.headers["X-Taskhub-Attempt"] for r in failing] == ["1", "2", "3"]
    with engine.connect() as conn:
        shown_ok = executions.get_execution(conn, "acme", ok.execution_id)["callback"]
        [shown_bad] = executions.list_executions(conn, "acme", task_id=bad_id)["items"]
    assert (shown_ok["status"], shown_ok["attempts"], shown_ok["http_status"]) == (
        "delivered",
        1,
        200,
    )
    cb = shown_bad["callback"]
    assert (cb["status"], cb["attempts"], cb["http_status"], cb["error"]) == (
        "failed",
        callbacks.MAX_ATTEMPTS,
        404,
        "HTTP 404",
    )
    assert cb["next_attempt_at"] is None and bad.execution_id == shown_bad["id"]


def test_a_blocked_address_is_not_sent_and_fails_at_once(engine: Engine) -> None:
    """The SSRF guard holds at send time too: a callback stored while loopback was
    allowed is refused once it is not, without a retry."""
    allowed = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with running_target() as target:
        ended_once(engine, allowed, {"url": target.url("/ok")})
        assert callback_sender.send_due(engine, with_env(), T0) == 1
        assert target.snapshot() == []
    [row] = deliveries(engine)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["error"] is not None and "blocked_address" in row["error"]


# --- the CLI -----------------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path)
    cli.url = cli.env["TASKHUB_DATABASE_URL"] = database_url
    yield cli
    engines.dispose_after_fork()


def test_the_cli_shows_a_tasks_callback_and_each_executions(engine: Engine, cli: Cli) -> None:
    settings = with_env()
    task_id, _ = ended_once(engine, settings, {"url": "https://example.com/cb", "on": ["success"]})
    shown = cli("task", "show", task_id, "--tenant", "acme").stdout
    assert "callback:" in shown and '"on": ["success"]' in shown
    table = cli("executions", "--task", task_id, "--tenant", "acme").stdout
    assert "CALLBACK" in table.splitlines()[0]
    assert "pending (0 attempts, not sent yet)" in table
    listed = cli.json("executions", "--task", task_id, "--tenant", "acme")
    assert listed["items"][0]["callback"]["status"] == "pending"


# --- the console -------------------------------------------------------------------------


def test_the_console_sets_a_callback_and_the_task_page_shows_each_executions(
    engine: Engine,
) -> None:
    api = Api(engine, T0)
    browser = signed_in_client(api.a.app, new_key(engine, "acme"))
    task = api.task("cb")
    edit = f"/ui/tasks/{task['id']}/edit"
    values = form_of(browser.get(edit).text).values
    assert (values["callback_url"], values["callback_on"]) == ("", "")
    before = dump(engine)
    refused = browser.post(
        edit,
        data=values | {"callback_url": "https://example.com/cb", "callback_on": "finished"},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert form_of(refused.text).attrs["callback_on"]["aria-describedby"] == "callback_on-error"
    assert dump(engine) == before
    saved = browser.post(
        edit,
        data=values | {"callback_url": "https://example.com/cb", "callback_on": "dead, failure"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["callback"] == {
        "url": "https://example.com/cb",
        "on": ["failure", "dead"],
    }
    # An execution's callback on the task page: status, attempts, last HTTP status.
    task_id, _ = ended_once(engine, with_env(), {"url": "https://example.com/cb"}, 503)
    with engine.begin() as conn:
        [taken] = callback_queries.take_due(conn, T0, callbacks.LEASE_S, 10)
        callback_queries.record_attempt(
            conn, CallbackAttempt(taken["id"], 1, "pending", T0, 502, "HTTP 502", T0)
        )
    text = browser.get(f"/ui/tasks/{task_id}").text
    assert "<dt>Callback</dt>" in text and "on success, failure, dead" in text
    assert '<span class="status status-callback-pending">pending</span>, 1 attempt, HTTP 502' in (
        text
    )


# --- real worker and beat processes -----------------------------------------------------


@pytest.mark.slow
def test_worker_processes_post_callbacks_and_retry_a_failing_one(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    """Real worker and beat processes and a real loopback target: a succeeded execution's
    callback arrives with exactly the document's keys and a signature that verifies; a
    callback whose target answers 404 is attempted to its budget, no more, and the
    execution shows it failed."""
    settings = load(stack.env)
    now = datetime.now(UTC)
    with pg_engine.begin() as conn:
        secret, _ = signing_secrets.create_secret(conn, "acme", now, settings)
        ids = {}
        for name, callback_path in (("good", "/ok"), ("bad", "/missing")):
            body = task_body(name, target.url("/ok"), method="POST", body='{"n": 1}')
            body["schedule"] = {"at": (now + timedelta(seconds=2)).isoformat()}
            body["callback"] = {"url": target.url(callback_path), "on": ["success"]}
            ids[name] = task_service.add_task(conn, "acme", body, now, settings)["id"]
    stack.start("worker", "all")
    stack.start("beat", "beat")

    def callbacks_of(name: str) -> list[Any]:
        with pg_engine.connect() as conn:
            return callback_queries.deliveries_of_task(conn, uuid.UUID(ids[name]))

    def settled() -> bool:
        rows = callbacks_of("good") + callbacks_of("bad")
        return len(rows) == 2 and all(r["status"] != "pending" for r in rows)

    budget_s = 20 + sum(callbacks.retry_in_s(a) for a in range(1, callbacks.MAX_ATTEMPTS))
    assert wait_until(settled, budget_s), stack.logs()
    [good] = [r for r in target.snapshot() if r.path == "/ok" and "task_id" in r.body]
    document = json.loads(good.body)
    assert set(document) == set(callbacks.DOCUMENT_KEYS) and len(document) == 8
    assert (document["task_id"], document["status"], document["http_status"]) == (
        ids["good"],
        "succeeded",
        200,
    )
    assert signing.verify(good.headers[signing.HEADER], good.body.encode(), [secret])
    missing = [r for r in target.snapshot() if r.path == "/missing"]
    assert len(missing) == callbacks.MAX_ATTEMPTS  # its budget, no repeat
    with pg_engine.connect() as conn:
        [bad] = executions.list_executions(conn, "acme", task_id=ids["bad"])["items"]
    assert bad["status"] == "succeeded"
    assert bad["callback"]["status"] == "failed"
    assert (bad["callback"]["attempts"], bad["callback"]["http_status"]) == (3, 404)
