"""Second precision's pure parts: the staging grid, spread offsets, claiming ahead."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.occurrences import ClaimRules, idempotency_key, plan_claim, spread_offset_s
from taskhub.core.schedules import Cron, Interval, Window
from taskhub.core.statuses import MisfirePolicy
from taskhub.engine.staging import beat_is_ticking, next_pass_at

NOW = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


@given(now=st.floats(0, 4e9), interval=st.sampled_from([0.2, 0.5, 1.0, 2.0]))
def test_the_next_pass_is_the_next_grid_instant(now: float, interval: float) -> None:
    at = next_pass_at(now, interval)
    assert now < at <= now + interval + 1e-6
    assert abs(at / interval - round(at / interval)) < 1e-4


@pytest.mark.parametrize(
    ("last_tick_s", "now_s", "tick_s", "ticking"),
    [
        (None, 1000.0, 60.0, False),  # no tick ever: beat has not run yet
        (1000.0, 1000.0, 60.0, True),
        (1000.0, 1059.0, 60.0, True),  # between two ticks
        (1000.0, 1120.0, 60.0, True),  # one tick late
        (1000.0, 1120.5, 60.0, False),  # two missed: beat is down
        (1000.0, 1002.0, 1.0, True),
        (1000.0, 1002.1, 1.0, False),
        (1000.0, 990.0, 60.0, True),  # another worker's clock a little ahead
    ],
)
def test_the_loop_claims_only_while_beat_ticks(
    last_tick_s: float | None, now_s: float, tick_s: float, ticking: bool
) -> None:
    assert beat_is_ticking(last_tick_s, now_s, tick_s) is ticking


def test_whole_seconds() -> None:
    assert next_pass_at(36.9999, 1.0) == 37.0
    assert next_pass_at(37.0, 1.0) == 38.0


@given(key=st.uuids(), spread=st.integers(0, 3600))
def test_spread_offsets_stay_in_the_window_and_are_stable(key: uuid.UUID, spread: int) -> None:
    offset = spread_offset_s(str(key), spread)
    assert offset == spread_offset_s(str(key), spread)
    if spread == 0:
        assert offset == 0.0
    else:
        assert 0.0 <= offset < spread


def test_spread_offsets_spread() -> None:
    keys = [idempotency_key(uuid.uuid4(), NOW) for _ in range(1000)]
    offsets = [spread_offset_s(k, 60) for k in keys]
    buckets = {int(o // 10) for o in offsets}
    assert buckets == {0, 1, 2, 3, 4, 5}  # all six 10-second slices are used


def test_planning_ahead_adds_what_falls_due_before_the_horizon() -> None:
    plan = plan_claim(
        Cron("* * * * *", "UTC"),
        Window(),
        # Even with no grace, what lies ahead is never "missed".
        ClaimRules(misfire_grace_s=0, max_per_claim=100),
        first_due=NOW.replace(second=0),
        now=NOW,
        occurrences_so_far=0,
        horizon=NOW + timedelta(seconds=60),
    )
    assert plan.fire == [
        datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 12, 1, tzinfo=UTC),
    ]
    assert plan.next_time == datetime(2026, 11, 22, 12, 2, tzinfo=UTC)


def test_planning_ahead_keeps_the_misfire_rules_measured_from_now() -> None:
    plan = plan_claim(
        Interval(10, NOW - timedelta(hours=1)),
        Window(),
        ClaimRules(misfire_grace_s=30, max_per_claim=100, misfire_policy=MisfirePolicy.SKIP),
        first_due=NOW - timedelta(hours=1),
        now=NOW,
        occurrences_so_far=0,
        horizon=NOW + timedelta(seconds=25),
    )
    # Missed beyond the 30 s grace: skipped; within it: 12:00:00, :10, :20, :30; ahead
    # up to 12:00:55: :40, :50.
    assert [t.second for t in plan.fire] == [0, 10, 20, 30, 40, 50]
    assert all(t.minute == 0 for t in plan.fire)


def test_planning_ahead_respects_the_batch_bound() -> None:
    plan = plan_claim(
        Interval(1, NOW),
        Window(),
        ClaimRules(misfire_grace_s=3600, max_per_claim=10),
        first_due=NOW,
        now=NOW,
        occurrences_so_far=0,
        horizon=NOW + timedelta(seconds=60),
    )
    assert len(plan.fire) == 10 and plan.next_time == NOW + timedelta(seconds=10)


@given(
    minutes_late=st.integers(min_value=0, max_value=3000),
    grace_s=st.integers(min_value=0, max_value=7200),
    ahead_s=st.integers(min_value=0, max_value=120),
    policy=st.sampled_from(list(MisfirePolicy)),
    max_per_claim=st.integers(min_value=1, max_value=200),
    interval_s=st.sampled_from([None, 1, 7, 60]),
)
def test_planning_ahead_extends_the_plan_at_now(
    minutes_late: int,
    grace_s: int,
    ahead_s: int,
    policy: MisfirePolicy,
    max_per_claim: int,
    interval_s: int | None,
) -> None:
    first = NOW - timedelta(minutes=minutes_late, seconds=15)
    schedule = Cron("* * * * *", "UTC") if interval_s is None else Interval(interval_s, first)
    rules = ClaimRules(grace_s, max_per_claim, policy, fire_each_max=20)
    horizon = NOW + timedelta(seconds=ahead_s)
    at_now = plan_claim(schedule, Window(), rules, first_due=first, now=NOW, occurrences_so_far=0)
    ahead = plan_claim(
        schedule, Window(), rules, first_due=first, now=NOW, occurrences_so_far=0, horizon=horizon
    )
    # The misfire rules are measured from now: what is due by then is planned alike.
    assert ahead.fire[: len(at_now.fire)] == at_now.fire
    assert all(NOW < t <= horizon for t in ahead.fire[len(at_now.fire) :])
    assert len(ahead.fire) <= max_per_claim
    if len(ahead.fire) < max_per_claim:  # not cut short: everything up to the horizon
        assert ahead.next_time is not None and ahead.next_time > horizon
