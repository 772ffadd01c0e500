"""Celery targets end to end: taskhub's worker roles and beat as real processes on real
PostgreSQL and Redis send each occurrence to a real worker of the user's own Celery app
(``celery -A tests.userapp worker``, started with no taskhub code and no taskhub settings:
``tests/support/celery_user.py``), which records every call it runs.

Each scenario knows which occurrences fell due and checks, once every one of them has a
terminal execution and the user's worker has taken what was sent: none lost, exactly one
execution per occurrence, every occurrence ran in the user's worker at least once, each
call's Celery task id is its execution's idempotency key and its three taskhub headers
name that execution, and no more repeated calls than the scenario's bound (0 unless a
process holding messages was killed). Every call also records that no ``taskhub``
module was imported in the user's worker. The rows join the fault report's table
(tests/e2e/conftest.py prints it).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.definitions import parse_definition
from taskhub.core.settings import load
from taskhub.db.models import attempts
from taskhub.service import task_service
from tests.support import faultreport
from tests.support.celery_user import user_worker
from tests.support.engine import (
    TERMINAL,
    Occurrence,
    all_ended,
    at_second,
    execution_rows,
    interval,
    one_time,
    start_ready,
    statuses,
)
from tests.support.faultreport import ScenarioResult
from tests.support.processes import Stack, wait_until

pytestmark = pytest.mark.slow

Call = dict[str, Any]

#: The user's task (tests/userapp) and the queue its worker consumes here.
TASK = "userapp.tasks.record"
QUEUE = "userq"
#: As the fault tests bound it: a killed trigger worker's work is sent again within this.
KILLED_WORKER_RECOVERY_BOUND_S = 60
RECOVERY_BOUND_S = 300
#: How long two beats tick side by side.
TWO_BEATS_S = 25


# --- helpers ---------------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def add_celery_tasks(
    engine: Engine, count: int, schedule: dict[str, Any], **extra: Any
) -> list[uuid.UUID]:
    """``count`` tasks sending :data:`TASK` to :data:`QUEUE`, through the service layer;
    task ``i`` sends args ``[i]`` and kwargs ``{"name": <its name>}``."""
    now = now_utc()
    ids = []
    with engine.begin() as conn:
        for i in range(count):
            name = f"celery-{uuid.uuid4().hex[:8]}-{i}"
            call = {"task": TASK, "args": [i], "kwargs": {"name": name}, "queue": QUEUE}
            data = {
                "name": name,
                "schedule": dict(schedule),
                "target": {"celery": call, "timeout_seconds": 10},
                **extra,
            }
            ids.append(task_service.create_task(conn, parse_definition(data, now), now, load()))
    return ids


def attempt_numbers(engine: Engine) -> dict[int, list[int]]:
    by_execution: dict[int, list[int]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(sa.select(attempts).order_by(attempts.c.number)).mappings():
            assert row["http_status"] is None and row["error_kind"] is None, dict(row)
            by_execution[row["execution_id"]].append(row["number"])
    return by_execution


def drained(broker: redis.Redis, calls: int, at_least: int) -> bool:
    """Nothing waits in the user's queue or is held unacknowledged by its worker, and
    ``at_least`` calls ran."""
    return broker.llen(QUEUE) == 0 and not unacked(broker) and calls >= at_least


def unacked(broker: redis.Redis) -> dict[Any, str]:
    """Kombu's Redis transport keeps each message a consumer took and has not yet
    acknowledged (``acks_late``) in its ``unacked`` hash: those of the user's queue, by
    delivery tag, with their Celery task ids (taskhub's own workers keep theirs there too)."""
    held = {}
    for tag, raw in broker.hgetall("unacked").items():
        message, _exchange, routing_key = json.loads(raw)
        if routing_key == QUEUE:
            held[tag] = message["headers"]["id"]
    return held


def check(
    scenario: str,
    engine: Engine,
    calls: list[Call],
    due: set[Occurrence],
    healed_at: datetime,
    healed: str,
    repeat_bound: int = 0,
    recovery_bound_s: float = RECOVERY_BOUND_S,
    lost_by_the_consumer: frozenset[str] = frozenset(),
) -> ScenarioResult:
    """Count, record in the table, then assert: nothing lost or doubled, every occurrence
    ran in the user's worker at least once (but those whose message the user's own
    killed consumer lost, ``lost_by_the_consumer``: their keys), every call (repeats
    included) carries its execution's key as its Celery task id and that execution's
    headers, and at most ``repeat_bound`` calls beyond one per recorded attempt."""
    rows = execution_rows(engine)
    tried = attempt_numbers(engine)
    terminal = [r for r in rows if r["status"] in TERMINAL]
    result = faultreport.tally(
        scenario, rows, due, len(calls), healed_at, healed, repeat_bound, recovery_bound_s
    )
    assert result.repeated <= repeat_bound, result
    assert not [c for c in calls if c["taskhub_imported"]], "taskhub imported in the user's worker"

    by_key = {r["idempotency_key"]: r for r in rows}
    calls_by_key: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        row = by_key.get(call["id"])
        assert row is not None, f"Celery task id {call['id']} is no execution's key"
        calls_by_key[call["id"]].append(call)
        # The headers name the execution whose key the id is: a repeat carries the id
        # of the occurrence's first message, never a new one.
        assert call["taskhub_task_id"] == str(row["task_id"]), call
        assert datetime.fromisoformat(call["taskhub_scheduled_for"]) == row["scheduled_for"]
        assert call["taskhub_scheduled_for"].endswith("Z"), call
        assert call["queue"] == QUEUE and call["kwargs"]["name"], call
        assert isinstance(call["taskhub_attempt"], int), call
    for row in terminal:
        if row["idempotency_key"] in lost_by_the_consumer:
            continue
        sent = {c["taskhub_attempt"] for c in calls_by_key[row["idempotency_key"]]}
        # Ran at least once, and only as attempts that were recorded.
        assert sent == set(tried[row["id"]]) == set(range(1, row["attempts"] + 1)), (
            row["id"],
            sent,
        )
    return result


# --- scenarios -------------------------------------------------------------------------


def test_cron_and_interval_targets_run_once_per_occurrence(
    stack: Stack, pg_engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    """Every minute (``* * * * *``) and every 5 s, over a minute boundary: each
    occurrence is one execution and exactly one call of the user's task, whose Celery
    task id is the execution's key, in a plain ``celery -A tests.userapp worker``."""
    start_ready(stack, "state", "state")
    start_ready(stack, "trigger", "trigger")
    start_ready(stack, "beat", "beat")
    start = at_second(3)
    if start.second == 0:  # a boundary exactly at start_at: keep the count unambiguous
        start += timedelta(seconds=1)
    boundary = start.replace(second=0) + timedelta(minutes=1)
    end = boundary + timedelta(seconds=1)
    window = {"start_at": start.isoformat(), "end_at": end.isoformat()}
    cron = add_celery_tasks(pg_engine, 3, {"cron": "* * * * *"}, **window)
    every_5s = add_celery_tasks(pg_engine, 3, {"interval_seconds": 5}, **window)
    due = interval(cron, boundary, 60, end)
    due |= interval(every_5s, start, 5, end)
    broker = redis.Redis.from_url(redis_url)
    with user_worker(redis_url, redis_url, tmp_path, queues=QUEUE) as worker:
        time.sleep(max(0.0, (end - now_utc()).total_seconds()) + 1)
        assert wait_until(lambda: all_ended(pg_engine, len(due)), 60), stack.logs()
        assert wait_until(lambda: drained(broker, len(worker.calls()), len(due)), 30)
        time.sleep(1)  # nothing more comes
        calls = worker.calls()
    assert statuses(pg_engine) == {"succeeded": len(due)}
    check(
        "Celery targets: cron every minute and interval every 5 s",
        pg_engine,
        calls,
        due,
        end,
        "(no fault: the window's end)",
    )
    assert len(calls) == len({c["id"] for c in calls}) == len(due), "not exactly once"
    names = {c["kwargs"]["name"]: c["args"] for c in calls}
    assert len(names) == 6 and all(len(args) == 1 for args in names.values())


def test_kill_9_of_the_trigger_worker_mid_burst(
    stack: Stack, pg_engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    """200 one-time Celery targets due at one second, sent at 50 a second (flow control on
    ``celery:default``) so that the trigger worker is killed -9 mid-burst. The user's
    worker starts afterwards: what waits in its queue then is exactly what was sent.
    Only the messages the dead worker had sent may be sent again, with the same task id."""
    stack.env["TASKHUB_TRIGGER_CONCURRENCY"] = "2"
    stack.env["TASKHUB_HOST_LIMITS"] = "celery:default=/50"
    start_ready(stack, "state", "state")
    start_ready(stack, "trigger-1", "trigger")
    start_ready(stack, "beat", "beat")
    at = at_second(2)
    due = one_time(add_celery_tasks(pg_engine, 200, {"at": at.isoformat()}), at)
    broker = redis.Redis.from_url(redis_url)
    assert wait_until(lambda: broker.llen(QUEUE) >= 30, 60, every_s=0.01), stack.logs()
    stack.kill("trigger-1")
    healed_at = now_utc()
    sent_by_the_dead = broker.llen(QUEUE)
    assert sent_by_the_dead < len(due), "the burst was over before the kill"
    stack.start("trigger-2", "trigger")
    assert wait_until(lambda: all_ended(pg_engine, len(due)), 120), stack.logs()
    assert statuses(pg_engine) == {"succeeded": len(due)}
    sent = broker.llen(QUEUE)
    with user_worker(redis_url, redis_url, tmp_path, queues=QUEUE) as worker:
        assert wait_until(lambda: drained(broker, len(worker.calls()), sent), 60), worker.logs()
        time.sleep(1)
        calls = worker.calls()
    assert len(calls) == sent
    check(
        "Celery targets: kill -9 of the trigger worker mid-burst",
        pg_engine,
        calls,
        due,
        healed_at,
        "a new trigger worker started",
        repeat_bound=sent_by_the_dead,
        recovery_bound_s=KILLED_WORKER_RECOVERY_BOUND_S,
    )


def queued_ids(broker: redis.Redis) -> list[str]:
    """The Celery task ids of the messages waiting in :data:`QUEUE`."""
    return [json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)]


def restore_unacked(redis_url: str, tags: Iterable[Any]) -> None:
    """What the user's next worker does once kombu's visibility timeout (an hour by
    default) has passed for a dead consumer's messages: put them back in their queue.
    Done here at once, while no consumer of the queue runs, instead of an hour later."""
    with kombu.Connection(redis_url) as conn:
        qos = conn.default_channel.qos  # type: ignore[attr-defined]  # the Redis channel's
        for tag in tags:
            qos.restore_by_tag(tag)


def test_kill_9_of_the_users_worker_while_messages_wait(
    stack: Stack, pg_engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    """The user's worker is killed -9 while taskhub still sends (50 a second). The user
    app runs ``task_acks_late=True`` (tests/userapp): the messages the dead worker had
    taken stay in kombu's ``unacked`` hash (the broker keeps them) and go back to the
    queue after the visibility timeout; the rest waits in the queue. taskhub's promise is
    the broker's acceptance: every occurrence is then in the queue, held unacknowledged,
    or already ran; the next worker runs every one, and only the held ones (which the
    dead worker may have run before it died) may run twice, with the same task id."""
    stack.env["TASKHUB_HOST_LIMITS"] = "celery:default=/50"
    start_ready(stack, "worker", "all")
    start_ready(stack, "beat", "beat")
    broker = redis.Redis.from_url(redis_url)
    at = at_second(2)
    due = one_time(add_celery_tasks(pg_engine, 150, {"at": at.isoformat()}), at)
    with user_worker(redis_url, redis_url, tmp_path, queues=QUEUE) as first:
        assert wait_until(lambda: len(first.calls()) >= 10, 60, every_s=0.01), first.logs()
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        healed_at = now_utc()
        assert wait_until(lambda: all_ended(pg_engine, len(due)), 60), stack.logs()
        before = first.calls()
    assert statuses(pg_engine) == {"succeeded": len(due)}
    keys = {r["idempotency_key"] for r in execution_rows(pg_engine)}
    held_by_tag = unacked(broker)
    held = list(held_by_tag.values())
    waiting = queued_ids(broker)
    assert waiting, "nothing waited for the next worker"
    print(f"\nkilled user worker: ran {len(before)}, held {len(held)}, waiting {len(waiting)}")
    # Nothing taskhub sent is gone: it ran, is held for the dead consumer, or waits; but
    # for kombu's own window: its Redis consumer pops a message (BRPOP) before it writes
    # it to its unacked hash, so a consumer killed between the two loses that message on
    # the user's side, after the broker had accepted it. One pop is in flight at most.
    seen = {c["id"] for c in before} | set(held) | set(waiting)
    assert seen <= keys
    lost_by_the_consumer = frozenset(keys - seen)
    assert len(lost_by_the_consumer) <= 1, sorted(lost_by_the_consumer)
    print(f"lost by the killed consumer in its pop window: {len(lost_by_the_consumer)}")
    restore_unacked(redis_url, held_by_tag)
    with user_worker(redis_url, redis_url, tmp_path, queues=QUEUE) as second:
        expected = len(waiting) + len(held)
        ok = wait_until(lambda: drained(broker, len(second.calls()), expected), 60)
        assert ok, second.logs()
        time.sleep(1)
        after = second.calls()
    calls = before + after
    check(
        "Celery targets: kill -9 of the user's worker while messages wait",
        pg_engine,
        calls,
        due,
        healed_at,
        "none needed on taskhub's side (from the user worker's kill)",
        repeat_bound=len(held),
        lost_by_the_consumer=lost_by_the_consumer,
    )
    twice = [key for key, n in Counter(c["id"] for c in calls).items() if n > 1]
    assert set(twice) <= set(held), "a call ran twice that the dead worker did not hold"


def test_two_beats_double_nothing(
    stack: Stack, pg_engine: Engine, redis_url: str, tmp_path: Path
) -> None:
    """Two beats tick every second each: every occurrence is one execution and one call
    of the user's task."""
    stack.env["TASKHUB_TRIGGER_CONCURRENCY"] = "4"
    start_ready(stack, "worker", "all")
    start = at_second(4)
    end = start + timedelta(seconds=TWO_BEATS_S - 0.5)
    window = {"start_at": start.isoformat(), "end_at": end.isoformat()}
    due: set[Occurrence] = set()
    for seconds in (1, 2, 3):
        ids = add_celery_tasks(pg_engine, 5, {"interval_seconds": seconds}, **window)
        due |= interval(ids, start, seconds, end)
    broker = redis.Redis.from_url(redis_url)
    with user_worker(redis_url, redis_url, tmp_path, queues=QUEUE) as worker:
        stack.start("beat-a", "beat")
        stack.start("beat-b", "beat")
        time.sleep(max(0.0, (end - now_utc()).total_seconds()) + 2)
        stack.stop("beat-b")
        healed_at = now_utc()
        assert wait_until(lambda: all_ended(pg_engine, len(due)), 60), stack.logs()
        assert wait_until(lambda: drained(broker, len(worker.calls()), len(due)), 30)
        time.sleep(1)
        calls = worker.calls()
    for beat in ("beat-a", "beat-b"):
        ticks = (stack.log_dir / f"{beat}.log").read_text().count("Sending due task taskhub-tick")
        assert ticks >= TWO_BEATS_S / 2, f"{beat} sent only {ticks} ticks"
    assert statuses(pg_engine) == {"succeeded": len(due)}
    check(
        f"Celery targets: two beats for {TWO_BEATS_S} s",
        pg_engine,
        calls,
        due,
        healed_at,
        "the second beat stopped",
    )
    assert len(calls) == len({c["id"] for c in calls}) == len(due), "a call doubled"
