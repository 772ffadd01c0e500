from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.occurrences import (
    IDEMPOTENCY_NAMESPACE,
    ClaimRules,
    Plan,
    idempotency_key,
    plan_claim,
)
from taskhub.core.schedules import Cron, Interval, OneTime, Window
from taskhub.core.statuses import MisfirePolicy

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
        ClaimRules(misfire_grace_s=grace_s, max_per_claim=1000),
        first_due=first_due,
        now=NOW,
        occurrences_so_far=0,
    )
    assert plan.fire == fired
    assert plan.next_time == next_time


def test_plan_honours_max_executions_and_end_at() -> None:
    plan = plan_claim(
        MINUTELY,
        Window(max_executions=5),
        ClaimRules(misfire_grace_s=3600, max_per_claim=1000),
        first_due=at(-10.5),
        now=NOW,
        occurrences_so_far=3,
    )
    assert plan.fire == [at(-10.5), at(-9.5)] and plan.next_time is None
    plan = plan_claim(
        MINUTELY,
        Window(end_at=at(-2)),
        ClaimRules(misfire_grace_s=3600, max_per_claim=1000),
        first_due=at(-3.5),
        now=NOW,
        occurrences_so_far=0,
    )
    assert plan.fire == [at(-3.5), at(-2.5)] and plan.next_time is None


def test_plan_stops_at_max_per_claim_and_leaves_the_rest_due() -> None:
    plan = plan_claim(
        MINUTELY,
        Window(),
        ClaimRules(misfire_grace_s=3600, max_per_claim=4),
        first_due=at(-10.5),
        now=NOW,
        occurrences_so_far=0,
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
        ClaimRules(misfire_grace_s=grace_s, max_per_claim=100_000),
        first_due=first,
        now=NOW,
        occurrences_so_far=0,
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


def test_idempotency_key_is_the_one_already_stored() -> None:
    # A key existing executions and receivers hold: it must never change.
    task = uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert idempotency_key(task, NOW) == "142acdd6-71c6-533e-abaa-5643d36b730f"


@given(
    task=st.uuids(),
    scheduled_for=st.datetimes(timezones=st.just(UTC)),
)
def test_idempotency_key_is_uuid5_of_task_and_time(
    task: uuid.UUID, scheduled_for: datetime
) -> None:
    name = f"{task}|{scheduled_for.isoformat()}"
    assert idempotency_key(task, scheduled_for) == str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))


# --- misfire policies -----------------------------------------------------------------

SKIP, FIRE_ONCE, FIRE_EACH = MisfirePolicy.SKIP, MisfirePolicy.FIRE_ONCE, MisfirePolicy.FIRE_EACH


def plan(
    first_due: datetime,
    policy: MisfirePolicy,
    *,
    grace_s: float = 120,
    fire_each_max: int = 100,
    window: Window | None = None,
    occurrences_so_far: int = 0,
    max_per_claim: int = 1000,
    schedule: Cron | Interval | OneTime = MINUTELY,
    now: datetime = NOW,
) -> Plan:
    return plan_claim(
        schedule,
        window or Window(),
        ClaimRules(
            misfire_grace_s=grace_s,
            max_per_claim=max_per_claim,
            misfire_policy=policy,
            fire_each_max=fire_each_max,
        ),
        first_due=first_due,
        now=now,
        occurrences_so_far=occurrences_so_far,
    )


@pytest.mark.parametrize(
    ("policy", "first_due", "fire_each_max", "fired", "next_time"),
    [
        # Ten hours down, a two-minute grace: the grace's occurrences always fire.
        (FIRE_ONCE, at(-600.5), 100, [at(-600.5), at(-1.5), at(-0.5)], at(0.5)),
        (SKIP, at(-600.5), 100, [at(-1.5), at(-0.5)], at(0.5)),
        (FIRE_EACH, at(-600.5), 3, [at(-4.5), at(-3.5), at(-2.5), at(-1.5), at(-0.5)], at(0.5)),
        # Fewer missed than the bound: every one fires.
        (FIRE_EACH, at(-4.5), 100, [at(-4.5), at(-3.5), at(-2.5), at(-1.5), at(-0.5)], at(0.5)),
        # Nothing missed: every policy fires the same.
        (SKIP, at(-1.5), 100, [at(-1.5), at(-0.5)], at(0.5)),
        (FIRE_EACH, at(-1.5), 1, [at(-1.5), at(-0.5)], at(0.5)),
        # A missed one-time task: skip never fires it.
        (SKIP, at(-600), 100, [], None),
    ],
)
def test_misfire_policy_table(
    policy: MisfirePolicy,
    first_due: datetime,
    fire_each_max: int,
    fired: list[datetime],
    next_time: datetime | None,
) -> None:
    schedule = OneTime(first_due) if first_due == at(-600) else MINUTELY
    result = plan(first_due, policy, fire_each_max=fire_each_max, schedule=schedule)
    assert (result.fire, result.next_time) == (fired, next_time)


