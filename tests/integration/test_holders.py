"""Who holds a send (taskhub/engine/holders.py), on PostgreSQL and SQLite: a send is fired by
one message only, an outcome in the result backend is recorded instead of sent again,
and a dead holder's sends go out again before their lease ends."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.messages import TriggerRequest
from taskhub.db import heartbeat_queries, hold_queries
from taskhub.db.models import executions, worker_heartbeats
from taskhub.db.rows import Hold
from taskhub.engine import discovery, holders, withdrawal, writeback
from taskhub.observability import heartbeat
from tests.support.storage import NOW, SETTINGS, add_task, execution_rows, outcome

#: The lease of a claim at NOW: SETTINGS' 60 s plus the task's default timeout (30 s).
LEASE_S = SETTINGS.dispatch_lease_s + 30


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's database is new: this process has written no heartbeat into it, and
    has been writing its heartbeats for long enough to judge others."""
    monkeypatch.setattr(heartbeat, "_written", False)
    monkeypatch.setattr(heartbeat, "_writing_since", time.monotonic() - 3600)


def tick(
    engine: Engine, now: datetime, lookup: holders.Lookup | None = None
) -> tuple[list[TriggerRequest], discovery.TickReport]:
    sent: list[TriggerRequest] = []
    report = discovery.run_tick(engine, SETTINGS, sent.extend, lambda: now, lookup)
    return sent, report


def start(
    engine: Engine, requests: Sequence[TriggerRequest], message_id: str, now: datetime
) -> Any:
    leases = [discovery.lease_until(now, r.timeout_s, SETTINGS) for r in requests]
    return holders.start(engine, requests, leases, message_id, now)


def one_due(engine: Engine) -> TriggerRequest:
    add_task(engine, f"t-{uuid.uuid4().hex[:6]}", {"at": NOW.isoformat()})
    [request], _ = tick(engine, NOW)
    return request


def test_a_send_is_fired_by_the_first_message_that_starts_it(engine: Engine) -> None:
    request = one_due(engine)
    started = NOW + timedelta(seconds=20)
    assert start(engine, [request], "message-1", started) == [request]
    # A second message with the same send (the broker delivered it twice): not fired.
    assert start(engine, [request], "message-2", started) == []
    [row] = execution_rows(engine)
    assert (row["held_by"], row["message_id"]) == (heartbeat.this_process(), "message-1")
    # The lease counts from the start, not from the claim.
    assert row["next_attempt_at"] == started + timedelta(seconds=LEASE_S)
    with engine.connect() as conn:
        holders_seen = conn.execute(sa.select(worker_heartbeats.c.process)).scalars().all()
    assert holders_seen == [heartbeat.this_process()], "the holder is known alive at once"


def test_a_message_that_waited_past_its_lease_and_its_resend_fire_once(engine: Engine) -> None:
    request = one_due(engine)
    [again], _ = tick(engine, NOW + timedelta(seconds=LEASE_S))
    assert again.execution_id == request.execution_id and again.attempt == request.attempt
    # The late first message starts first and fires; the second send is then not fired.
    late = NOW + timedelta(seconds=LEASE_S + 1)
    assert start(engine, [request], "first", late) == [request]
    assert start(engine, [again], "second", late) == []
    [row] = execution_rows(engine)
    assert (row["publish_count"], row["message_id"]) == (2, "first")


def test_an_ended_or_retried_send_is_not_fired_again(engine: Engine) -> None:
    request = one_due(engine)
    writeback.record_outcomes(engine, [outcome(request)], SETTINGS, NOW, lambda: 0.5)
    assert start(engine, [request], "late", NOW) == []
    retried = one_due(engine)
    writeback.record_outcomes(engine, [outcome(retried, 503)], SETTINGS, NOW, lambda: 0.5)
    assert start(engine, [retried], "late", NOW) == [], "attempt 1 ended; 2 is not sent yet"


def stored(results: Mapping[str, list[dict[str, Any]]]) -> holders.Lookup:
    """A result backend holding ``results`` (message id → the header's return value)."""

    def lookup(message_ids: Sequence[str]) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        return {m: results[m] for m in message_ids if m in results}

    return lookup


def test_an_outcome_in_the_result_backend_is_recorded_not_sent_again(engine: Engine) -> None:
    request, other = one_due(engine), one_due(engine)
    start(engine, [request, other], "message-1", NOW)
    # The message ended (its result is stored) but its chord callback never came.
    backend = stored({"message-1": [outcome(request).to_message()]})
    sent, report = tick(engine, NOW + timedelta(seconds=LEASE_S), backend)
    assert report.outcomes_recovered == 1
    # The other one's outcome is not there: it is sent again, as before.
    assert [r.execution_id for r in sent] == [other.execution_id]
    rows = {r["id"]: r for r in execution_rows(engine)}
    assert rows[request.execution_id]["status"] == "succeeded"
    assert rows[request.execution_id]["publish_count"] == 1
    # The late callback then changes nothing.
    late = writeback.record_outcomes(engine, [outcome(request)], SETTINGS, NOW, lambda: 0.5)
    assert (late.applied, late.ignored) == (0, 1)


