"""Flow control across processes through a real Redis, and second precision, with real
worker processes, PostgreSQL and a loopback target."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.host_limits import HostLimit
from taskhub.db.models import executions
from taskhub.engine.flow_control import RedisLimiter, Slot
from tests.support.engine import add_tasks, all_ended, running_stack, statuses
from tests.support.processes import wait_until
from tests.support.target import Target


def test_two_processes_share_one_budget_and_a_dead_holders_slot_comes_back(
    redis_url: str,
) -> None:
    redis.Redis.from_url(redis_url).flushdb()

    async def scenario() -> None:
        # Two limiters are what two worker processes hold: one Redis, separate clients.
        a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
        limit = HostLimit(3, None)
        try:
            held = [await a.try_acquire("api.test", limit, 30) for _ in range(2)]
            dying = await b.try_acquire("api.test", limit, 0.3)  # its holder "dies"
            assert all(isinstance(s, Slot) for s in [*held, dying])
            assert await a.try_acquire("api.test", limit, 30) == 0.0
            assert await b.try_acquire("api.test", limit, 30) == 0.0
            assert isinstance(await b.try_acquire("other.test", limit, 30), Slot)
            first = held[0]
            assert isinstance(first, Slot)
            await a.release(first)  # released by one process, usable by the other
            assert isinstance(await b.try_acquire("api.test", limit, 30), Slot)
            await asyncio.sleep(0.4)  # the dead holder's lease ran out: its slot is back
            assert isinstance(await a.try_acquire("api.test", limit, 30), Slot)
            # A 429 seen by one process pauses the host for every process.
            await a.pause("paused.test", 2)
            wait = await b.try_acquire("paused.test", limit, 30)
            assert isinstance(wait, float) and 1 < wait <= 2
            # Requests per second: one bucket for both.
            rate = HostLimit(None, 4)
            grants = [await x.try_acquire("rate.test", rate, 30) for x in (a, b) * 4]
            assert sum(isinstance(g, Slot) for g in grants) in (4, 5)
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_burst_of_one_message_keeps_the_shared_budget(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A message fires up to 250 requests at once, each asking the limiter: more than a
    Redis client's pool would hold. They wait for a connection; none falls back to a
    per-process budget, so the shared limit holds."""
    redis.Redis.from_url(redis_url).flushdb()

    async def scenario() -> list[Slot | float]:
        limiter = RedisLimiter(redis_url)
        try:
            return await asyncio.gather(
                *(limiter.try_acquire("burst.test", HostLimit(10, None), 30) for _ in range(400))
            )
        finally:
            await limiter.aclose()

    with caplog.at_level("WARNING", logger="taskhub.engine.flow_control"):
        answers = asyncio.run(scenario())
    assert sum(isinstance(answer, Slot) for answer in answers) == 10
    assert "Redis unavailable" not in caplog.text


def test_a_host_limited_to_5_in_flight_never_sees_more_while_another_fires_normally(
    postgres_url: str, redis_url: str, pg_engine: Engine, tmp_path: Path, target: Target
) -> None:
    limits = {
        "TASKHUB_HOST_LIMITS": "127.0.0.1=5",
        "TASKHUB_TRIGGERS_PER_MESSAGE": "5",
        # No send is repeated for a lost lease here: every delivery is a first one.
        "TASKHUB_DISPATCH_LEASE_SECONDS": "120",
    }
    with running_stack(postgres_url, redis_url, tmp_path, **limits) as stack:
        due = {"at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat()}
        add_tasks(pg_engine, 20, target.url("/slow/1", "127.0.0.1"), due, timeout_s=30)
        add_tasks(pg_engine, 20, target.url("/slow/1", "localhost"), due, timeout_s=30)
        stack.start("state", "state")
        stack.start("beat", "beat")
        # Two trigger processes: the limit holds across the fleet, not per process.
        stack.start("trigger-1", "trigger")
        stack.start("trigger-2", "trigger")
        assert wait_until(lambda: all_ended(pg_engine, 40), 120), stack.logs()
    assert statuses(pg_engine) == {"succeeded": 40}
    assert target.peak["127.0.0.1"] <= 5
    assert target.peak["127.0.0.1"] >= 2  # it was used, concurrently
    # The other host was not held to the limit, nor behind the limited one.
    assert target.peak["localhost"] > 5
    received = target.snapshot()
    keys = target.keys()
    assert len(keys) == 40 and set(keys.values()) == {1}  # throttled ones were not sent
    limited = [r.at for r in received if r.headers.get("Host", "").startswith("127.0.0.1")]
    free = [r.at for r in received if r.headers.get("Host", "").startswith("localhost")]
    assert max(free) < max(limited)


@pytest.mark.slow
def test_an_occurrence_due_mid_minute_fires_at_its_second_with_the_minute_tick(
    postgres_url: str, redis_url: str, pg_engine: Engine, tmp_path: Path, target: Target
) -> None:
    minute = {"TASKHUB_TICK_SECONDS": "60", "TASKHUB_DISPATCH_LEASE_SECONDS": "120"}
    with running_stack(postgres_url, redis_url, tmp_path, **minute) as stack:  # 60 s tick
        stack.start("state", "state")
        stack.start("trigger", "trigger")
        stack.start("beat", "beat")
        # Workers up, and beat's tick at start: the staging loop claims only while ticks
        # are recent, and the next scheduled tick may be a minute away.
        time.sleep(5)
        now = datetime.now(UTC)
        if now.second >= 40:  # keep the due time well away from the next minute's tick
            time.sleep(62 - now.second)
        due = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
        add_tasks(
            pg_engine,
            3,
            target.url("/ok"),
            {"interval_seconds": 3600},
            start_at=due.isoformat(),
        )
        next_tick = (due + timedelta(minutes=1)).replace(second=0)
        assert wait_until(lambda: len(target.keys()) == 3, 60), stack.logs()
    arrivals = [r.at for r in target.snapshot()]
    for at in arrivals:
        assert at >= due.timestamp()  # not early
    assert max(arrivals) < next_tick.timestamp() - 5  # at its second, not the next tick
    with pg_engine.connect() as conn:
        scheduled = {
            row.scheduled_for for row in conn.execute(sa.select(executions.c.scheduled_for))
        }
    assert scheduled == {due}