def test_fire_each_finds_the_newest_of_a_year_without_walking_it() -> None:
    # 525,600 missed minutes; only the newest 100 (and the two within the grace) fire.
    result = plan(at(-365 * 24 * 60 - 0.5), FIRE_EACH)
    assert len(result.fire) == 102
    assert result.fire[0] == at(-101.5) and result.fire[-1] == at(-0.5)


def test_fire_each_respects_max_executions_and_max_per_claim() -> None:
    result = plan(at(-600.5), FIRE_EACH, window=Window(max_executions=5), occurrences_so_far=2)
    assert result.fire == [at(-4.5), at(-3.5), at(-2.5)] and result.next_time is None
    first = plan(at(-600.5), FIRE_EACH, fire_each_max=10, max_per_claim=4)
    # The horizon is at(-2): the newest ten missed are at(-11.5) … at(-2.5).
    assert first.fire == [at(-11.5), at(-10.5), at(-9.5), at(-8.5)]
    assert first.next_time == at(-7.5)
    rest = plan(at(-7.5), FIRE_EACH, fire_each_max=10, occurrences_so_far=4)
    assert rest.fire == [at(-m - 0.5) for m in range(7, -1, -1)]


def test_skip_honours_start_at_and_end_at() -> None:
    assert plan(at(-600.5), SKIP, window=Window(end_at=at(-300))).fire == []
    assert plan(at(-600.5), SKIP, window=Window(end_at=at(-300))).next_time is None


MAX_PER_CLAIM = 1000


@given(
    minutes_late=st.integers(min_value=0, max_value=3000),
    grace_s=st.integers(min_value=0, max_value=7200),
    fire_each_max=st.integers(min_value=1, max_value=150),
    policy=st.sampled_from(list(MisfirePolicy)),
    interval_s=st.sampled_from([None, 7, 60, 3600]),
)
def test_plan_properties_of_every_policy(
    minutes_late: int,
    grace_s: int,
    fire_each_max: int,
    policy: MisfirePolicy,
    interval_s: int | None,
) -> None:
    first = at(-minutes_late - 0.5)
    schedule = MINUTELY if interval_s is None else Interval(interval_s, first)
    # A claim returns at most max_per_claim occurrences and leaves next_time in the past
    # when more are due: follow the claims, as successive ticks do, until none is.
    fired: list[datetime] = []
    due = first
    for _ in range(20):
        result = plan(
            due,
            policy,
            grace_s=grace_s,
            fire_each_max=fire_each_max,
            schedule=schedule,
            occurrences_so_far=len(fired),
            max_per_claim=MAX_PER_CLAIM,
        )
        assert len(result.fire) <= MAX_PER_CLAIM
        assert result.next_time is not None
        assert all(result.next_time > t for t in result.fire)
        fired += result.fire
        if result.next_time > NOW:
            break
        assert len(result.fire) == MAX_PER_CLAIM  # left in the past only when cut short
        due = result.next_time
    else:
        pytest.fail("the claims never caught up")
    horizon = NOW - timedelta(seconds=grace_s)
    missed = [t for t in fired if t < horizon]
    assert fired == sorted(set(fired))
    assert all(t <= NOW for t in fired)
    # Everything within the grace fires, whatever the policy.
    everything = upcoming_between(schedule, first, NOW)
    assert [t for t in fired if t >= horizon] == [t for t in everything if t >= horizon]
    all_missed = [t for t in everything if t < horizon]
    if policy is SKIP:
        assert missed == []
    elif policy is FIRE_ONCE:
        assert missed == all_missed[:1]
    else:
        assert missed == all_missed[-fire_each_max:]


def upcoming_between(schedule: Cron | Interval, first: datetime, end: datetime) -> list[datetime]:
    times = [first]
    while True:
        following = plan_claim(
            schedule,
            Window(),
            ClaimRules(misfire_grace_s=0, max_per_claim=1),
            first_due=times[-1],
            now=times[-1],
            occurrences_so_far=0,
        ).next_time
        if following is None or following > end:
            return times
        times.append(following)


@given(
    policy=st.sampled_from(list(MisfirePolicy)),
    steps_s=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=6),
    max_per_claim=st.integers(min_value=1, max_value=40),
    fire_each_max=st.integers(min_value=1, max_value=60),
)
def test_consecutive_claims_never_fire_an_occurrence_twice(
    policy: MisfirePolicy, steps_s: list[int], max_per_claim: int, fire_each_max: int
) -> None:
    first = at(-30.5)
    now = NOW
    due: datetime | None = first
    count = 0
    fired: list[datetime] = []
    for step_s in steps_s:
        now += timedelta(seconds=step_s)
        while due is not None and due <= now:
            result = plan(
                due,
                policy,
                grace_s=300,
                fire_each_max=fire_each_max,
                max_per_claim=max_per_claim,
                occurrences_so_far=count,
                now=now,
            )
            fired += result.fire
            count += len(result.fire)
            assert result.next_time is None or all(result.next_time > t for t in result.fire)
            due = result.next_time
    assert fired == sorted(set(fired))