def test_a_backend_that_cannot_answer_leaves_the_lease_to_send_again(engine: Engine) -> None:
    request = one_due(engine)
    start(engine, [request], "message-1", NOW)

    def unreachable(_: Sequence[str]) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        raise ConnectionError("result backend down")

    sent, report = tick(engine, NOW + timedelta(seconds=LEASE_S), unreachable)
    assert report.outcomes_recovered == 0
    assert [r.execution_id for r in sent] == [request.execution_id]


def test_a_lease_that_runs_out_during_the_lookup_waits_for_the_next_one(
    engine: Engine,
) -> None:
    """The backend answers slowly; meanwhile a second message's lease runs out, though
    that message ended and its result is stored. The pass publishes again only what it
    looked for (here: nothing); the next pass finds the second outcome and records it."""
    first, second = one_due(engine), one_due(engine)
    start(engine, [first], "message-1", NOW)
    start(engine, [second], "message-2", NOW + timedelta(seconds=1))
    results = {
        "message-1": [outcome(first).to_message()],
        "message-2": [outcome(second).to_message()],
    }
    clock = [NOW + timedelta(seconds=LEASE_S)]
    beat_at(engine, heartbeat.this_process(), clock[0])  # the holder is alive
    asked: list[list[str]] = []

    def slow(message_ids: Sequence[str]) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        asked.append(list(message_ids))
        clock[0] += timedelta(seconds=2)  # the second lease runs out meanwhile
        return {m: results[m] for m in message_ids}

    sent: list[TriggerRequest] = []
    report = discovery.run_tick(engine, SETTINGS, sent.extend, lambda: clock[0], slow)
    assert (sent, report.outcomes_recovered, asked) == ([], 1, [["message-1"]])
    sent, report = tick(engine, clock[0], slow)
    assert (sent, report.outcomes_recovered) == ([], 1)
    assert {r["status"] for r in execution_rows(engine)} == {"succeeded"}


def test_every_held_fire_due_is_looked_for_not_only_one_batch(engine: Engine) -> None:
    settings = dataclasses.replace(SETTINGS, claim_batch_size=2)
    requests = [one_due(engine) for _ in range(5)]
    for number, request in enumerate(requests):
        start(engine, [request], f"message-{number}", NOW)
    results = {f"message-{n}": [outcome(r).to_message()] for n, r in enumerate(requests)}
    sent: list[TriggerRequest] = []
    later = NOW + timedelta(seconds=LEASE_S)
    report = discovery.run_tick(engine, settings, sent.extend, lambda: later, stored(results))
    assert (sent, report.outcomes_recovered) == ([], 5)


def beat_at(engine: Engine, process: str, seen_at: datetime) -> None:
    with engine.begin() as conn:
        heartbeat_queries.write_heartbeat(
            conn, heartbeat.measure("trigger", None, seen_at, seen_at, 0) | {"process": process}
        )


def hold_as(engine: Engine, request: TriggerRequest, process: str, now: datetime) -> None:
    with engine.begin() as conn:
        lease = discovery.lease_until(now, request.timeout_s, SETTINGS)
        holds = [Hold(request.execution_id, request.attempt, lease)]
        assert hold_queries.hold_executions(conn, holds, process, "message-1") == {
            request.execution_id
        }


def test_a_dead_holders_sends_go_out_again_before_their_lease(engine: Engine) -> None:
    dead_after = timedelta(seconds=SETTINGS.worker_dead_after_s)
    dying, living = one_due(engine), one_due(engine)
    hold_as(engine, dying, "host:1", NOW)
    hold_as(engine, living, "host:2", NOW)
    beat_at(engine, "host:1", NOW)
    beat_at(engine, "host:2", NOW)
    beat_at(engine, "host:2", NOW + dead_after)  # host:2 goes on writing
    assert tick(engine, NOW + dead_after)[0] == []
    sent, _ = tick(engine, NOW + dead_after + timedelta(seconds=1))
    assert [(r.execution_id, r.attempt) for r in sent] == [(dying.execution_id, 1)]
    assert sent[0].not_before is None, "sent at once, not at its old lease's end"
    rows = {r["id"]: r for r in execution_rows(engine)}
    assert rows[dying.execution_id]["held_by"] is None
    assert rows[dying.execution_id]["publish_count"] == 2
    assert rows[living.execution_id]["held_by"] == "host:2"


