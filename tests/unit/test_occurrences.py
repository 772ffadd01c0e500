from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.occurrences import idempotency_key, plan_claim
from taskhub.schedules import Cron, Interval, OneTime, Window

NOW = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)
MINUTELY = Cron("* * * * *")


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("schedule", "first_due", "grace_s", "fired", "next_time"),
    [
        # On time: one occurrence, the next one ahead.
        (MINUTELY, at(-0.5), 3600, [at(-0.5)], at(0.5)),
        # Three ticks missed, all within the grace: each fires.
        (MINUTELY, at(-3.5), 3600, [at(-3.5), at(-2.5), at(-1.5), at(-0.5)], at(0.5)),
        # Missed beyond the grace: the oldest fires once, the rest within the grace each.
        (MINUTELY, at(-600.5), 120, [at(-600.5), at(-1.5), at(-0.5)], at(0.5)),
        # No grace at all: one execution for a long outage.
        (MINUTELY, at(-600.5), 0, [at(-600.5)], at(0.5)),
        (OneTime(at(-1)), at(-1), 3600, [at(-1)], None),
        (
            Interval(20, at(-1)),
            at(-1),
            3600,
            [
                at(-1),
                at(-1) + timedelta(seconds=20),
                at(-1) + timedelta(seconds=40),
                at(-1) + timedelta(seconds=60),
            ],
            at(-1) + timedelta(seconds=80),
        ),
    ],
)
def test_plan_table(
    schedule: Cron | Interval | OneTime,
    first_due: datetime,
    grace_s: float,
    fired: list[datetime],
    next_time: datetime | None,
) -> None:
    plan = plan_claim(
        schedule,
        Window(),
        first_due=first_due,
        now=NOW,
        occurrences_so_far=0,
        misfire_grace_s=grace_s,
        max_per_claim=1000,
    )
    assert plan.fire == fired
    assert plan.next_time == next_time


def test_plan_honours_max_executions_and_end_at() -> None:
    plan = plan_claim(
        MINUTELY,
        Window(max_executions=5),
        first_due=at(-10.5),
        now=NOW,
        occurrences_so_far=3,
        misfire_grace_s=3600,
        max_per_claim=1000,
    )
    assert plan.fire == [at(-10.5), at(-9.5)] and plan.next_time is None
    plan = plan_claim(
        MINUTELY,
        Window(end_at=at(-2)),
        first_due=at(-3.5),
        now=NOW,
        occurrences_so_far=0,
        misfire_grace_s=3600,
        max_per_claim=1000,
    )
    assert plan.fire == [at(-3.5), at(-2.5)] and plan.next_time is None


def test_plan_stops_at_max_per_claim_and_leaves_the_rest_due() -> None:
    plan = plan_claim(
        MINUTELY,
        Window(),
        first_due=at(-10.5),
        now=NOW,
        occurrences_so_far=0,
        misfire_grace_s=3600,
        max_per_claim=4,
    )
    assert len(plan.fire) == 4 and plan.next_time == at(-6.5)


@given(
    minutes_late=st.integers(min_value=0, max_value=5000),
    grace_s=st.integers(min_value=0, max_value=7200),
)
def test_plan_fires_everything_within_the_grace_in_order(minutes_late: int, grace_s: int) -> None:
    first = at(-minutes_late - 0.5)
    plan = plan_claim(
        MINUTELY,
        Window(),
        first_due=first,
        now=NOW,
        occurrences_so_far=0,
        misfire_grace_s=grace_s,
        max_per_claim=100_000,
    )
    assert plan.fire[0] == first
    assert plan.fire == sorted(set(plan.fire))
    assert all(t <= NOW for t in plan.fire)
    assert plan.next_time == at(0.5)
    recent = [t for t in plan.fire if t >= NOW - timedelta(seconds=grace_s)]
    expected_recent = [
        t
        for t in (at(-m - 0.5) for m in range(minutes_late, -1, -1))
        if t >= NOW - timedelta(seconds=grace_s)
    ]
    assert recent == expected_recent


def test_idempotency_key_is_stable_and_distinct() -> None:
    task = uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert idempotency_key(task, at(0)) == idempotency_key(str(task), at(0))
    assert idempotency_key(task, at(0)) != idempotency_key(task, at(1))
    with pytest.raises(ValueError):
        idempotency_key(task, datetime(2026, 1, 1))
