"""The database layer on PostgreSQL and SQLite: schema, claims, and write-back."""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection, Engine

from taskhub.core import settings
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.db import engines, execution_queries, metric_queries, schema, task_queries
from taskhub.db.models import attempts, executions, next_occurrences, scheduled_tasks
from taskhub.db.rows import NewExecution, PublishLease
from taskhub.engine import discovery, writeback
from taskhub.service import task_service
from tests.support.storage import NOW, SETTINGS, add_task, claim_all, execution_rows, outcome


def task_row(engine: Engine, task_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return task_queries.get_task(conn, task_id)


def test_migrations_upgrade_from_empty_without_drift(database_url: str) -> None:
    schema.upgrade(database_url)
    schema.check(database_url)  # raises if models and migrations differ
    schema.upgrade(database_url)  # a second upgrade is a no-op


def test_migration_0007_moves_next_occurrences_out_and_back(database_url: str) -> None:
    schema.upgrade(database_url, "0006")
    engine = engines.create_engine(database_url)
    try:
        base = {
            "schedule_kind": "interval",
            "interval_seconds": 60,
            "url": "http://target.test/hook",
            "headers": {},
            "tags": {},
            "created_at": NOW,
            "updated_at": NOW,
        }
        states = {  # name: (is_active, is_finished, next_execution_time)
            "due": (True, False, NOW),
            "later": (True, False, NOW + timedelta(days=1)),
            "paused": (False, False, NOW),
            "finished": (True, True, None),
            "last-one-running": (True, False, None),
        }
        rows = [
            {
                **base,
                "id": uuid.uuid4(),
                "name": name,
                "is_active": a,
                "is_finished": f,
                "next_execution_time": n,
            }
            for name, (a, f, n) in states.items()
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(scheduled_tasks), rows)
        schema.upgrade(database_url)
        ids = {row["name"]: row["id"] for row in rows}
        with engine.connect() as conn:
            moved = set(conn.execute(sa.select(next_occurrences)).tuples())
        assert moved == {(NOW, ids["due"]), (NOW + timedelta(days=1), ids["later"])}
        # The claim reads them: the due one is taken and the next one put in its place.
        assert [r.task_id for r in claim_all(engine, NOW)] == [str(ids["due"])]
        assert next_occurrences_out_of_step(engine) == set()
        command.downgrade(schema.alembic_config(database_url), "0006")
        with engine.connect() as conn:
            assert "next_occurrences" not in sa.inspect(conn).get_table_names()
            due_index = [ix["name"] for ix in sa.inspect(conn).get_indexes("scheduled_tasks")]
        assert "ix_scheduled_tasks_due" in due_index
        schema.upgrade(database_url)
        assert next_occurrences_out_of_step(engine) == set()
    finally:
        engine.dispose()


def test_due_tasks_become_one_execution_per_occurrence(engine: Engine) -> None:
    at = (NOW - timedelta(seconds=5)).isoformat()
    one_time = add_task(engine, "once", {"at": at})
    cron = add_task(engine, "minutely", {"cron": "* * * * *"})
    requests = claim_all(engine, NOW)
    # The cron task was created an hour ago: 60 missed minutes, each within the
    # misfire grace, plus the one-time task.
    assert Counter(r.task_id for r in requests) == {str(one_time): 1, str(cron): 61}
    assert len({r.idempotency_key for r in requests}) == 62
    assert all(r.attempt == 1 for r in requests)
    # A second tick at the same moment finds nothing new.
    assert claim_all(engine, NOW) == []
    # The tick also claimed what falls due before the next tick (12:01), staged as a
    # queued execution to be sent at its second.
    assert task_row(engine, cron)["next_execution_time"] == NOW + timedelta(minutes=2)
    staged = [r for r in execution_rows(engine) if r["status"] == "queued"]
    assert [(r["scheduled_for"], r["next_attempt_at"]) for r in staged] == [
        (NOW + timedelta(minutes=1), NOW + timedelta(minutes=1))
    ]
    assert task_row(engine, one_time)["next_execution_time"] is None
    # The claim's bookkeeping: counted, stamped with the claim's now, no attempt yet.
    assert task_row(engine, cron)["occurrence_count"] == 62
    assert {task_row(engine, t)["updated_at"] for t in (one_time, cron)} == {NOW}
    assert {(r["created_at"], r["attempts"]) for r in execution_rows(engine)} == {(NOW, 0)}


def test_concurrent_claimers_never_share_an_occurrence(engine: Engine) -> None:
    at = (NOW - timedelta(seconds=1)).isoformat()
    ids = {add_task(engine, f"t{i}", {"at": at}) for i in range(300)}
    results: list[list[TriggerRequest]] = [[], [], [], []]
    barrier = threading.Barrier(len(results))

    def claimer(index: int) -> None:
        barrier.wait()
        while True:
            with engine.begin() as conn:
                claim = discovery.claim_occurrences(conn, NOW, SETTINGS)
            results[index].extend(claim.requests)
            if not claim.more:
                return

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [r for part in results for r in part]
    assert len(everything) == 300
    assert {uuid.UUID(r.task_id) for r in everything} == ids
    assert len({r.execution_id for r in everything}) == 300
    assert len(execution_rows(engine)) == 300


def test_recording_twice_changes_nothing(engine: Engine) -> None:
    task_id = add_task(engine, "once", {"at": NOW.isoformat()})
    [request] = claim_all(engine, NOW)
    first = writeback.record_outcomes(engine, [outcome(request)], SETTINGS, NOW, lambda: 0.5)
    before = (execution_rows(engine), task_row(engine, task_id))
    second = writeback.record_outcomes(engine, [outcome(request)], SETTINGS, NOW, lambda: 0.5)
    assert (first.applied, second.applied, second.ignored) == (1, 0, 1)
    assert (execution_rows(engine), task_row(engine, task_id)) == before
    [row] = before[0]
    assert row["status"] == "succeeded" and row["attempts"] == 1 and row["http_status"] == 200
    task = before[1]
    assert task["is_finished"] and task["last_status"] == "succeeded"
    assert task["execution_count"] == 1 and task["last_execution_time"] == NOW


@pytest.mark.parametrize(
    "text",
    ['quote " backslash \\ tab \t newline \n', "non-ASCII: é ✓ 日本 \U0001f600", "\ufffd replaced"],
)
def test_the_write_back_stores_any_text_exactly(engine: Engine, text: str) -> None:
    """Outcomes reach PostgreSQL as one JSON parameter: escaping must round-trip."""
    task_id = add_task(engine, "texty", {"at": NOW.isoformat()})
    [request] = claim_all(engine, NOW)
    failed = dataclasses.replace(outcome(request, 404), error=text, response_excerpt=text)
    writeback.record_outcomes(engine, [failed], SETTINGS, NOW, lambda: 0.5)
    [row] = execution_rows(engine)
    assert (row["error"], row["response_excerpt"]) == (text, text)
    with engine.connect() as conn:
        [attempt] = execution_queries.attempts_of_execution(conn, row["id"])
    assert (attempt["error"], attempt["started_at"]) == (text, NOW)
    assert task_row(engine, task_id)["last_status"] == "failed"


def test_one_chunk_writes_back_many_tasks_and_executions(engine: Engine) -> None:
    """A chunk as discovery sends it: many tasks, each its own outcome, in one call."""
    ids = [add_task(engine, f"many-{i}", {"at": NOW.isoformat()}) for i in range(120)]
    requests = claim_all(engine, NOW)
    assert len(requests) == 120
    outcomes = [outcome(r, 200 if i % 3 else 503 if i % 2 else 404) for i, r in enumerate(requests)]
    report = writeback.record_outcomes(engine, outcomes, SETTINGS, NOW, lambda: 0.5)
    assert (report.applied, report.retries_scheduled, report.finished) == (120, 20, 100)
    statuses = Counter(row["status"] for row in execution_rows(engine))
    assert statuses == Counter({"succeeded": 80, "failed": 20, "queued": 20})
    # A retry does not end the execution: its task has no last status yet.
    last = Counter(task_row(engine, task_id)["last_status"] for task_id in ids)
    assert last == Counter({"succeeded": 80, "failed": 20, None: 20})


def test_retry_keeps_the_key_and_ends_succeeded(engine: Engine) -> None:
    task_id = add_task(
        engine, "flaky", {"at": NOW.isoformat()}, retry={"max_attempts": 3, "backoff_seconds": 10}
    )
    [first] = claim_all(engine, NOW)
    report = writeback.record_outcomes(engine, [outcome(first, 503)], SETTINGS, NOW, lambda: 1.0)
    assert report.retries_scheduled == 1
    [row] = execution_rows(engine)
    assert row["status"] == "queued" and row["next_attempt_at"] == NOW + timedelta(seconds=10)
    assert claim_all(engine, NOW + timedelta(seconds=7)) == []
    # Published up to TASKHUB_PUBLISH_LEAD_SECONDS (2 s) ahead, held until its time.
    [second] = claim_all(engine, NOW + timedelta(seconds=9))
    assert (second.attempt, second.idempotency_key) == (2, first.idempotency_key)
    assert second.not_before == NOW + timedelta(seconds=10)
    writeback.record_outcomes(engine, [outcome(second, 200)], SETTINGS, NOW, lambda: 1.0)
    [row] = execution_rows(engine)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("succeeded", 2, None)
    task = task_row(engine, task_id)
    assert (task["last_status"], task["consecutive_failures"], task["is_finished"]) == (
        "succeeded",
        0,
        True,
    )
    with engine.connect() as conn:
        assert [
            a["http_status"] for a in execution_queries.attempts_of_execution(conn, row["id"])
        ] == [
            503,
            200,
        ]


def test_client_error_fails_at_once(engine: Engine) -> None:
    task_id = add_task(engine, "gone", {"at": NOW.isoformat()})
    [request] = claim_all(engine, NOW)
    writeback.record_outcomes(engine, [outcome(request, 404)], SETTINGS, NOW, lambda: 0.5)
    [row] = execution_rows(engine)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)
    assert claim_all(engine, NOW + timedelta(days=1)) == []
    task = task_row(engine, task_id)
    assert (task["last_status"], task["consecutive_failures"]) == ("failed", 1)


