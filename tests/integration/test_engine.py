"""The whole engine with real processes: Redis, PostgreSQL, worker and beat, firing at a
real HTTP target on loopback."""

from __future__ import annotations

import time

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.db.models import executions, scheduled_tasks
from tests.support.engine import add_tasks, all_ended, soon, statuses
from tests.support.processes import Stack, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow


def test_burst_of_500_fires_each_occurrence_once(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    # A timeout no loaded machine reaches: a late answer must not become a retry (attempt
    # 2, the same key) where this counts deliveries of each key.
    ids = add_tasks(pg_engine, 500, target.url("/ok"), {"at": soon(3)}, timeout_s=30)
    stack.start("worker", "all")
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 500), 120), stack.logs()
    assert statuses(pg_engine) == {"succeeded": 500}
    keys = target.keys()
    assert len(keys) == 500 and set(keys.values()) == {1}
    task_ids = {r.headers["X-Taskhub-Task-Id"] for r in target.snapshot()}
    assert task_ids == {str(i) for i in ids}
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.select(scheduled_tasks)).mappings().all()
    assert all(r["is_finished"] and r["last_status"] == "succeeded" for r in rows)
    assert all(r["execution_count"] == 1 and r["consecutive_failures"] == 0 for r in rows)


def test_flaky_target_is_retried_with_one_key_and_404_is_not(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    retry = {"max_attempts": 3, "backoff_seconds": 1, "max_backoff_seconds": 2}
    add_tasks(pg_engine, 3, target.url("/flaky/2"), {"at": soon()}, retry=retry)
    add_tasks(pg_engine, 2, target.url("/missing"), {"at": soon()}, retry=retry)
    stack.start("worker", "all")
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 5), 90), stack.logs()
    assert statuses(pg_engine) == {"succeeded": 3, "failed": 2}
    flaky = [r for r in target.snapshot() if r.path.startswith("/flaky")]
    by_key: dict[str, list[str]] = {}
    for r in flaky:
        by_key.setdefault(r.headers["Idempotency-Key"], []).append(r.headers["X-Taskhub-Attempt"])
    assert sorted(by_key.values()) == [["1", "2", "3"]] * 3
    missing = [r for r in target.snapshot() if r.path == "/missing"]
    assert len(missing) == 2 and {r.headers["X-Taskhub-Attempt"] for r in missing} == {"1"}


def test_two_beats_double_nothing(stack: Stack, pg_engine: Engine, target: Target) -> None:
    add_tasks(pg_engine, 20, target.url("/ok"), {"interval_seconds": 2}, timeout_s=30)
    stack.start("worker", "all")  # with its staging loop, which claims every second
    stack.start("beat-a", "beat")
    stack.start("beat-b", "beat")
    time.sleep(12)
    stack.stop("beat-a")
    stack.stop("beat-b")
    # Beat is the clock: without ticks the staging loop stops claiming within two tick
    # periods (1 s each here), so the executions stop growing.
    time.sleep(4)

    def count() -> int:
        with pg_engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(executions)).scalar_one()
            )

    total = count()
    assert total >= 20 * 3
    time.sleep(4)
    assert count() == total, "claims went on without beat"
    assert wait_until(lambda: all_ended(pg_engine, total), 60), stack.logs()
    keys = target.keys()
    assert len(keys) == total
    assert set(keys.values()) == {1}, "an occurrence was fired twice"


def test_kill_9_of_the_trigger_worker_mid_burst_loses_nothing(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    add_tasks(pg_engine, 200, target.url("/slow/1"), {"at": soon()})
    stack.start("state", "state")
    stack.start("beat", "beat")
    stack.start("trigger-1", "trigger")
    assert wait_until(lambda: len(target.snapshot()) >= 10, 60), stack.logs()
    stack.kill("trigger-1")
    killed_at = time.monotonic()
    stack.start("trigger-2", "trigger")
    assert wait_until(lambda: all_ended(pg_engine, 200), 120), stack.logs()
    recovery_s = time.monotonic() - killed_at
    print(f"kill -9 mid-burst: all 200 occurrences ended {recovery_s:.1f} s after the kill")
    assert statuses(pg_engine) == {"succeeded": 200}
    keys = target.keys()
    assert len(keys) == 200  # every occurrence reached the target; repeats share its key


def test_redis_flush_after_a_tick_loses_nothing(
    stack: Stack, pg_engine: Engine, target: Target, redis_url: str
) -> None:
    add_tasks(pg_engine, 50, target.url("/ok"), {"at": soon(1)})
    stack.start("state", "state")
    stack.start("beat", "beat")
    assert wait_until(lambda: statuses(pg_engine)["running"] == 50, 30), stack.logs()
    redis.Redis.from_url(redis_url).flushdb()
    flushed_at = time.monotonic()
    stack.start("trigger", "trigger")
    assert wait_until(lambda: all_ended(pg_engine, 50), 90), stack.logs()
    print(f"FLUSHDB after a tick: recovered in {time.monotonic() - flushed_at:.1f} s")
    assert statuses(pg_engine) == {"succeeded": 50}
    assert len(target.keys()) == 50


def test_requests_waiting_in_a_live_worker_past_their_lease_are_sent_once(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    """One slot per worker: the burst's requests go one after the other, the last ones
    starting long after their 10 s lease (5 s + the 5 s timeout) would have run out. The
    worker renews the leases of the message it is firing, so none is sent again."""
    stack.env.update(
        TASKHUB_TRIGGER_CONCURRENCY="1",
        TASKHUB_MAX_IN_FLIGHT="1",
        TASKHUB_MAX_SLOW_IN_FLIGHT="0",
        # The lanes alone: with one slot, a host's share would hand the rest back throttled.
        TASKHUB_FAST_LANE_SHARE_PERCENT="100",
        TASKHUB_SLOW_LANE_SHARE_PERCENT="100",
    )
    add_tasks(pg_engine, 10, target.url("/slow/2"), {"at": soon(3)}, timeout_s=5)
    stack.start("state", "state")
    stack.start("trigger", "trigger")
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 10), 90), stack.logs()
    assert statuses(pg_engine) == {"succeeded": 10}
    arrivals = sorted(r.at for r in target.snapshot())
    assert arrivals[-1] - arrivals[0] > 12, "the requests did not wait for the one slot"
    assert len(arrivals) == 10 and set(target.keys().values()) == {1}
    with pg_engine.connect() as conn:
        counts = conn.execute(sa.select(executions.c.publish_count)).scalars().all()
    assert counts == [1] * 10
