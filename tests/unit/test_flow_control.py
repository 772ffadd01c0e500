"""Flow control's pure parts and the per-process limiter, directly."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.host_limits import Bucket, HostLimit, combine, parse_host_limits, take_token
from taskhub.engine.flow_control import LocalLimiter, Slot, acquire


def test_host_limits_parse_both_either_and_several() -> None:
    assert parse_host_limits("API.example.com=5/20, b.example=3,c.example=/0.5") == {
        "api.example.com": HostLimit(5, 20.0),
        "b.example": HostLimit(3, None),
        "c.example": HostLimit(None, 0.5),
    }
    assert parse_host_limits("") == {}


@pytest.mark.parametrize("text", ["nohost", "=5/2", "a=x/2", "a=0/2", "a=5/0", "a=5/-1", "a=/inf"])
def test_bad_host_limits_are_refused_naming_the_item(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_host_limits(text)
    assert repr(text) in str(refused.value)


def test_combine_keeps_the_tighter_of_each_kind() -> None:
    assert combine(HostLimit(5, 20), HostLimit(10, 2)) == HostLimit(5, 2)
    assert combine(None, HostLimit(None, 3)) == HostLimit(None, 3)
    assert combine(HostLimit(4, None), None) == HostLimit(4, None)
    assert combine(None, None).unlimited


@given(
    rate=st.floats(0.1, 1000),
    steps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_a_bucket_never_grants_more_than_its_burst_plus_its_rate(
    rate: float, steps: list[float]
) -> None:
    bucket: Bucket | None = None
    now = 0.0
    granted = 0
    for step in steps:
        now += step
        taken, bucket, wait_s = take_token(bucket, now, rate)
        granted += taken
        assert taken or wait_s > 0
    assert granted <= max(1.0, rate) + rate * now + 1e-6


@given(rate=st.floats(0.1, 1000), tokens=st.floats(0, 0.999))
def test_the_wait_a_bucket_names_is_enough(rate: float, tokens: float) -> None:
    taken, bucket, wait_s = take_token(Bucket(tokens, 0.0), 0.0, rate)
    assert not taken
    again, _, _ = take_token(bucket, wait_s * (1 + 1e-9) + 1e-12, rate)
    assert again


def test_a_new_bucket_allows_one_seconds_burst() -> None:
    bucket = None
    results = []
    for _ in range(6):
        taken, bucket, _ = take_token(bucket, 10.0, 5)
        results.append(taken)
    assert results == [True] * 5 + [False]


def test_local_limiter_counts_in_flight_and_frees_on_release_or_lease_end() -> None:
    async def scenario() -> None:
        limiter = LocalLimiter()
        limit = HostLimit(2, None)
        first = await limiter.try_acquire("a", limit, 30)
        second = await limiter.try_acquire("a", limit, 0.05)
        assert isinstance(first, Slot) and isinstance(second, Slot)
        assert await limiter.try_acquire("a", limit, 30) == 0.0  # full: poll again
        assert isinstance(await limiter.try_acquire("b", limit, 30), Slot)  # other host
        await limiter.release(first)
        third = await limiter.try_acquire("a", limit, 30)
        assert isinstance(third, Slot)
        await asyncio.sleep(0.06)  # ``second``'s holder died: its lease ran out
        assert isinstance(await limiter.try_acquire("a", limit, 30), Slot)

    asyncio.run(scenario())


def test_a_pause_holds_the_host_and_acquire_gives_up_at_its_bound() -> None:
    async def scenario() -> None:
        limiter = LocalLimiter()
        await limiter.pause("a", 5)
        wait = await limiter.try_acquire("a", HostLimit(10, None), 30)
        assert isinstance(wait, float) and 4 < wait <= 5
        slot, waited, retry_in = await acquire(limiter, "a", HostLimit(10, None), 30, 0.2)
        assert slot is None and waited < 0.2 and 4 < retry_in <= 5
        got, _, _ = await acquire(limiter, "b", HostLimit(10, None), 30, 0.2)
        assert isinstance(got, Slot)

    asyncio.run(scenario())


def test_acquire_waits_for_a_slot_freed_meanwhile() -> None:
    async def scenario() -> None:
        limiter = LocalLimiter()
        held = await limiter.try_acquire("a", HostLimit(1, None), 30)
        assert isinstance(held, Slot)

        async def free_later() -> None:
            await asyncio.sleep(0.1)
            await limiter.release(held)

        task = asyncio.create_task(free_later())
        slot, waited, _ = await acquire(limiter, "a", HostLimit(1, None), 30, 2.0)
        await task
        assert isinstance(slot, Slot) and waited >= 0.09

    asyncio.run(scenario())


def test_rate_waits_are_paced() -> None:
    async def scenario() -> float:
        limiter = LocalLimiter()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(7):  # 5 at once (the burst), then one per 1/5 s
            slot, _, _ = await acquire(limiter, "a", HostLimit(None, 5), 30, 5)
            assert slot is not None
        return loop.time() - start

    assert asyncio.run(scenario()) >= 0.35
