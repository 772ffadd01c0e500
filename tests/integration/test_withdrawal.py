"""A pause, a change or a delete stops what the tick already wrote down, on PostgreSQL
and SQLite, through the engine's own path at the default 60 s tick: the minute's tick
(``discovery.run_tick``) with a controlled clock, the staging loop's passes
(``discovery.claim_and_publish``, one per second) and the trigger worker's clearance at
each request's send time (``withdrawal.clear_to_fire``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from taskhub.core import settings
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerRequest
from taskhub.core.occurrences import idempotency_key
from taskhub.db import metric_queries, task_queries
from taskhub.db.models import executions
from taskhub.engine import discovery, withdrawal, writeback
from taskhub.service import task_service, task_views
from tests.support.storage import outcome

#: The shipped timing: a tick a minute, requests published 5 s ahead of their send time.
DEFAULTS = settings.load({})
M = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a minute's tick
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def add_task(engine: Engine, name: str, schedule: dict[str, Any], **extra: Any) -> uuid.UUID:
    created = M - seconds(30)
    data = {"name": name, "schedule": schedule, "target": {"url": "http://old.test/hook"}}
    with engine.begin() as conn:
        return task_service.create_task(
            conn, parse_definition({**data, **extra}, created), created, DEFAULTS
        )


def tick(engine: Engine, at: datetime) -> list[TriggerRequest]:
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, DEFAULTS, published.extend, lambda: at)
    return published


def staging_loop(engine: Engine, start: datetime, end: datetime) -> list[TriggerRequest]:
    """The staging loop's passes, one a second from ``start`` to ``end``: what they
    published."""
    published: list[TriggerRequest] = []
    at = start
    while at <= end:
        report = discovery.TickReport()
        discovery.claim_and_publish(
            engine, DEFAULTS, published.extend, _clock(at), 0.0, 48.0, report
        )
        at += SECOND
    return published


def _clock(at: datetime) -> discovery.Clock:
    return lambda: at


def sent(engine: Engine, requests: Sequence[TriggerRequest], at: datetime) -> list[TriggerRequest]:
    """What a trigger worker holding ``requests`` sends at ``at``: what is cleared."""
    cleared = withdrawal.clear_to_fire(engine, requests, at) if requests else set()
    return [r for r in requests if r.execution_id in cleared]


def of(requests: Sequence[TriggerRequest], task_id: uuid.UUID) -> list[datetime]:
    return [r.scheduled_for for r in requests if r.task_id == str(task_id)]


def withdrawn(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        counted = metric_queries.read_counters(conn)
    return {
        labels: value
        for (name, labels), value in counted.items()
        if name == "taskhub_occurrences_withdrawn_total"
    }


def reason(name: str) -> str:
    return f'{{"reason":"{name}"}}'


def rows_of(engine: Engine, task_id: uuid.UUID) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(executions)
                .where(executions.c.task_id == task_id)
                .order_by(executions.c.scheduled_for)
            ).mappings()
        )


def task_row(conn: Connection, task_id: uuid.UUID) -> RowMapping:
    row = task_queries.get_task(conn, task_id)
    assert row is not None
    return row


def shown(engine: Engine, task_id: uuid.UUID, at: datetime) -> dict[str, Any]:
    with engine.connect() as conn:
        return task_views.get_task(conn, "default", task_id, DEFAULTS, at)


def write(engine: Engine, change: Any) -> Any:
    with engine.begin() as conn:
        return change(conn)


def succeed(engine: Engine, requests: Sequence[TriggerRequest], at: datetime) -> None:
    """Send what is cleared at ``at`` and write back a 200 for each."""
    outcomes = [outcome(r, 200, at=at) for r in sent(engine, requests, at)]
    writeback.record_outcomes(engine, outcomes, DEFAULTS, at + SECOND, lambda: 0.5)


def test_a_pause_withdraws_what_the_tick_staged(engine: Engine) -> None:
    task = add_task(engine, "minutely", {"cron": "* * * * *"})
    first = tick(engine, M)
    assert of(first, task) == [M]  # due now; 12:01 is staged
    succeed(engine, first, M)
    assert [(r["scheduled_for"], r["status"]) for r in rows_of(engine, task)][1:] == [
        (M + MINUTE, "queued")
    ]
    write(
        engine,
        lambda conn: task_service.pause_task(conn, "default", task, M + seconds(20), DEFAULTS),
    )
    assert [r["scheduled_for"] for r in rows_of(engine, task)] == [M]
    assert withdrawn(engine) == {reason("pause"): 1}
    published = staging_loop(engine, M + seconds(21), M + seconds(65))
    published += tick(engine, M + MINUTE) + tick(engine, M + 2 * MINUTE)
    assert of(published, task) == []
    # Resumed later, it fires from then on: nothing of what fell due while paused.
    write(
        engine,
        lambda conn: task_service.resume_task(conn, "default", task, M + seconds(130), DEFAULTS),
    )
    published = staging_loop(engine, M + seconds(131), M + seconds(180))
    assert of(published, task) == [M + 3 * MINUTE]


def test_a_task_resumed_within_the_minute_stages_the_same_occurrence_again(
    engine: Engine,
) -> None:
    task = add_task(engine, "minutely", {"cron": "* * * * *"})
    tick(engine, M)
    write(
        engine,
        lambda conn: task_service.pause_task(conn, "default", task, M + seconds(20), DEFAULTS),
    )
    write(
        engine,
        lambda conn: task_service.resume_task(conn, "default", task, M + seconds(30), DEFAULTS),
    )
    assert shown(engine, task, M + seconds(30))["next_execution_time"] == (M + MINUTE).isoformat()
    # The withdrawn row is gone, so (task, 12:01) can be claimed again: once.
    published = staging_loop(engine, M + seconds(31), M + seconds(60)) + tick(engine, M + MINUTE)
    [again] = [r for r in published if r.task_id == str(task)]
    assert again.scheduled_for == M + MINUTE and again.not_before == M + MINUTE
    assert again.idempotency_key == idempotency_key(task, M + MINUTE)
    assert sent(engine, [again], M + MINUTE) == [again]
    assert [r["scheduled_for"] for r in rows_of(engine, task)][:2] == [M, M + MINUTE]


def test_a_pause_drops_a_request_the_worker_holds_and_a_begun_send_is_kept(
    engine: Engine,
) -> None:
    held_task = add_task(engine, "held", {"cron": "* * * * *"})
    going = add_task(engine, "going", {"cron": "* * * * *"})
    first = tick(engine, M)
    assert sent(engine, first, M) == first  # both due at 12:00, sent before any pause
    held = staging_loop(engine, M + SECOND, M + seconds(56))
    assert [(r.scheduled_for, r.not_before) for r in held] == [(M + MINUTE, M + MINUTE)] * 2
    # 12:00:58: the held one's task is paused while a worker holds its request.
    write(
        engine,
        lambda conn: task_service.pause_task(conn, "default", held_task, M + seconds(58), DEFAULTS),
    )
    assert withdrawn(engine) == {reason("pause"): 1}
    [gone] = [r for r in held if r.task_id == str(held_task)]
    [kept] = [r for r in held if r.task_id == str(going)]
    assert sent(engine, held, M + MINUTE) == [kept]
    # The other is paused a moment after its send began: it is not withdrawn, and its
    # outcome is recorded.
    write(
        engine,
        lambda conn: task_service.pause_task(conn, "default", going, M + seconds(60.5), DEFAULTS),
    )
    assert withdrawn(engine) == {reason("pause"): 1}
    outcomes = [outcome(r, 200, at=M + MINUTE) for r in [*first, kept]]
    assert (
        writeback.record_outcomes(engine, outcomes, DEFAULTS, M + seconds(61), lambda: 0.5).applied
        == 3
    )
    assert [(r["scheduled_for"], r["status"]) for r in rows_of(engine, going)] == [
        (M, "succeeded"),
        (M + MINUTE, "succeeded"),
    ]
    assert [r["scheduled_for"] for r in rows_of(engine, held_task)] == [M]
    assert gone.execution_id not in {r["id"] for r in rows_of(engine, held_task)}


def test_a_pause_racing_the_staging_loops_claim_still_withdraws(engine: Engine) -> None:
    task = add_task(engine, "minutely", {"cron": "* * * * *"})
    tick(engine, M)
    pausing = threading.Thread(
        target=write,
        args=(
            engine,
            lambda c: task_service.pause_task(c, "default", task, M + seconds(56), DEFAULTS),
        ),
    )
    with engine.begin() as conn:  # the loop's claim at 12:00:55, not yet committed
        claim = discovery.claim_publishable(conn, M + seconds(55), DEFAULTS)
        assert of(claim.requests, task) == [M + MINUTE]
        pausing.start()
        pausing.join(0.5)
        assert pausing.is_alive()  # the pause waits for the claim's lock
    pausing.join(30)
    assert not pausing.is_alive()
    assert withdrawn(engine) == {reason("pause"): 1}
    assert sent(engine, claim.requests, M + MINUTE) == []


def test_run_now_is_not_withdrawn_by_a_pause_and_fires_while_paused(engine: Engine) -> None:
    task = add_task(engine, "minutely", {"cron": "* * * * *"})
    tick(engine, M)
    run = write(
        engine, lambda conn: task_service.run_task_now(conn, "default", task, M + seconds(30))
    )
    write(
        engine,
        lambda conn: task_service.pause_task(conn, "default", task, M + seconds(30.5), DEFAULTS),
    )
    assert withdrawn(engine) == {reason("pause"): 1}  # 12:01, not the run-now
    published = staging_loop(engine, M + seconds(31), M + seconds(31))
    assert [r.execution_id for r in sent(engine, published, M + seconds(31))] == [run["id"]]
    # And one asked for while it is paused.
    again = write(
        engine, lambda conn: task_service.run_task_now(conn, "default", task, M + seconds(40))
    )
    published = staging_loop(engine, M + seconds(41), M + seconds(70))
    assert [r.execution_id for r in sent(engine, published, M + seconds(70))] == [again["id"]]


def test_a_changed_schedule_withdraws_the_old_schedules_occurrence(engine: Engine) -> None:
    task = add_task(engine, "minutely", {"cron": "* * * * *"})
    tick(engine, M)
    changed = write(
        engine,
        lambda conn: task_service.update_task(
            conn, "default", task, {"schedule": {"cron": "0 0 1 1 *"}}, M + seconds(20), DEFAULTS
        ),
    )
    assert changed["next_execution_time"] == "2027-01-01T00:00:00+00:00"
    assert withdrawn(engine) == {reason("change"): 1}
    published = staging_loop(engine, M + seconds(21), M + seconds(65)) + tick(engine, M + MINUTE)
    assert of(published, task) == []


def test_a_changed_target_gets_the_occurrences_not_yet_sent(engine: Engine) -> None:
    staged = add_task(engine, "staged", {"cron": "* * * * *"})
    held = add_task(engine, "held", {"cron": "* * * * *"})
    tick(engine, M)
    new_target = {"target": {"url": "http://new.test/hook"}}
    # Staged (12:00:20): withdrawn, and still the next occurrence, now to the new target.
    changed = write(
        engine,
        lambda conn: task_service.update_task(
            conn, "default", staged, new_target, M + seconds(20), DEFAULTS
        ),
    )
    assert changed["next_execution_time"] == (M + MINUTE).isoformat()
    # Held by a worker (12:00:58): dropped there, published again to the new target.
    old = staging_loop(engine, M + seconds(21), M + seconds(56))
    assert sorted((r.task_id, r.url) for r in old) == sorted(
        [(str(staged), "http://new.test/hook"), (str(held), "http://old.test/hook")]
    )
    write(
        engine,
        lambda conn: task_service.update_task(
            conn, "default", held, new_target, M + seconds(58), DEFAULTS
        ),
    )
    assert withdrawn(engine) == {reason("change"): 2}
    new = staging_loop(engine, M + seconds(59), M + seconds(60)) + tick(engine, M + MINUTE)
    firing = sent(engine, old + new, M + MINUTE)
    assert sorted((r.task_id, r.scheduled_for, r.url) for r in firing) == sorted(
        (str(t), M + MINUTE, "http://new.test/hook") for t in (staged, held)
    )
    assert {r.idempotency_key for r in firing} == {
        idempotency_key(t, M + MINUTE) for t in (staged, held)
    }
    with engine.connect() as conn:
        counts = {task_row(conn, t)["occurrence_count"] for t in (staged, held)}
    assert counts == {3}  # 12:00, 12:01, and 12:02 staged by the 12:01 tick: none twice


def test_a_lowered_end_at_or_max_executions_withdraws_what_they_no_longer_allow(
    engine: Engine,
) -> None:
    every_10s = {"interval_seconds": 10}
    ends = add_task(engine, "ends", every_10s, start_at=M.isoformat())
    counted = add_task(engine, "counted", every_10s, start_at=M.isoformat())
    first = tick(engine, M)  # fires 12:00:00, stages 12:00:10 ... 12:01:00
    assert of(first, ends) == of(first, counted) == [M]
    assert len(rows_of(engine, ends)) == len(rows_of(engine, counted)) == 7
    at = M + seconds(2)
    end_at = {"end_at": (M + seconds(25)).isoformat()}
    write(
        engine, lambda conn: task_service.update_task(conn, "default", ends, end_at, at, DEFAULTS)
    )
    write(
        engine,
        lambda c: task_service.update_task(
            c, "default", counted, {"max_executions": 3}, at, DEFAULTS
        ),
    )
    assert withdrawn(engine) == {reason("change"): 12}
    published = staging_loop(engine, M + seconds(3), M + seconds(70)) + tick(engine, M + MINUTE)
    assert of(published, ends) == of(published, counted) == [M + seconds(10), M + seconds(20)]
    for task in (ends, counted):
        assert shown(engine, task, M + seconds(70))["next_execution_time"] is None


def test_a_changed_name_or_tags_withdraws_nothing(engine: Engine) -> None:
    task = add_task(engine, "minutely", {"cron": "* * * * *"})
    tick(engine, M)
    renamed = {"name": "renamed", "tags": {"team": "ops"}, "retry": {"max_attempts": 2}}
    write(
        engine,
        lambda conn: task_service.update_task(
            conn, "default", task, renamed, M + seconds(20), DEFAULTS
        ),
    )
    assert withdrawn(engine) == {}
    published = staging_loop(engine, M + seconds(21), M + seconds(60))
    assert of(sent(engine, published, M + MINUTE), task) == [M + MINUTE]


def test_a_delete_withdraws_what_is_staged_or_held(engine: Engine) -> None:
    staged = add_task(engine, "staged", {"at": (M + seconds(40)).isoformat()})
    held = add_task(engine, "held", {"cron": "* * * * *"})
    tick(engine, M)
    write(engine, lambda conn: task_service.delete_task(conn, "default", staged, M + seconds(20)))
    in_hand = staging_loop(engine, M + seconds(21), M + seconds(56))
    assert of(in_hand, held) == [M + MINUTE]
    write(engine, lambda conn: task_service.delete_task(conn, "default", held, M + seconds(58)))
    assert withdrawn(engine) == {reason("delete"): 2}
    assert sent(engine, in_hand, M + MINUTE) == []
    assert rows_of(engine, staged) == rows_of(engine, held) == []


def test_an_auto_pause_withdraws_what_was_due_after_it(engine: Engine) -> None:
    task = add_task(
        engine,
        "fragile",
        {"interval_seconds": 10},
        start_at=M.isoformat(),
        retry={"max_attempts": 1},
        auto_pause_after_failures=1,
    )
    first = sent(engine, tick(engine, M), M)
    held = staging_loop(engine, M + SECOND, M + seconds(6))
    assert of(held, task) == [M + seconds(10)]
    # 12:00:07: the first occurrence's failure is written back; 12:00:10 is held by a
    # worker, 12:00:20 ... 12:01:00 are staged.
    report = writeback.record_outcomes(
        engine, [outcome(r, 500, at=M) for r in first], DEFAULTS, M + seconds(7), lambda: 0.5
    )
    assert (report.auto_paused, report.withdrawn) == (1, 6)
    assert withdrawn(engine) == {reason("auto_pause"): 6}
    assert sent(engine, held, M + seconds(10)) == []
    published = staging_loop(engine, M + seconds(8), M + seconds(70)) + tick(engine, M + MINUTE)
    assert of(published, task) == []
    paused = shown(engine, task, M + seconds(70))
    assert (paused["status"], paused["consecutive_failures"]) == ("paused", 1)
    assert paused["paused_reason"] == (
        "auto-paused after 1 consecutive failure (auto_pause_after_failures: 1; last: HTTP 500)"
    )


def test_the_reason_names_the_limit_when_one_chunk_fails_past_it(engine: Engine) -> None:
    task = add_task(
        engine,
        "fragile",
        {"interval_seconds": 10},
        start_at=(M - seconds(10)).isoformat(),
        retry={"max_attempts": 1},
        auto_pause_after_failures=1,
    )
    due = tick(engine, M)  # 11:59:50 and 12:00:00, written back in one chunk
    assert of(due, task) == [M - seconds(10), M]
    outcomes = [outcome(r, 503, at=M) for r in sent(engine, due, M)]
    writeback.record_outcomes(engine, outcomes, DEFAULTS, M + SECOND, lambda: 0.5)
    paused = shown(engine, task, M + SECOND)
    assert paused["consecutive_failures"] == 2
    assert paused["paused_reason"] == (
        "auto-paused after 1 consecutive failure (auto_pause_after_failures: 1; last: HTTP 503)"
    )


def test_next_execution_time_and_preview_name_the_staged_occurrence(engine: Engine) -> None:
    minutely = add_task(engine, "minutely", {"cron": "* * * * *"})
    once = add_task(engine, "once", {"at": (M + seconds(40)).isoformat()})
    last = add_task(engine, "last", {"cron": "* * * * *"}, max_executions=2)
    tick(engine, M)  # each one's next occurrence is staged; their stored times moved past
    at = M + seconds(10)
    with engine.connect() as conn:
        stored = {t: task_row(conn, t)["next_execution_time"] for t in (minutely, once, last)}
        listed = task_views.list_tasks(conn, "default", DEFAULTS, now=at)["items"]
        previews = {
            t: task_views.preview_task(conn, "default", t, at, 3) for t in (minutely, once, last)
        }
    assert stored == {minutely: M + 2 * MINUTE, once: None, last: None}
    expected = {
        str(minutely): (M + MINUTE).isoformat(),
        str(once): (M + seconds(40)).isoformat(),
        str(last): (M + MINUTE).isoformat(),
    }
    assert {t["id"]: t["next_execution_time"] for t in listed} == expected
    assert {str(t): shown(engine, t, at)["next_execution_time"] for t in stored} == expected
    assert [f["utc"] for f in previews[minutely]["fire_times"]] == [
        (M + n * MINUTE).isoformat() for n in (1, 2, 3)
    ]
    assert [f["utc"] for f in previews[once]["fire_times"]] == [(M + seconds(40)).isoformat()]
    assert [f["utc"] for f in previews[last]["fire_times"]] == [(M + MINUTE).isoformat()]
    # Once 12:01's send has begun, the next one is 12:02.
    sent(engine, staging_loop(engine, M + seconds(55), M + seconds(56)), M + MINUTE)
    assert shown(engine, minutely, M + seconds(60.5))["next_execution_time"] == (
        (M + 2 * MINUTE).isoformat()
    )