def test_exhausted_attempts_leave_a_dead_execution(engine: Engine) -> None:
    task_id = add_task(
        engine, "down", {"at": NOW.isoformat()}, retry={"max_attempts": 2, "backoff_seconds": 1}
    )
    [first] = claim_all(engine, NOW)
    writeback.record_outcomes(
        engine, [outcome(first, None, "connection")], SETTINGS, NOW, lambda: 0.0
    )
    [second] = claim_all(engine, NOW + timedelta(seconds=5))
    writeback.record_outcomes(
        engine, [outcome(second, None, "timeout")], SETTINGS, NOW, lambda: 0.0
    )
    [row] = execution_rows(engine)
    assert (row["status"], row["attempts"]) == ("dead", 2)
    # The task says what its history says: its last execution died.
    task = task_row(engine, task_id)
    assert (task["last_status"], task["consecutive_failures"]) == ("dead", 1)


def test_lost_send_is_sent_again_after_its_lease(engine: Engine) -> None:
    add_task(engine, "lost", {"at": NOW.isoformat()})
    [request] = claim_all(engine, NOW)
    lease = SETTINGS.dispatch_lease_s + 30  # the task's timeout
    # Never before the lease's end, not even published ahead: the outcome may still come
    # back in time, and a send held until then would fire the occurrence twice.
    assert claim_all(engine, NOW + timedelta(seconds=lease - 1)) == []
    [again] = claim_all(engine, NOW + timedelta(seconds=lease))
    assert (again.execution_id, again.attempt, again.idempotency_key) == (
        request.execution_id,
        1,
        request.idempotency_key,
    )
    # Both sends come back: the first outcome is written, the duplicate is ignored.
    report = writeback.record_outcomes(
        engine, [outcome(request), outcome(again)], SETTINGS, NOW, lambda: 0.5
    )
    assert (report.applied, report.ignored) == (1, 1)
    [row] = execution_rows(engine)
    assert (row["status"], row["publish_count"]) == ("succeeded", 2)