def test_only_a_process_that_went_on_writing_judges_others_dead(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a database outage every heartbeat is old: whoever is back first must not
    take the others for dead."""
    request = one_due(engine)
    hold_as(engine, request, "host:1", NOW)
    beat_at(engine, "host:1", NOW)
    monkeypatch.setattr(heartbeat, "_writing_since", time.monotonic() - 5)
    assert tick(engine, NOW + timedelta(seconds=SETTINGS.worker_dead_after_s + 5))[0] == []
    monkeypatch.setattr(heartbeat, "_writing_since", None)
    assert tick(engine, NOW + timedelta(seconds=SETTINGS.worker_dead_after_s + 5))[0] == []


def test_a_send_claimed_again_forgets_its_holder(engine: Engine) -> None:
    request = one_due(engine)
    start(engine, [request], "message-1", NOW)
    tick(engine, NOW + timedelta(seconds=LEASE_S))
    with engine.connect() as conn:
        row = conn.execute(sa.select(executions)).mappings().one()
    assert (row["held_by"], row["message_id"], row["publish_count"]) == (None, None, 2)


def due_with(engine: Engine, overlap: str) -> TriggerRequest:
    add_task(engine, f"t-{uuid.uuid4().hex[:6]}", {"at": NOW.isoformat()}, overlap=overlap)
    [request], _ = tick(engine, NOW)
    return request


def cleared_for(engine: Engine, request: TriggerRequest, message_id: str, at: datetime) -> bool:
    """Whether the clearance lets ``message_id``, which carries ``request``, fire it."""
    carried = dataclasses.replace(request, carried_by=message_id)
    return request.execution_id in withdrawal.clear_to_fire(engine, [carried], at)


@pytest.mark.parametrize("overlap", ["allow", "skip"])
def test_a_message_whose_hold_went_with_a_publish_again_is_not_cleared(
    engine: Engine, overlap: str
) -> None:
    """A starved process renewed too late: the lease ran out under a live message, the
    tick found no result and published the send again, and a second message took it.
    Only the second may fire it."""
    request = due_with(engine, overlap)
    start(engine, [request], "first", NOW)
    [again], _ = tick(engine, NOW + timedelta(seconds=LEASE_S))
    late = NOW + timedelta(seconds=LEASE_S + 1)
    assert start(engine, [again], "second", late) == [again]
    assert not cleared_for(engine, request, "first", late)
    assert cleared_for(engine, again, "second", late)
    [row] = execution_rows(engine)
    assert row["message_id"] == "second"


@pytest.mark.parametrize("overlap", ["allow", "skip"])
def test_a_message_cleared_after_losing_its_hold_takes_it_back(
    engine: Engine, overlap: str
) -> None:
    """The same, but the first message asks before the second starts: it takes the send
    back at its clearance and fires; the second message then neither takes nor fires."""
    request = due_with(engine, overlap)
    start(engine, [request], "first", NOW)
    [again], _ = tick(engine, NOW + timedelta(seconds=LEASE_S))
    late = NOW + timedelta(seconds=LEASE_S + 1)
    assert cleared_for(engine, request, "first", late)
    [row] = execution_rows(engine)
    assert (row["held_by"], row["message_id"]) == (heartbeat.this_process(), "first")
    assert start(engine, [again], "second", late) == []
    assert not cleared_for(engine, again, "second", late)


def test_a_request_carried_by_no_message_is_cleared_on_its_attempt(engine: Engine) -> None:
    request = one_due(engine)
    start(engine, [request], "message-1", NOW)
    assert request.carried_by is None
    assert request.execution_id in withdrawal.clear_to_fire(engine, [request], NOW)


def test_a_running_message_renews_its_leases_until_it_ends(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third of a lease into a message still running, its sends' leases count from
    now."""
    monkeypatch.setattr(holders, "_renewer_pid", os.getpid())  # renewed by hand below
    request, other = one_due(engine), one_due(engine)
    start(engine, [request], "message-1", NOW)
    hold_as(engine, other, "another:1", NOW)
    period_s = SETTINGS.dispatch_lease_s / 3

    def lease_of(now: datetime, timeout_s: float) -> datetime:
        return discovery.lease_until(now, timeout_s, SETTINGS)

    later = NOW + timedelta(seconds=period_s)
    with holders.renewing(engine, "message-1", [request], SETTINGS.dispatch_lease_s, lease_of):
        started = holders._held["message-1"].started
        assert holders.renew_once(engine, period_s, lease_of, later, started + 1) == 0
        assert holders.renew_once(engine, period_s, lease_of, later, started + period_s) == 1
        too_long = started + holders.MAX_HELD_S
        assert holders.renew_once(engine, period_s, lease_of, later, too_long) == 0
    assert holders.renew_once(engine, period_s, lease_of, later, started + period_s) == 0
    rows = {r["id"]: r for r in execution_rows(engine)}
    assert rows[request.execution_id]["next_attempt_at"] == later + timedelta(seconds=LEASE_S)
    assert rows[other.execution_id]["next_attempt_at"] == NOW + timedelta(seconds=LEASE_S)
    # Renewed: not sent again when the first lease would have run out (its holder is
    # alive); the other one's lease was not renewed.
    beat_at(engine, heartbeat.this_process(), NOW + timedelta(seconds=LEASE_S))
    sent, _ = tick(engine, NOW + timedelta(seconds=LEASE_S))
    assert [r.execution_id for r in sent] == [other.execution_id]
