"""Tests for taskhub.core.backfill: which occurrences a backfill names, and its refusals.

The properties judge the enumeration by oracles that never step through the schedule:
a UTC cron by walking every minute of the range and asking whether the cron matches it,
an interval by arithmetic on its anchor.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskhub.core.backfill import BackfillRange, occurrences_between, parse_backfill, plan_backfill
from taskhub.core.cron import parse_cron
from taskhub.core.errors import ValidationError
from taskhub.core.exclusions import Calendar, Exclusions
from taskhub.core.schedules import Cron, Interval, OneTime, Window, next_fire_time
from taskhub.core.settings import MAX_BACKFILL_OCCURRENCES, SettingsError, load

MINUTE = timedelta(minutes=1)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NO_WINDOW = Window()

CRONS = ["* * * * *", "*/7 * * * *", "0 * * * *", "5,35 9-17 * * 1-5", "0 0 1 * *", "13 3 * * 0"]

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 5, 31), timezones=st.just(UTC)
)


def minutes_matching(expression: str, start: datetime, end: datetime) -> list[datetime]:
    """Every whole minute in [start, end] a UTC cron matches: the brute-force answer."""
    spec = parse_cron(expression)
    minute = start.replace(second=0, microsecond=0)
    if minute < start:
        minute += MINUTE
    found = []
    while minute <= end:
        if spec.matches(minute.replace(tzinfo=None)):
            found.append(minute)
        minute += MINUTE
    return found


@settings(max_examples=60, deadline=None)
@given(
    expression=st.sampled_from(CRONS),
    start=instants,
    length=st.integers(min_value=0, max_value=3 * 24 * 60),
    limit=st.integers(min_value=1, max_value=5000),
)
def test_a_cron_range_holds_every_matching_minute_sorted_and_capped(
    expression: str, start: datetime, length: int, limit: int
) -> None:
    end = start + timedelta(minutes=length, seconds=start.second % 7)
    found = occurrences_between(Cron(expression, "UTC"), start, end, NO_WINDOW, limit)
    expected = minutes_matching(expression, start, end)
    assert found == expected[:limit]
    assert all(a < b for a, b in pairwise(found))


@settings(max_examples=200, deadline=None)
@given(
    anchor=instants,
    step=st.integers(min_value=1, max_value=7200),
    start=instants,
    length_s=st.integers(min_value=0, max_value=3 * 86400),
    limit=st.integers(min_value=1, max_value=500),
)
def test_an_interval_range_holds_every_step_before_and_after_its_anchor(
    anchor: datetime, step: int, start: datetime, length_s: int, limit: int
) -> None:
    end = start + timedelta(seconds=length_s)
    found = occurrences_between(Interval(step, anchor), start, end, NO_WINDOW, limit)
    assert len(found) <= limit
    assert all(a < b for a, b in pairwise(found))
    assert all(
        start <= t <= end and (t - anchor) % timedelta(seconds=step) == timedelta(0) for t in found
    )
    # None missing: the expected count, by arithmetic alone.
    first_k = -((anchor - start) // timedelta(seconds=step))
    last_k = (end - anchor) // timedelta(seconds=step)
    assert len(found) == min(limit, max(0, last_k - first_k + 1))


@settings(max_examples=60, deadline=None)
@given(
    expression=st.sampled_from([*CRONS, "30 1 * * *", "*/20 0-3 * * *"]),
    zone=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe"]),
    start=st.datetimes(
        min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC)
    ),
    length=st.integers(min_value=0, max_value=3 * 24 * 60),
    limit=st.integers(min_value=1, max_value=500),
)
def test_across_daylight_saving_each_step_is_the_schedules_next_occurrence(
    expression: str, zone: str, start: datetime, length: int, limit: int
) -> None:
    """In a zone with DST the range is the schedule's own chain of fire times, cut to the
    range: nothing before the first, between two, or after the last (unless capped)."""
    schedule = Cron(expression, zone)
    end = start + timedelta(minutes=length)
    found = occurrences_between(schedule, start, end, NO_WINDOW, limit)
    chain = [next_fire_time(schedule, start - timedelta(microseconds=1))]
    for instant in found:
        assert start <= instant <= end
        assert instant == chain[-1]
        chain.append(next_fire_time(schedule, instant))
    after = chain[-1]
    assert len(found) == limit or after is None or after > end


def test_the_window_bounds_the_range_and_max_executions_does_not() -> None:
    window = Window(
        start_at=datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
        end_at=datetime(2026, 1, 1, 10, 3, tzinfo=UTC),
        max_executions=1,
    )
    found = occurrences_between(
        Cron("* * * * *", "UTC"),
        datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 11, 0, tzinfo=UTC),
        window,
        100,
    )
    assert found == [datetime(2026, 1, 1, 10, m, tzinfo=UTC) for m in range(4)]


def test_a_one_time_schedule_has_its_one_occurrence_when_in_range() -> None:
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert occurrences_between(OneTime(at), at - MINUTE, at, NO_WINDOW, 10) == [at]
    assert occurrences_between(OneTime(at), at + MINUTE, at + 2 * MINUTE, NO_WINDOW, 10) == []


def test_an_interval_reaches_back_before_its_anchor_at_the_same_step() -> None:
    anchor = datetime(2026, 1, 1, 0, 0, 17, tzinfo=UTC)
    found = occurrences_between(
        Interval(60, anchor), anchor - 3 * MINUTE, anchor + MINUTE, NO_WINDOW, 10
    )
    assert found == [anchor + k * MINUTE for k in range(-3, 2)]


def test_a_backfill_body_is_read_with_its_fields_named() -> None:
    asked = parse_backfill({"start": "2026-01-01T00:00:00+08:00", "end": "2026-01-02T00:00Z"})
    assert asked == BackfillRange(
        datetime(2025, 12, 31, 16, 0, tzinfo=UTC), datetime(2026, 1, 2, 0, 0, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"end": "2026-01-02T00:00Z"}, "start"),
        ({"start": "2026-01-02T00:00Z"}, "end"),
        ({"start": "yesterday", "end": "2026-01-02T00:00Z"}, "start"),
        ({"start": "2026-01-01T00:00", "end": "2026-01-02T00:00Z"}, "start"),
        ({"start": "2026-01-01T00:00Z", "end": 5}, "end"),
        ({"start": "2026-01-02T00:00Z", "end": "2026-01-02T00:00Z"}, "end"),
        ({"start": "2026-01-02T00:00Z", "end": "2026-01-01T00:00Z"}, "end"),
        ({"start": "2026-01-01T00:00Z", "end": "2026-01-02T00:00Z", "extra": 1}, "extra"),
        ([], ""),
    ],
)
def test_a_bad_backfill_body_is_refused_naming_the_field(body: object, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_backfill(body)
    assert refused.value.field == field


def test_plan_refuses_before_start_at_a_future_start_and_too_many() -> None:
    every_minute = Cron("* * * * *", "UTC")
    window = Window(start_at=NOW - 60 * MINUTE)
    with pytest.raises(ValidationError) as before:
        plan_backfill(every_minute, window, BackfillRange(NOW - 61 * MINUTE, NOW), NOW, 1000)
    assert before.value.field == "start"
    with pytest.raises(ValidationError) as future:
        plan_backfill(
            every_minute, NO_WINDOW, BackfillRange(NOW + MINUTE, NOW + 2 * MINUTE), NOW, 9
        )
    assert future.value.field == "start"
    with pytest.raises(ValidationError) as many:
        plan_backfill(every_minute, NO_WINDOW, BackfillRange(NOW - 10 * MINUTE, NOW), NOW, 10)
    assert many.value.field == "end" and "10" in str(many.value)


def test_plan_takes_exactly_the_cap_and_clamps_a_future_end_to_now() -> None:
    every_minute = Cron("* * * * *", "UTC")
    asked = BackfillRange(NOW - 9 * MINUTE, NOW + 60 * MINUTE)
    found = plan_backfill(every_minute, NO_WINDOW, asked, NOW, 10)
    assert found == [NOW - k * MINUTE for k in range(9, -1, -1)]


def test_the_cap_is_a_setting_refused_by_name_when_wrong() -> None:
    assert load({}).backfill_max_occurrences == 1000
    assert load({"TASKHUB_BACKFILL_MAX_OCCURRENCES": "50"}).backfill_max_occurrences == 50
    for wrong in ("0", "many", str(MAX_BACKFILL_OCCURRENCES + 1)):
        with pytest.raises(SettingsError, match="TASKHUB_BACKFILL_MAX_OCCURRENCES"):
            load({"TASKHUB_BACKFILL_MAX_OCCURRENCES": wrong})


@settings(max_examples=60, deadline=None)
@given(
    start=instants,
    length=st.integers(min_value=0, max_value=3 * 24 * 60),
    skipped=st.sets(st.integers(min_value=0, max_value=3 * 24 * 60), max_size=20),
    holidays=st.sets(st.integers(min_value=0, max_value=3), max_size=2),
    zone=st.sampled_from(["UTC", "Asia/Taipei", "America/New_York"]),
    limit=st.integers(min_value=1, max_value=500),
)
def test_excluded_occurrences_are_left_out_and_not_counted(
    start: datetime, length: int, skipped: set[int], holidays: set[int], zone: str, limit: int
) -> None:
    """With exclusions the range is the unexcluded range with what they exclude taken
    out, the cap counting only what fires."""
    schedule = Cron("*/7 * * * *", "UTC")
    end = start + timedelta(minutes=length)
    everything = occurrences_between(schedule, start, end, NO_WINDOW, 10**6)
    first_day = start.astimezone(ZoneInfo(zone)).date()
    exclusions = Exclusions(
        skips=frozenset(everything[k] for k in skipped if k < len(everything)),
        calendars=(
            Calendar("days", zone, frozenset(first_day + timedelta(days=d) for d in holidays)),
        ),
    )
    found = occurrences_between(schedule, start, end, NO_WINDOW, limit, exclusions)
    assert found == [at for at in everything if exclusions.reason(at) is None][:limit]


def test_a_backfill_leaves_out_skips_and_calendar_dates_without_counting_them() -> None:
    every_minute = Cron("* * * * *", "UTC")
    asked = BackfillRange(NOW - 9 * MINUTE, NOW)
    exclusions = Exclusions(skips=frozenset({NOW - 5 * MINUTE}))
    found = plan_backfill(every_minute, NO_WINDOW, asked, NOW, 9, exclusions)
    assert NOW - 5 * MINUTE not in found and len(found) == 9
    today = Calendar("today", "UTC", frozenset({NOW.date()}))
    assert (
        plan_backfill(every_minute, NO_WINDOW, asked, NOW, 9, Exclusions(calendars=(today,))) == []
    )