def test_paused_tasks_are_not_claimed(engine: Engine) -> None:
    task_id = add_task(engine, "paused", {"interval_seconds": 60})
    with engine.begin() as conn:
        task_queries.update_task(conn, task_id, {"is_active": False})
    assert claim_all(engine, NOW) == []


def test_max_executions_finishes_the_task(engine: Engine) -> None:
    task_id = add_task(engine, "thrice", {"interval_seconds": 60}, max_executions=3)
    requests = claim_all(engine, NOW)
    assert len(requests) == 3
    assert task_row(engine, task_id)["next_execution_time"] is None
    writeback.record_outcomes(
        engine, [outcome(r) for r in requests[:2]], SETTINGS, NOW, lambda: 0.5
    )
    assert not task_row(engine, task_id)["is_finished"]
    writeback.record_outcomes(engine, [outcome(requests[2])], SETTINGS, NOW, lambda: 0.5)
    task = task_row(engine, task_id)
    assert task["is_finished"] and task["execution_count"] == 3


@pytest.mark.parametrize("misfire_grace_s", ["0", "600"])
def test_long_downtime_collapses_missed_occurrences(engine: Engine, misfire_grace_s: str) -> None:
    grace = settings.load({"TASKHUB_MISFIRE_GRACE_SECONDS": misfire_grace_s})
    add_task(engine, "every-minute", {"cron": "* * * * *"})
    requests: list[TriggerRequest] = []
    discovery.run_tick(engine, grace, requests.extend, lambda: NOW)
    # An hour missed: the oldest is fired once, then every minute within the grace
    # (both ends included: NOW itself is an occurrence, zero seconds late).
    expected = 1 + int(misfire_grace_s) // 60 + 1
    assert len(requests) == expected
    assert requests[0].scheduled_for == NOW - timedelta(minutes=60)


