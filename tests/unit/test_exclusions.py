"""Skips and exclusion calendars: which occurrences are excluded, and the stepping that
passes over them (no returned occurrence is excluded, none that is not is missed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskhub.core.errors import ValidationError
from taskhub.core.exclusions import Calendar, Exclusions, parse_calendar_dates
from taskhub.core.occurrences import ClaimRules, first_included, next_included, plan_claim
from taskhub.core.schedules import Cron, Interval, Window, next_occurrence

TW = Calendar("tw-holidays", "Asia/Taipei", frozenset({date(2027, 1, 1)}))
NY = Calendar("ny", "America/New_York", frozenset({date(2027, 3, 14), date(2027, 11, 7)}))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("exclusions", "instant", "reason"),
    [
        (Exclusions(calendars=(TW,)), utc(2026, 12, 31, 16, 0), "calendar:tw-holidays"),
        (Exclusions(calendars=(TW,)), utc(2026, 12, 31, 15, 59), None),  # 23:59 in Taipei
        (Exclusions(calendars=(TW,)), utc(2027, 1, 1, 15, 59), "calendar:tw-holidays"),
        (Exclusions(calendars=(TW,)), utc(2027, 1, 1, 16, 0), None),  # 2 January in Taipei
        (Exclusions(skips=frozenset({utc(2027, 1, 5, 9)})), utc(2027, 1, 5, 9), "skip"),
        (Exclusions(skips=frozenset({utc(2027, 1, 5, 9)})), utc(2027, 1, 5, 10), None),
        (
            Exclusions(skips=frozenset({utc(2027, 1, 1, 0)}), calendars=(TW,)),
            utc(2027, 1, 1, 0),
            "skip",
        ),
        # The day of a DST change in New York: 23 hours (spring), 25 (fall).
        (Exclusions(calendars=(NY,)), utc(2027, 3, 14, 5, 0), "calendar:ny"),
        (Exclusions(calendars=(NY,)), utc(2027, 3, 15, 3, 59), "calendar:ny"),
        (Exclusions(calendars=(NY,)), utc(2027, 3, 15, 4, 0), None),
        (Exclusions(calendars=(NY,)), utc(2027, 11, 8, 4, 59), "calendar:ny"),
        (Exclusions(calendars=(NY,)), utc(2027, 11, 8, 5, 0), None),
        (Exclusions(), utc(2027, 1, 1), None),
    ],
)
def test_reason(exclusions: Exclusions, instant: datetime, reason: str | None) -> None:
    assert exclusions.reason(instant) == reason
    assert (exclusions.resume_after(instant) is None) == (reason is None)


def test_resume_after_a_calendar_day_is_its_last_microsecond() -> None:
    resume = Exclusions(calendars=(TW,)).resume_after(utc(2027, 1, 1, 3))
    assert resume == utc(2027, 1, 1, 16) - timedelta(microseconds=1)
    resume = Exclusions(calendars=(NY,)).resume_after(utc(2027, 11, 7, 12))
    assert resume == utc(2027, 11, 8, 5) - timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # Daily at 09:00 Taipei: 1 January is a holiday, the next fire is 2 January.
        (Cron("0 9 * * *", "Asia/Taipei"), utc(2026, 12, 31, 2), utc(2027, 1, 2, 1)),
        (Cron("0 9 * * *", "Asia/Taipei"), utc(2026, 12, 31, 0), utc(2026, 12, 31, 1)),
        # Every second, through the holiday in one step.
        (Interval(1, utc(2026, 1, 1)), utc(2026, 12, 31, 16), utc(2027, 1, 1, 16)),
    ],
)
def test_next_included_steps_over_the_holiday(
    schedule: Cron | Interval, after: datetime, expected: datetime
) -> None:
    exclusions = Exclusions(calendars=(TW,))
    assert next_included(schedule, after, Window(), 0, exclusions) == expected


def test_a_skip_moves_the_next_occurrence_to_the_one_after() -> None:
    schedule = Interval(3600, utc(2027, 1, 1))
    skips = Exclusions(skips=frozenset({utc(2027, 1, 1, 5)}))
    assert first_included(schedule, utc(2027, 1, 1, 4, 30), Window(), skips) == utc(2027, 1, 1, 6)
    assert first_included(schedule, utc(2027, 1, 1, 5), Window(), skips) == utc(2027, 1, 1, 6)
    assert first_included(schedule, utc(2027, 1, 1, 5), Window(), None) == utc(2027, 1, 1, 5)


def test_the_window_still_ends_the_schedule() -> None:
    schedule = Interval(3600, utc(2027, 1, 1))
    window = Window(end_at=utc(2027, 1, 1, 5))
    skips = Exclusions(skips=frozenset({utc(2027, 1, 1, 5)}))
    assert next_included(schedule, utc(2027, 1, 1, 4), window, 0, skips) is None


def test_a_claim_does_not_fire_a_due_excluded_occurrence() -> None:
    schedule = Interval(60, utc(2027, 1, 1))
    skips = Exclusions(skips=frozenset({utc(2027, 1, 1, 0, 1)}))
    plan = plan_claim(
        schedule,
        Window(),
        ClaimRules(misfire_grace_s=300, max_per_claim=100),
        first_due=utc(2027, 1, 1, 0, 1),  # stored before the skip was added
        now=utc(2027, 1, 1, 0, 3),
        occurrences_so_far=0,
        exclusions=skips,
    )
    assert plan.fire == [utc(2027, 1, 1, 0, 2), utc(2027, 1, 1, 0, 3)]
    assert plan.next_time == utc(2027, 1, 1, 0, 4)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ("2027-01-01", "dates"),
        (["2027-01-01", "2027-1-2"], "dates[1]"),
        (["2027-02-30"], "dates[0]"),
        ([20270101], "dates[0]"),
        (["2027-01-01"] * 1001, "dates"),
    ],
)
def test_bad_dates_are_refused_naming_the_entry(values: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_calendar_dates(values)
    assert caught.value.field == field


def test_dates_parse() -> None:
    assert parse_calendar_dates(["2027-01-01", "2027-01-01", "2028-02-29"]) == {
        date(2027, 1, 1),
        date(2028, 2, 29),
    }


ZONES = ["UTC", "Asia/Taipei", "America/New_York", "Europe/London", "Australia/Lord_Howe"]
START = utc(2027, 3, 1)


@st.composite
def exclusions_and_schedule(draw: st.DrawFn) -> tuple[Cron | Interval, Exclusions]:
    if draw(st.booleans()):
        schedule: Cron | Interval = Interval(draw(st.sampled_from([61, 600, 3600, 5400])), START)
    else:
        minute = draw(st.sampled_from(["0", "*/15", "30"]))
        hour = draw(st.sampled_from(["*", "*/3", "1,2,3", "9"]))
        schedule = Cron(f"{minute} {hour} * * *", draw(st.sampled_from(ZONES)))
    calendars = tuple(
        Calendar(
            f"c{i}",
            draw(st.sampled_from(ZONES)),
            frozenset(
                date(2027, 3, 1) + timedelta(days=d)
                for d in draw(st.lists(st.integers(0, 15), max_size=8))
            ),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    plain = [
        o
        for o in _plain(schedule, START, START + timedelta(days=16))
        if draw(st.integers(0, 9)) == 0
    ]
    return schedule, Exclusions(skips=frozenset(plain), calendars=calendars)


def _plain(schedule: Cron | Interval, after: datetime, until: datetime) -> list[datetime]:
    found = []
    cursor = next_occurrence(schedule, after, Window(), 0)
    while cursor is not None and cursor <= until:
        found.append(cursor)
        cursor = next_occurrence(schedule, cursor, Window(), 0)
    return found


@settings(max_examples=60, deadline=None)
@given(exclusions_and_schedule())
def test_stepping_returns_exactly_the_occurrences_not_excluded(
    case: tuple[Cron | Interval, Exclusions],
) -> None:
    schedule, exclusions = case
    until = START + timedelta(days=16)
    expected = [o for o in _plain(schedule, START, until) if exclusions.reason(o) is None]
    stepped = []
    cursor = next_included(schedule, START, Window(), 0, exclusions)
    while cursor is not None and cursor <= until:
        stepped.append(cursor)
        cursor = next_included(schedule, cursor, Window(), 0, exclusions)
    assert stepped == expected


@settings(max_examples=60, deadline=None)
@given(exclusions_and_schedule(), st.integers(0, 16 * 24))
def test_a_claim_fires_exactly_the_due_occurrences_not_excluded(
    case: tuple[Cron | Interval, Exclusions], hours: int
) -> None:
    schedule, exclusions = case
    now = START + timedelta(hours=hours)
    first = next_included(schedule, START, Window(), 0, exclusions)
    if first is None:
        return
    plan = plan_claim(
        schedule,
        Window(),
        ClaimRules(misfire_grace_s=10**8, max_per_claim=10**6),
        first_due=first,
        now=now,
        occurrences_so_far=0,
        exclusions=exclusions,
    )
    assert plan.fire == [
        o for o in _plain(schedule, START, now) if exclusions.reason(o) is None and o >= first
    ]
    assert plan.next_time is None or exclusions.reason(plan.next_time) is None