@pytest.mark.parametrize(
    ("policy", "first_fired", "count"),
    [
        # Five hours down, a ten-minute grace: the 11 occurrences within it always fire.
        ("fire_once", NOW - timedelta(hours=5), 1 + 11),
        ("skip", NOW - timedelta(minutes=10), 11),
        # The newest 10 missed (the bound) before the horizon at NOW - 10 min.
        ("fire_each", NOW - timedelta(minutes=20), 10 + 11),
    ],
)
def test_missed_occurrences_follow_the_tasks_misfire_policy(
    engine: Engine, policy: str, first_fired: datetime, count: int
) -> None:
    policy_settings = settings.load(
        {"TASKHUB_MISFIRE_GRACE_SECONDS": "600", "TASKHUB_MISFIRE_FIRE_EACH_MAX": "10"}
    )
    task_id = add_task(engine, "minutely", {"cron": "* * * * *"}, misfire_policy=policy)
    with engine.begin() as conn:
        task_queries.update_task(conn, task_id, {"next_execution_time": NOW - timedelta(hours=5)})
    requests: list[TriggerRequest] = []
    discovery.run_tick(engine, policy_settings, requests.extend, lambda: NOW)
    fired = [r.scheduled_for for r in requests]
    assert len(fired) == count and fired == sorted(set(fired))
    assert (fired[0], fired[-1]) == (first_fired, NOW)
    # Plus 12:01, due before the next tick: staged (queued until its second).
    rows = execution_rows(engine)
    assert [row["scheduled_for"] for row in rows] == [*fired, NOW + timedelta(minutes=1)]
    assert rows[-1]["status"] == "queued"
    task = task_row(engine, task_id)
    assert task["next_execution_time"] == NOW + timedelta(minutes=2)
    assert task["occurrence_count"] == count + 1
    # Claiming again at the same moment fires nothing more.
    discovery.run_tick(engine, policy_settings, requests.extend, lambda: NOW)
    assert len(requests) == count


def test_failures_in_a_row_auto_pause_the_task_in_the_write_back(engine: Engine) -> None:
    task_id = add_task(
        engine,
        "failing",
        {"interval_seconds": 600},
        retry={"max_attempts": 1},
        auto_pause_after_failures=3,
    )
    requests = claim_all(engine, NOW)  # NOW - 60 min … NOW: seven occurrences
    assert len(requests) == 7

    def record(request: TriggerRequest, http_status: int) -> writeback.RecordReport:
        return writeback.record_outcomes(
            engine, [outcome(request, http_status)], SETTINGS, NOW, lambda: 0.5
        )

    # Two failures, a success (the count starts over), two failures: still active.
    for request, status in zip(requests[:5], (500, 404, 200, 500, 500), strict=True):
        assert record(request, status).auto_paused == 0
    task = task_row(engine, task_id)
    assert (task["is_active"], task["consecutive_failures"], task["paused_by"]) == (True, 2, None)
    # The third failure in a row pauses it, in the same transaction.
    assert record(requests[5], 500).auto_paused == 1
    paused = task_row(engine, task_id)
    assert not paused["is_active"] and paused["consecutive_failures"] == 3
    assert paused["paused_by"] == "auto_pause" and paused["paused_at"] == NOW
    assert paused["paused_reason"] == (
        "auto-paused after 3 consecutive failures (auto_pause_after_failures: 3; last: HTTP 500)"
    )
    # The same outcome again changes nothing.
    assert record(requests[5], 500).applied == 0
    assert task_row(engine, task_id) == paused
    # An execution still in flight fails too: counted, the pause is kept as it was.
    later = NOW + timedelta(minutes=5)
    writeback.record_outcomes(engine, [outcome(requests[6], 503)], SETTINGS, later, lambda: 0.5)
    after = task_row(engine, task_id)
    assert after["consecutive_failures"] == 4
    assert (after["paused_by"], after["paused_reason"], after["paused_at"]) == (
        "auto_pause",
        paused["paused_reason"],
        NOW,
    )
    # A paused task is not claimed.
    assert claim_all(engine, NOW + timedelta(hours=2)) == []
    # Resume clears who and why, and resets nothing else.
    with engine.begin() as conn:
        resumed = task_service.resume_task(
            conn, "default", task_id, NOW + timedelta(hours=2), SETTINGS
        )
    assert resumed["status"] == "active" and resumed["consecutive_failures"] == 4
    assert (resumed["paused_by"], resumed["paused_reason"], resumed["paused_at"]) == (
        None,
        None,
        None,
    )


def test_failures_in_one_chunk_auto_pause_with_the_newest_error(engine: Engine) -> None:
    task_id = add_task(
        engine,
        "chunk",
        {"interval_seconds": 1200},
        retry={"max_attempts": 1},
        auto_pause_after_failures=2,
    )
    requests = claim_all(engine, NOW)
    assert len(requests) == 4
    outcomes = [outcome(requests[1], 404), outcome(requests[0], 500)]
    report = writeback.record_outcomes(engine, outcomes, SETTINGS, NOW, lambda: 0.5)
    assert (report.applied, report.auto_paused) == (2, 1)
    task = task_row(engine, task_id)
    assert task["paused_reason"] == (
        "auto-paused after 2 consecutive failures (auto_pause_after_failures: 2; last: HTTP 404)"
    )
    # Without a limit nothing pauses, however many fail.
    other = add_task(engine, "never", {"interval_seconds": 1200}, retry={"max_attempts": 1})
    for request in claim_all(engine, NOW):
        writeback.record_outcomes(engine, [outcome(request, 500)], SETTINGS, NOW, lambda: 0.5)
    assert task_row(engine, other)["is_active"]
    assert task_row(engine, other)["consecutive_failures"] == 4


def test_a_throttled_send_goes_back_to_the_database_without_an_attempt(engine: Engine) -> None:
    add_task(engine, "limited", {"at": NOW.isoformat()}, rate_limit={"max_in_flight": 2})
    [request] = claim_all(engine, NOW)
    assert request.rate_limit is not None and request.rate_limit.max_in_flight == 2
    throttled = TriggerOutcome(
        execution_id=request.execution_id,
        attempt=request.attempt,
        started_at=NOW,
        duration_ms=0,
        http_status=None,
        error_kind="throttled",
        error="not sent",
        retry_after_s=3.0,
        response_excerpt=None,
        flow_wait_s=2.0,
    )
    report = writeback.record_outcomes(engine, [throttled], SETTINGS, NOW, lambda: 0.5)
    assert (report.throttled, report.applied) == (1, 0)
    [row] = execution_rows(engine)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    assert row["next_attempt_at"] == NOW + timedelta(seconds=3)
    # A repeated callback defers nothing twice, and counts nothing twice.
    again = writeback.record_outcomes(engine, [throttled], SETTINGS, NOW, lambda: 0.5)
    assert (again.throttled, again.ignored) == (0, 1)
    with engine.connect() as conn:
        counted = metric_queries.read_counters(conn)
        assert execution_queries.attempts_of_execution(conn, row["id"]) == []
    key = ("taskhub_flow_control_waits_total", '{"result":"throttled"}')
    assert counted[key] == 1
    # Sent again when its wait is over, as the same attempt 1 (it was never sent).
    [resent] = claim_all(engine, NOW + timedelta(seconds=3))
    assert (resent.execution_id, resent.attempt) == (request.execution_id, 1)


def test_claimed_and_resent_requests_carry_their_tasks_tenant(engine: Engine) -> None:
    """A trigger worker counts each request under its tenant's share of its slots."""
    created = NOW - timedelta(hours=1)
    for tenant in ("acme", "globex"):
        data = {
            "name": "hook",
            "schedule": {"at": NOW.isoformat()},
            "target": {"url": "http://t.test/h"},
        }
        with engine.begin() as conn:
            task_service.create_task(
                conn, parse_definition(data, created), created, SETTINGS, tenant
            )
    requests = claim_all(engine, NOW)
    assert sorted(str(r.tenant) for r in requests) == ["acme", "globex"]
    acme = next(r for r in requests if r.tenant == "acme")
    throttled = dataclasses.replace(outcome(acme, None, "throttled"), retry_after_s=1.0)
    writeback.record_outcomes(engine, [throttled], SETTINGS, NOW, lambda: 0.5)
    [resent] = claim_all(engine, NOW + timedelta(seconds=1))
    assert (resent.execution_id, resent.tenant) == (acme.execution_id, "acme")
    assert TriggerRequest.from_message(resent.to_message()).tenant == "acme"


def test_spread_occurrences_are_staged_at_their_stable_offset(engine: Engine) -> None:
    from taskhub.core.occurrences import spread_offset_s

    add_task(
        engine, "spread", {"at": (NOW + timedelta(seconds=30)).isoformat()}, spread_seconds=600
    )
    assert claim_all(engine, NOW) == []  # due within the tick: staged, not sent
    [row] = execution_rows(engine)
    offset = spread_offset_s(row["idempotency_key"], 600)
    assert row["status"] == "queued" and row["publish_count"] == 0
    assert row["next_attempt_at"] == row["scheduled_for"] + timedelta(seconds=offset)
    send_at = row["next_attempt_at"]
    [request] = claim_all(engine, send_at)
    assert request.scheduled_for == NOW + timedelta(seconds=30)
    assert request.not_before is None  # its time has come: no hold


def test_insert_executions_returns_only_what_it_inserted(engine: Engine) -> None:
    task_id = add_task(engine, "dup", {"at": NOW.isoformat()})

    def row(at: datetime) -> NewExecution:
        return NewExecution(task_id, at, f"key-{at.isoformat()}", "queued", at, 0)

    first, second = NOW, NOW + timedelta(minutes=1)
    with engine.begin() as conn:
        inserted = execution_queries.insert_executions(conn, [row(first)], NOW)
    assert [set(r.keys()) for r in inserted] == [{"execution_id", "idempotency_key"}]
    with engine.begin() as conn:
        again = execution_queries.insert_executions(conn, [row(first), row(second)], NOW)
    assert [r["idempotency_key"] for r in again] == [f"key-{second.isoformat()}"]
    assert again[0]["execution_id"] != inserted[0]["execution_id"]
    stored = {
        (r["scheduled_for"], r["next_attempt_at"], r["created_at"], r["attempts"])
        for r in execution_rows(engine)
    }
    assert stored == {(first, first, NOW, 0), (second, second, NOW, 0)}


def test_insert_executions_refuses_naive_instants(engine: Engine) -> None:
    task_id = add_task(engine, "naive", {"at": NOW.isoformat()})
    naive = NOW.replace(tzinfo=None)
    row = NewExecution(task_id, naive, "k", "queued", naive, 0)
    with pytest.raises((ValueError, sa.exc.StatementError)), engine.begin() as conn:
        execution_queries.insert_executions(conn, [row], NOW)
    assert execution_rows(engine) == []


def test_the_claim_reads_only_the_columns_it_needs(engine: Engine) -> None:
    add_task(engine, "narrow", {"at": (NOW - timedelta(seconds=1)).isoformat()})
    with engine.begin() as conn:
        [row] = task_queries.claim_due_tasks(conn, NOW, 10)
    assert set(row.keys()) == {c.name for c in task_queries.CLAIM_COLUMNS}
    assert "tags" not in row


def test_the_claim_reads_task_ids_as_their_canonical_text(engine: Engine) -> None:
    task_id = add_task(engine, "text-id", {"at": (NOW - timedelta(seconds=1)).isoformat()})
    with engine.connect() as conn:  # rolled back: the claim below takes it again
        [row] = task_queries.claim_due_tasks(conn, NOW, 10)
    assert row["id"] == str(task_id)  # the same text on both dialects: keys depend on it
    [request] = claim_all(engine, NOW)
    assert request.task_id == str(task_id)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(executions.c.task_id)).scalar_one()
        advanced = conn.execute(
            sa.select(scheduled_tasks.c.occurrence_count).where(scheduled_tasks.c.id == task_id)
        ).scalar_one()
    assert (stored, advanced) == (task_id, 1)


def test_claimed_requests_carry_their_tasks_headers_exactly(engine: Engine) -> None:
    at = (NOW - timedelta(seconds=1)).isoformat()
    headers = [{"X-Team": "billing", "X-Quote": 'a"b\\c', "X-Uni": "日本"}, {"X-Team": "ops"}, {}]
    for i, own in enumerate(headers * 3):
        target = {"url": "http://t.test/h", "headers": own}
        data = {"name": f"h{i}", "schedule": {"at": at}, "target": target}
        created = NOW - timedelta(hours=1)
        with engine.begin() as conn:
            task_service.create_task(conn, parse_definition(data, created), created, SETTINGS)
    requests = claim_all(engine, NOW)
    assert sorted(sorted(r.headers.items()) for r in requests) == sorted(
        sorted(h.items()) for h in headers * 3
    )
    # Tasks with the same headers share one decoded, read-only mapping.
    with engine.begin() as conn:
        for task_id in conn.execute(sa.select(scheduled_tasks.c.id)).scalars().all():
            task_queries.update_task(
                conn, task_id, {"next_execution_time": NOW, "is_finished": False}
            )
        rows = task_queries.claim_due_tasks(conn, NOW, 100)
    billing = [row["headers"] for row in rows if row["headers"].get("X-Team") == "billing"]
    assert len(billing) == 3 and all(h is billing[0] for h in billing)
    with pytest.raises(TypeError):
        billing[0]["X-Team"] = "changed"


def next_occurrences_out_of_step(engine: Engine) -> set[Any]:
    """What differs between the tasks that can fall due, at their next execution time,
    and ``next_occurrences``: nothing, if every writer kept the two in step."""
    with engine.connect() as conn:
        expected = set(
            conn.execute(
                sa.select(scheduled_tasks.c.next_execution_time, scheduled_tasks.c.id).where(
                    task_queries.CAN_FALL_DUE
                )
            ).tuples()
        )
        stored = set(
            conn.execute(
                sa.select(next_occurrences.c.scheduled_for, next_occurrences.c.task_id)
            ).tuples()
        )
    return expected ^ stored


def test_every_writer_keeps_next_occurrences_in_step(engine: Engine) -> None:
    later = NOW + timedelta(hours=2)
    cron = add_task(engine, "cron", {"cron": "*/5 * * * *"})
    interval = add_task(engine, "interval", {"interval_seconds": 600})
    once = add_task(engine, "once", {"at": (NOW - timedelta(minutes=1)).isoformat()})
    fragile = add_task(
        engine,
        "fragile",
        {"interval_seconds": 60},
        retry={"max_attempts": 1},
        auto_pause_after_failures=1,
    )
    add_task(engine, "future", {"at": "2031-01-01T00:00:00Z"})
    assert next_occurrences_out_of_step(engine) == set()
    requests = claim_all(engine, NOW)  # each claimed task advanced
    assert next_occurrences_out_of_step(engine) == set()

    steps: list[Callable[[Connection], object]] = [
        lambda conn: task_service.update_task(
            conn, "default", cron, {"schedule": {"interval_seconds": 120}}, NOW, SETTINGS
        ),
        lambda conn: task_service.update_task(
            conn, "default", cron, {"name": "renamed"}, NOW, SETTINGS
        ),
        lambda conn: task_service.pause_task(conn, "default", interval, NOW, SETTINGS),
        lambda conn: task_service.resume_task(conn, "default", interval, later, SETTINGS),
        lambda conn: task_service.delete_task(conn, "default", cron),
    ]
    for step in steps:
        with engine.begin() as conn:
            step(conn)
        assert next_occurrences_out_of_step(engine) == set()
    # The write-back finishes the one-time task and auto-pauses the fragile one.
    results = [
        outcome(r, 200 if str(r.task_id) == str(once) else 500)
        for r in requests
        if r.task_id in (str(once), str(fragile))
    ]
    report = writeback.record_outcomes(engine, results, SETTINGS, NOW, lambda: 0.5)
    assert (report.finished, report.auto_paused) == (1, 1)
    assert next_occurrences_out_of_step(engine) == set()
    with engine.connect() as conn:
        stored = set(conn.execute(sa.select(next_occurrences.c.task_id)).scalars())
    assert once not in stored and fragile not in stored and interval in stored
    claim_all(engine, later)
    assert next_occurrences_out_of_step(engine) == set()


@pytest.mark.timeout(60)
def test_the_pg_claim_skips_a_task_its_writer_holds_and_leaves_it_due(pg_engine: Engine) -> None:
    held = add_task(pg_engine, "held", {"at": (NOW - timedelta(seconds=2)).isoformat()})
    free = add_task(pg_engine, "free", {"at": (NOW - timedelta(seconds=1)).isoformat()})
    with pg_engine.connect() as writer:
        # As the API holds a task it changes: the claim neither waits nor takes it.
        writer.execute(
            sa.select(scheduled_tasks.c.id).where(scheduled_tasks.c.id == held).with_for_update()
        )
        assert [r.task_id for r in claim_all(pg_engine, NOW)] == [str(free)]
        # The claim's own lock is FOR NO KEY UPDATE: a key-share lock does not wait for it.
        with pg_engine.begin() as claimer, pg_engine.begin() as other:
            claimer.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            other.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            writer.rollback()
            [row] = task_queries.claim_due_tasks(claimer, NOW, 10)
            assert row["id"] == str(held)
            other.execute(
                sa.select(scheduled_tasks.c.id)
                .where(scheduled_tasks.c.id == held)
                .with_for_update(read=True, key_share=True)
            )
            claimer.rollback()
    # Rolled back: the held task is still due, and the next claim takes it.
    assert [r.task_id for r in claim_all(pg_engine, NOW)] == [str(held)]
    assert next_occurrences_out_of_step(pg_engine) == set()


def test_batches_are_published_after_their_commit_in_claim_order(engine: Engine) -> None:
    for i in range(7):
        add_task(engine, f"batch-{i}", {"at": NOW.isoformat()})
    small = settings.load({"TASKHUB_CLAIM_BATCH_SIZE": "3", "TASKHUB_DISPATCH_LEASE_SECONDS": "60"})
    batches: list[list[int]] = []

    def publish(requests: Sequence[TriggerRequest]) -> None:
        ids = [r.execution_id for r in requests]
        # Published after the claim's commit: another connection sees them leased.
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(executions.c.status).where(executions.c.id.in_(ids))
            ).all()
        assert sorted(r.status for r in rows) == ["running"] * len(ids)
        batches.append(ids)

    report = discovery.run_tick(engine, small, publish, lambda: NOW)
    assert [len(b) for b in batches] == [3, 3, 1]
    published = [i for b in batches for i in b]
    assert published == sorted(published) == [r["id"] for r in execution_rows(engine)]
    assert (report.occurrences_claimed, report.published) == (7, 7)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_no_garbage_collection_while_a_batch_is_claimed_and_published(
    engine: Engine, enabled_before: bool
) -> None:
    for i in range(5):
        add_task(engine, f"gc-{i}", {"at": NOW.isoformat()})
    small = settings.load({"TASKHUB_CLAIM_BATCH_SIZE": "2", "TASKHUB_DISPATCH_LEASE_SECONDS": "60"})
    seen: list[bool] = []
    if not enabled_before:
        gc.disable()
    try:
        discovery.run_tick(engine, small, lambda requests: seen.append(gc.isenabled()), lambda: NOW)
        assert seen == [False, False, False]
        assert gc.isenabled() is enabled_before  # as it was: never left off, never forced on
    finally:
        gc.enable()


def test_a_failed_publish_stops_the_claims_and_its_leases_send_it_again(
    engine: Engine,
) -> None:
    for i in range(7):
        add_task(engine, f"fails-{i}", {"at": NOW.isoformat()})
    small = settings.load({"TASKHUB_CLAIM_BATCH_SIZE": "3", "TASKHUB_DISPATCH_LEASE_SECONDS": "60"})
    attempts: list[int] = []

    def broken(requests: Sequence[TriggerRequest]) -> None:
        attempts.append(len(requests))
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError, match="broker down"):
        discovery.run_tick(engine, small, broken, lambda: NOW)
    # The first failure stops the claims: nothing more was claimed.
    assert attempts == [3]
    claimed = execution_rows(engine)
    assert len(claimed) == 3
    assert {r["status"] for r in claimed} == {"running"}
    # Once their lease has run out, every occurrence is sent, each exactly once.
    later = NOW + timedelta(seconds=small.dispatch_lease_s + 30)
    requests: list[TriggerRequest] = []
    discovery.run_tick(engine, small, requests.extend, lambda: later)
    assert sorted(r.idempotency_key for r in requests) == sorted(
        r["idempotency_key"] for r in execution_rows(engine)
    )
    assert len(execution_rows(engine)) == 7


def test_mark_published_leases_only_the_given_executions(engine: Engine) -> None:
    from zoneinfo import ZoneInfo

    for i in range(3):
        add_task(engine, f"lease-{i}", {"at": NOW.isoformat()})
    claim_all(engine, NOW)
    first, second, third = execution_rows(engine)
    lease = (NOW + timedelta(minutes=5)).astimezone(ZoneInfo("Asia/Taipei"))
    with engine.begin() as conn:
        execution_queries.mark_published(
            conn,
            [
                PublishLease(first["id"], lease),
                PublishLease(third["id"], lease + timedelta(seconds=1)),
            ],
        )
    after = {r["id"]: r for r in execution_rows(engine)}
    assert after[first["id"]]["status"] == "running"
    assert after[first["id"]]["publish_count"] == first["publish_count"] + 1
    assert after[first["id"]]["next_attempt_at"] == lease
    assert after[third["id"]]["next_attempt_at"] == lease + timedelta(seconds=1)
    assert after[second["id"]] == second


def test_pg_sessions_read_instants_in_utc_whatever_the_servers_zone(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        name = postgres_url.rsplit("/", 1)[1]
        admin.execute(f"ALTER DATABASE \"{name}\" SET TimeZone TO 'Asia/Taipei'")
    engine = engines.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            at = conn.execute(
                sa.text("SELECT CAST('2026-11-22T09:00:00Z' AS timestamptz)")
            ).scalar()
            # As stored, in datetime.UTC: no zone conversion is needed per value read.
            assert at == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
            assert at.tzinfo is UTC
            # A rolled-back transaction keeps the session's zone.
            conn.rollback()
            assert conn.execute(sa.text("SHOW TimeZone")).scalar() == "UTC"
    finally:
        engine.dispose()


def test_a_deleted_task_takes_its_executions_and_attempts(engine: Engine) -> None:
    doomed = add_task(engine, "doomed", {"cron": "* * * * *"})
    kept = add_task(engine, "kept", {"cron": "* * * * *"})
    requests = claim_all(engine, NOW)
    writeback.record_outcomes(engine, [outcome(r) for r in requests], SETTINGS, NOW, lambda: 0.5)
    with engine.begin() as conn:
        task_service.delete_task(conn, "default", doomed)
    with engine.connect() as conn:
        left = {row.task_id for row in conn.execute(sa.select(executions.c.task_id))}
        attempts_left = conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar()
    assert left == {kept}
    assert attempts_left == sum(1 for r in requests if r.task_id == str(kept))


def test_run_now_waits_for_a_delete_and_adds_nothing_after_it(pg_engine: Engine) -> None:
    task_id = add_task(pg_engine, "racing", {"at": (NOW + timedelta(days=1)).isoformat()})
    deleting = threading.Event()
    outcome_of_run: list[BaseException | None] = []

    def run_now() -> None:
        deleting.wait(5)
        try:
            with pg_engine.begin() as conn:
                task_service.run_task_now(conn, "default", task_id, NOW)
            outcome_of_run.append(None)
        except BaseException as error:
            outcome_of_run.append(error)

    runner = threading.Thread(target=run_now)
    runner.start()
    with pg_engine.begin() as conn:
        task_service.delete_task(conn, "default", task_id)  # holds the task's row lock until commit
        deleting.set()
        time.sleep(0.3)  # the run-now is waiting for that lock meanwhile
    runner.join(10)
    assert [type(e).__name__ for e in outcome_of_run] == ["NotFound"]
    assert execution_rows(pg_engine) == []
