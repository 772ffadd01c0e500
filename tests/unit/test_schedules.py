"""Tests for taskhub.schedules: cron math, the DST rule, validation, intervals and windows.

The property tests check the cron evaluator against a brute-force oracle that walks real
time minute by minute and applies the DST rule directly, so the clever day/hour/minute
stepping of the module is never its own judge.
"""

from __future__ import annotations

import calendar
import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taskhub.core.cron import CronSpec, parse_cron
from taskhub.core.errors import ScheduleError
from taskhub.core.schedules import (
    Cron,
    Interval,
    OneTime,
    Schedule,
    Window,
    first_occurrence,
    next_fire_time,
    next_occurrence,
    shortest_gap,
    upcoming,
    validate,
    validate_window,
)
from taskhub.core.wall_clock import zone

MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    """An aware UTC instant from ISO text such as '2026-03-08T07:00Z'."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None
    return value.astimezone(UTC)


def fmt(value: datetime) -> str:
    assert value.utcoffset() == timedelta(0)
    text = value.strftime("%Y-%m-%dT%H:%M")
    return text + (f":{value.second:02d}Z" if value.second else "Z")


def fires(expression: str, timezone_name: str, after: str, count: int) -> list[str]:
    schedule = Cron(expression, timezone_name)
    found = []
    cursor = at(after)
    for _ in range(count):
        instant = next_fire_time(schedule, cursor)
        assert instant is not None
        found.append(fmt(instant))
        cursor = instant
    return found


# --------------------------------------------------------------------------- cron math (UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        pytest.param("* * * * *", "2026-01-01T00:00Z", ["2026-01-01T00:01Z", "2026-01-01T00:02Z"]),
        pytest.param("* * * * *", "2026-01-01T00:00:30Z", ["2026-01-01T00:01Z"], id="mid-minute"),
        pytest.param(
            "*/15 * * * *",
            "2026-01-01T10:07Z",
            ["2026-01-01T10:15Z", "2026-01-01T10:30Z", "2026-01-01T10:45Z", "2026-01-01T11:00Z"],
            id="step",
        ),
        pytest.param("5 4 * * *", "2026-01-01T04:05Z", ["2026-01-02T04:05Z"], id="strictly-after"),
        pytest.param(
            "0 0 1 * *",
            "2026-01-15T00:00Z",
            ["2026-02-01T00:00Z", "2026-03-01T00:00Z"],
            id="monthly",
        ),
        pytest.param(
            "0 0 31 * *",
            "2026-01-31T00:00Z",
            ["2026-03-31T00:00Z", "2026-05-31T00:00Z", "2026-07-31T00:00Z", "2026-08-31T00:00Z"],
            id="month-ends-skip-short-months",
        ),
        pytest.param("0 0 30 * *", "2026-01-30T00:00Z", ["2026-03-30T00:00Z"], id="skips-february"),
        pytest.param(
            "0 0 29 2 *",
            "2026-01-01T00:00Z",
            ["2028-02-29T00:00Z", "2032-02-29T00:00Z"],
            id="leap-day",
        ),
        pytest.param(
            "0 0 29 2 *", "2096-03-01T00:00Z", ["2104-02-29T00:00Z"], id="leap-day-over-2100"
        ),
        pytest.param(
            "0 0 28-31 2 *",
            "2026-01-01T00:00Z",
            ["2026-02-28T00:00Z", "2027-02-28T00:00Z", "2028-02-28T00:00Z", "2028-02-29T00:00Z"],
            id="february-end",
        ),
        pytest.param(
            "0 12 * * MON-FRI", "2026-01-02T12:00Z", ["2026-01-05T12:00Z"], id="weekday-names"
        ),
        pytest.param(
            "0 0 13 * 1",
            "2026-02-01T00:00Z",
            [
                "2026-02-02T00:00Z",
                "2026-02-09T00:00Z",
                "2026-02-13T00:00Z",
                "2026-02-16T00:00Z",
                "2026-02-23T00:00Z",
                "2026-03-02T00:00Z",
            ],
            id="dom-or-dow",
        ),
        pytest.param(
            "0 0 1-7 * 1",
            "2026-01-07T00:00Z",
            [
                "2026-01-12T00:00Z",
                "2026-01-19T00:00Z",
                "2026-01-26T00:00Z",
                "2026-02-01T00:00Z",
                "2026-02-02T00:00Z",
                "2026-02-03T00:00Z",
            ],
            id="dom-range-or-dow",
        ),
        pytest.param(
            "0 0 */2 * 1",
            "2026-01-01T00:00Z",
            ["2026-01-05T00:00Z", "2026-01-19T00:00Z", "2026-02-09T00:00Z", "2026-02-23T00:00Z"],
            id="star-step-dom-and-dow",
        ),
        pytest.param(
            "0 0 */10 * *",
            "2026-01-01T00:00Z",
            [
                "2026-01-11T00:00Z",
                "2026-01-21T00:00Z",
                "2026-01-31T00:00Z",
                "2026-02-01T00:00Z",
                "2026-02-11T00:00Z",
            ],
            id="dom-step",
        ),
        pytest.param(
            "0 0 * * 7", "2026-01-01T00:00Z", ["2026-01-04T00:00Z", "2026-01-11T00:00Z"], id="7-sun"
        ),
        pytest.param(
            "0 0 * * 0", "2026-01-01T00:00Z", ["2026-01-04T00:00Z", "2026-01-11T00:00Z"], id="0-sun"
        ),
        pytest.param(
            "0 0 * * 5-7",
            "2026-01-01T00:00Z",
            ["2026-01-02T00:00Z", "2026-01-03T00:00Z", "2026-01-04T00:00Z", "2026-01-09T00:00Z"],
            id="range-to-7",
        ),
        pytest.param(
            "0 0 * * 1/2",
            "2026-01-01T00:00Z",
            ["2026-01-02T00:00Z", "2026-01-05T00:00Z", "2026-01-07T00:00Z", "2026-01-09T00:00Z"],
            id="dow-open-step-ends-saturday",
        ),
        pytest.param(
            "30 8 * * sun,Sat",
            "2026-01-01T00:00Z",
            ["2026-01-03T08:30Z", "2026-01-04T08:30Z", "2026-01-10T08:30Z"],
            id="mixed-case-names",
        ),
        pytest.param(
            "0 9-17/4 * * *",
            "2026-01-01T00:00Z",
            ["2026-01-01T09:00Z", "2026-01-01T13:00Z", "2026-01-01T17:00Z", "2026-01-02T09:00Z"],
            id="range-step",
        ),
        pytest.param(
            "15/20 * * * *",
            "2026-01-01T00:00Z",
            ["2026-01-01T00:15Z", "2026-01-01T00:35Z", "2026-01-01T00:55Z", "2026-01-01T01:15Z"],
            id="open-step",
        ),
        pytest.param(
            "0,30 9 * * *",
            "2026-01-01T09:00Z",
            ["2026-01-01T09:30Z", "2026-01-02T09:00Z"],
            id="list",
        ),
        pytest.param(
            "0 0 1 jan,JUL *",
            "2026-01-01T00:00Z",
            ["2026-07-01T00:00Z", "2027-01-01T00:00Z"],
            id="month-names",
        ),
        pytest.param("0 0 1 1 *", "2026-06-01T00:00Z", ["2027-01-01T00:00Z"], id="year-rollover"),
        pytest.param(
            "59 23 31 12 *", "2026-12-31T23:59Z", ["2027-12-31T23:59Z"], id="last-minute-of-year"
        ),
        pytest.param(
            "  0   12 *\t* *  ", "2026-01-01T00:00Z", ["2026-01-01T12:00Z"], id="extra-whitespace"
        ),
    ],
)
def test_cron_in_utc(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, "UTC", after, len(expected)) == expected


def test_parse_cron_sets_and_flags() -> None:
    spec = parse_cron("*/15 9-17 1,15 JAN-MAR mon-fri")
    assert spec.minutes == {0, 15, 30, 45}
    assert spec.hours == set(range(9, 18))
    assert spec.days_of_month == {1, 15}
    assert spec.months == {1, 2, 3}
    assert spec.days_of_week == {1, 2, 3, 4, 5}
    assert (spec.dom_star, spec.dow_star, spec.hour_star) == (False, False, False)

    every = parse_cron("* * * * 0-7")
    assert every.days_of_week == set(range(7))
    assert (every.dom_star, every.dow_star, every.hour_star) == (True, False, True)
    assert parse_cron("0 */2 */3 * */2").hour_star
    assert parse_cron("0 0 * * 7") == parse_cron("0 0 * * SUN")
    assert isinstance(parse_cron("0 0 * * *"), CronSpec)


def test_non_utc_and_naive_after() -> None:
    schedule = Cron("0 12 * * *")
    plus_eight = datetime(2026, 1, 1, 19, 0, tzinfo=timezone(timedelta(hours=8)))  # 11:00Z
    result = next_fire_time(schedule, plus_eight)
    assert result == at("2026-01-01T12:00Z")
    assert result is not None and result.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_time(schedule, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        first_occurrence(schedule, datetime(2026, 1, 1), Window())


def test_far_future_returns_none() -> None:
    assert next_fire_time(Cron("0 0 1 1 *"), at("9999-06-01T00:00Z")) is None
    assert next_fire_time(Cron("* * * * *", "Pacific/Apia"), at("9999-12-31T23:00Z")) is None


# --------------------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("expression", "timezone_name", "after", "expected"),
    [
        # America/New_York 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z.
        pytest.param(
            "30 2 * * *",
            "America/New_York",
            "2026-03-08T05:00Z",
            ["2026-03-08T07:00Z", "2026-03-09T06:30Z"],
            id="ny-skipped-time-fires-at-jump",
        ),
        pytest.param(
            "15,45 2 * * *",
            "America/New_York",
            "2026-03-08T05:00Z",
            ["2026-03-08T07:00Z", "2026-03-09T06:15Z"],
            id="ny-skipped-times-collapse",
        ),
        pytest.param(
            "0 2,3 * * *",
            "America/New_York",
            "2026-03-08T05:00Z",
            ["2026-03-08T07:00Z", "2026-03-09T06:00Z", "2026-03-09T07:00Z"],
            id="ny-gap-and-first-time-after-are-one-fire",
        ),
        pytest.param(
            "0 * * * *",
            "America/New_York",
            "2026-03-08T04:30Z",
            ["2026-03-08T05:00Z", "2026-03-08T06:00Z", "2026-03-08T07:00Z", "2026-03-08T08:00Z"],
            id="ny-hourly-spring",
        ),
        pytest.param(
            "*/30 * * * *",
            "America/New_York",
            "2026-03-08T05:45Z",
            ["2026-03-08T06:00Z", "2026-03-08T06:30Z", "2026-03-08T07:00Z", "2026-03-08T07:30Z"],
            id="ny-half-hourly-spring",
        ),
        # America/New_York 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z.
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            "2026-11-01T04:00Z",
            ["2026-11-01T05:30Z", "2026-11-02T06:30Z"],
            id="ny-repeated-time-fires-once",
        ),
        pytest.param(
            "0 1 * * *",
            "America/New_York",
            "2026-11-01T05:30Z",
            ["2026-11-02T06:00Z"],
            id="ny-second-pass-skipped",
        ),
        pytest.param(
            "0 2 * * *",
            "America/New_York",
            "2026-11-01T04:00Z",
            ["2026-11-01T07:00Z"],
            id="ny-after-repeat",
        ),
        pytest.param(
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T04:45Z",
            [
                "2026-11-01T05:00Z",
                "2026-11-01T05:30Z",
                "2026-11-01T06:00Z",
                "2026-11-01T06:30Z",
                "2026-11-01T07:00Z",
            ],
            id="ny-wildcard-hour-follows-real-time",
        ),
        pytest.param(
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T05:45Z",
            ["2026-11-01T06:00Z", "2026-11-01T06:30Z"],
            id="ny-late-in-first-pass-next-is-second-pass",
        ),
        pytest.param(
            "0 * * * *",
            "America/New_York",
            "2026-11-01T03:30Z",
            ["2026-11-01T04:00Z", "2026-11-01T05:00Z", "2026-11-01T06:00Z", "2026-11-01T07:00Z"],
            id="ny-hourly-fall",
        ),
        pytest.param(
            "*/30 1 * * *",
            "America/New_York",
            "2026-11-01T04:45Z",
            ["2026-11-01T05:00Z", "2026-11-01T05:30Z", "2026-11-02T06:00Z", "2026-11-02T06:30Z"],
            id="ny-fixed-hour-first-pass-only",
        ),
        pytest.param(
            "* 1 * * *",
            "America/New_York",
            "2026-11-01T05:58Z",
            ["2026-11-01T05:59Z", "2026-11-02T06:00Z"],
            id="ny-minute-star-fixed-hour-first-pass-only",
        ),
        pytest.param(
            "0 0-23 * * *",
            "America/New_York",
            "2026-11-01T04:30Z",
            ["2026-11-01T05:00Z", "2026-11-01T07:00Z"],
            id="ny-hour-range-of-every-hour-is-not-star-first-pass-only",
        ),
        pytest.param(
            "@hourly",
            "America/New_York",
            "2026-11-01T04:30Z",
            ["2026-11-01T05:00Z", "2026-11-01T06:00Z", "2026-11-01T07:00Z"],
            id="ny-hourly-macro-is-star-hour-both-passes",
        ),
        # Europe/London 2026-03-29: 01:00 GMT -> 02:00 BST at 01:00Z.
        pytest.param(
            "30 1 * * *",
            "Europe/London",
            "2026-03-28T12:00Z",
            ["2026-03-29T01:00Z", "2026-03-30T00:30Z"],
            id="london-spring",
        ),
        pytest.param(
            "0 * * * *",
            "Europe/London",
            "2026-03-28T23:30Z",
            ["2026-03-29T00:00Z", "2026-03-29T01:00Z", "2026-03-29T02:00Z"],
            id="london-hourly-spring",
        ),
        # Europe/London 2026-10-25: 02:00 BST -> 01:00 GMT at 01:00Z.
        pytest.param(
            "30 1 * * *",
            "Europe/London",
            "2026-10-24T12:00Z",
            ["2026-10-25T00:30Z", "2026-10-26T01:30Z"],
            id="london-fall",
        ),
        pytest.param(
            "0 * * * *",
            "Europe/London",
            "2026-10-24T23:30Z",
            ["2026-10-25T00:00Z", "2026-10-25T01:00Z", "2026-10-25T02:00Z"],
            id="london-hourly-fall",
        ),
        # Australia/Sydney 2026-04-05: 03:00 AEDT -> 02:00 AEST at 2026-04-04T16:00Z.
        pytest.param(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-04-04T12:00Z",
            ["2026-04-04T15:30Z", "2026-04-05T16:30Z"],
            id="sydney-fall",
        ),
        pytest.param(
            "0 * * * *",
            "Australia/Sydney",
            "2026-04-04T14:30Z",
            ["2026-04-04T15:00Z", "2026-04-04T16:00Z", "2026-04-04T17:00Z"],
            id="sydney-hourly-fall",
        ),
        # Australia/Sydney 2026-10-04: 02:00 AEST -> 03:00 AEDT at 2026-10-03T16:00Z.
        pytest.param(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-10-03T12:00Z",
            ["2026-10-03T16:00Z", "2026-10-04T15:30Z"],
            id="sydney-spring",
        ),
        pytest.param(
            "0 * * * *",
            "Australia/Sydney",
            "2026-10-03T14:30Z",
            ["2026-10-03T15:00Z", "2026-10-03T16:00Z", "2026-10-03T17:00Z"],
            id="sydney-hourly-spring",
        ),
        # Australia/Lord_Howe: half-hour shifts. 2026-04-05 02:00 (+11) -> 01:30 (+10:30) at
        # 2026-04-04T15:00Z; 2026-10-04 02:00 (+10:30) -> 02:30 (+11) at 2026-10-03T15:30Z.
        pytest.param(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T12:00Z",
            ["2026-04-04T14:45Z", "2026-04-05T15:15Z"],
            id="lord-howe-fall-once",
        ),
        pytest.param(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:20Z",
            [
                "2026-04-04T14:30Z",
                "2026-04-04T14:45Z",
                "2026-04-04T15:00Z",
                "2026-04-04T15:15Z",
                "2026-04-04T15:30Z",
            ],
            id="lord-howe-fall-wildcard",
        ),
        pytest.param(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T12:00Z",
            ["2026-10-03T15:30Z", "2026-10-04T15:15Z"],
            id="lord-howe-spring",
        ),
        pytest.param(
            "0,30 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T14:50Z",
            ["2026-10-03T15:00Z", "2026-10-03T15:30Z", "2026-10-03T16:00Z"],
            id="lord-howe-spring-wildcard",
        ),
        # America/Sao_Paulo switched at midnight: 2018-11-04 00:00 (-03) -> 01:00 (-02) at
        # 03:00Z; 2019-02-17 00:00 (-02) -> 2019-02-16 23:00 (-03) at 02:00Z.
        pytest.param(
            "0 0 * * 0",
            "America/Sao_Paulo",
            "2018-11-03T12:00Z",
            ["2018-11-04T03:00Z", "2018-11-11T02:00Z"],
            id="sao-paulo-midnight-gap",
        ),
        pytest.param(
            "0 23 * * *",
            "America/Sao_Paulo",
            "2019-02-16T12:00Z",
            ["2019-02-17T01:00Z", "2019-02-18T02:00Z"],
            id="sao-paulo-repeated-previous-day",
        ),
        pytest.param(
            "0 * * * *",
            "America/Sao_Paulo",
            "2019-02-17T00:30Z",
            ["2019-02-17T01:00Z", "2019-02-17T02:00Z", "2019-02-17T03:00Z"],
            id="sao-paulo-hourly-fall",
        ),
        # Pacific/Apia skipped 2011-12-30 entirely (-10 -> +14 at 2011-12-30T10:00Z).
        pytest.param(
            "0 12 * * *",
            "Pacific/Apia",
            "2011-12-28T00:00Z",
            [
                "2011-12-28T22:00Z",
                "2011-12-29T22:00Z",
                "2011-12-30T10:00Z",
                "2011-12-30T22:00Z",
            ],
            id="apia-skipped-day",
        ),
        # No DST at all.
        pytest.param(
            "30 2 * * *",
            "Asia/Kolkata",
            "2026-03-08T00:00Z",
            ["2026-03-08T21:00Z", "2026-03-09T21:00Z"],
            id="kolkata",
        ),
        pytest.param(
            "*/30 * * * *",
            "Asia/Kolkata",
            "2026-11-01T05:45Z",
            ["2026-11-01T06:00Z", "2026-11-01T06:30Z"],
            id="kolkata-half-hour-offset",
        ),
        pytest.param(
            "0 9 * * 1-5",
            "Asia/Taipei",
            "2026-03-06T01:00Z",
            ["2026-03-09T01:00Z", "2026-03-10T01:00Z"],
            id="taipei-weekdays",
        ),
        pytest.param(
            "0 0 1 1 *",
            "Asia/Taipei",
            "2026-06-01T00:00Z",
            ["2026-12-31T16:00Z"],
            id="taipei-new-year-is-previous-utc-day",
        ),
    ],
)
def test_dst(expression: str, timezone_name: str, after: str, expected: list[str]) -> None:
    assert fires(expression, timezone_name, after, len(expected)) == expected


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "expected 5 fields"),
        ("* * * *", "got 4"),
        ("* * * * * *", "got 6"),
        ("60 * * * *", "minute field: 60 is out of range 0-59"),
        ("* 24 * * *", "hour field: 24 is out of range"),
        ("* * 0 * *", "day-of-month field: 0 is out of range"),
        ("* * 32 * *", "day-of-month field: 32"),
        ("* * * 0 *", "month field: 0"),
        ("* * * 13 *", "month field: 13"),
        ("* * * * 8", "day-of-week field: 8"),
        ("5-1 * * * *", "reversed"),
        ("* * * * FRI-SUN", "reversed"),
        ("*/0 * * * *", "must not be 0"),
        ("1-5/0 * * * *", "must not be 0"),
        ("*/ * * * *", "step"),
        ("*/x * * * *", "step"),
        ("1/2/3 * * * *", "step"),
        ("* * * FOO *", "unknown value 'FOO'"),
        ("* * * * FUNDAY", "unknown value 'FUNDAY'"),
        ("* * * * JAN", "unknown value 'JAN'"),
        ("MON * * * *", "unknown value 'MON'"),
        ("1,,2 * * * *", "empty list item"),
        ("1, * * * *", "empty list item"),
        ("-1 * * * *", "missing value"),
        ("1- * * * *", "missing value"),
        ("1-2-3 * * * *", "unknown value"),
        ("a * * * *", "unknown value"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4 *", "never fires"),
        ("0 0 31 2,4,6,9,11 *", "never fires"),
        ("0 0 30,31 FEB *", "never fires"),
        ("@reboot", "not supported"),
        ("0 0 L-31 * *", "n must be 1-30"),
        ("0 0 * * 5#6", "n must be 1-5"),
        ("0 0 ? * *", "'?'"),
        ("0 0 * * ?", "'?'"),
        ("٣ * * * *", "unknown value"),
    ],
)
def test_bad_cron(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron(expression)
    assert caught.value.field == "schedule.cron"
    assert message in caught.value.message
    with pytest.raises(ScheduleError) as again:
        validate(Cron(expression, "UTC"))
    assert again.value.field == "schedule.cron"


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 30 2 1",  # OR rule: Mondays in February
        "0 0 29 2 *",  # leap day
        "0 0 29-31 2 */7",  # leap day that is also a Sunday (AND): 2004, 2032, ...
        "0 0 31 1-12 *",
        "59 23 31 DEC 0-7",
        "0 0 * jul WED",
    ],
)
def test_rare_but_valid_cron(expression: str) -> None:
    validate(Cron(expression))
    assert next_fire_time(Cron(expression), at("2026-01-01T00:00Z")) is not None


def test_leap_day_sunday_found_decades_ahead() -> None:
    assert fires("0 0 29-31 2 */7", "UTC", "2005-01-01T00:00Z", 1) == ["2032-02-29T00:00Z"]


@pytest.mark.parametrize(
    "name",
    ["Mars/Olympus_Mons", "", "America", "../etc/passwd", "+08:00", "utc", "UTC ", "localtime"],
)
def test_bad_zone(name: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        zone(name)
    assert caught.value.field == "schedule.timezone"
    with pytest.raises(ScheduleError) as again:
        validate(Cron("* * * * *", name))
    assert again.value.field == "schedule.timezone"


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Asia/Taipei", "Etc/GMT+5"])
def test_good_zone(name: str) -> None:
    assert zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (Interval(0, at("2026-01-01T00:00Z")), "schedule.interval_seconds"),
        (Interval(-5, at("2026-01-01T00:00Z")), "schedule.interval_seconds"),
        (Interval(True, at("2026-01-01T00:00Z")), "schedule.interval_seconds"),
        (Interval(1.5, at("2026-01-01T00:00Z")), "schedule.interval_seconds"),  # type: ignore[arg-type]
        (Interval(60, datetime(2026, 1, 1)), "schedule.anchor"),
        (OneTime(datetime(2026, 1, 1)), "schedule.at"),
        (OneTime("2026-01-01T00:00Z"), "schedule.at"),  # type: ignore[arg-type]
        (Cron(5), "schedule.cron"),  # type: ignore[arg-type]
        (Cron("* * * * *", None), "schedule.timezone"),  # type: ignore[arg-type]
        ("* * * * *", "schedule"),
    ],
)
def test_bad_schedule(schedule: Schedule, field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate(schedule)
    assert caught.value.field == field


def test_schedule_error_shape() -> None:
    error = ScheduleError("schedule.cron", "expected 5 fields")
    assert isinstance(error, ValueError)
    assert (error.field, error.message) == ("schedule.cron", "expected 5 fields")
    assert str(error) == "schedule.cron: expected 5 fields"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.message, str(copy)) == (error.field, error.message, str(error))


@pytest.mark.parametrize(
    ("window", "field"),
    [
        (Window(start_at=datetime(2026, 1, 1)), "start_at"),
        (Window(end_at=datetime(2026, 1, 1)), "end_at"),
        (Window(at("2026-01-02T00:00Z"), at("2026-01-01T00:00Z")), "end_at"),
        (Window(max_executions=0), "max_executions"),
        (Window(max_executions=-1), "max_executions"),
        (Window(max_executions=True), "max_executions"),
    ],
)
def test_bad_window(window: Window, field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_window(window)
    assert caught.value.field == field


def test_good_window() -> None:
    validate_window(Window())
    validate_window(Window(at("2026-01-01T00:00Z"), at("2026-01-01T00:00Z"), 1))


# --------------------------------------------------------------------------- interval, one time

ANCHOR = "2026-01-01T00:00Z"


@pytest.mark.parametrize(
    ("interval_seconds", "after", "expected"),
    [
        (60, "2025-12-31T23:59:59Z", ANCHOR),
        (60, "2020-01-01T00:00Z", ANCHOR),
        (60, ANCHOR, "2026-01-01T00:01Z"),
        (60, "2026-01-01T00:00:59.999999+00:00", "2026-01-01T00:01Z"),
        (60, "2026-01-01T00:01Z", "2026-01-01T00:02Z"),
        (1, "2026-01-01T00:00:00.000001+00:00", "2026-01-01T00:00:01Z"),
        (7, "2026-01-01T00:01:00Z", "2026-01-01T00:01:03Z"),
        (86400, "2026-03-08T12:00Z", "2026-03-09T00:00Z"),  # real time: DST does not apply
        (3600, "2040-06-30T12:30Z", "2040-06-30T13:00Z"),
        (7, "2040-01-01T00:00Z", "2040-01-01T00:00:03Z"),  # 441,763,200 s is 7 * k + 4
    ],
)
def test_interval(interval_seconds: int, after: str, expected: str) -> None:
    schedule = Interval(interval_seconds, at(ANCHOR))
    validate(schedule)
    assert next_fire_time(schedule, at(after)) == at(expected)


def test_interval_non_utc_anchor() -> None:
    anchor = datetime(2026, 1, 1, 8, 0, tzinfo=ZoneInfo("Asia/Taipei"))
    result = next_fire_time(Interval(3600, anchor), at("2026-01-01T00:30Z"))
    assert result == at("2026-01-01T01:00Z")
    assert result is not None and result.tzinfo is UTC


@pytest.mark.parametrize(
    ("when", "after", "expected"),
    [
        ("2026-05-01T12:00Z", "2026-05-01T11:59:59Z", "2026-05-01T12:00Z"),
        ("2026-05-01T12:00Z", "2026-05-01T12:00Z", None),
        ("2026-05-01T12:00Z", "2026-06-01T00:00Z", None),
        ("2026-05-01T20:00+08:00", "2026-05-01T00:00Z", "2026-05-01T12:00Z"),
    ],
)
def test_one_time(when: str, after: str, expected: str | None) -> None:
    result = next_fire_time(OneTime(at(when)), at(after))
    assert result == (None if expected is None else at(expected))


# --------------------------------------------------------------------------- windows

HOURLY = Cron("0 * * * *")
EVERY_HOUR = Interval(3600, at(ANCHOR))


@pytest.mark.parametrize(
    ("schedule", "after", "window", "so_far", "expected"),
    [
        (HOURLY, "2026-01-01T01:00Z", Window(), 0, "2026-01-01T02:00Z"),
        (HOURLY, "2026-01-01T01:00Z", Window(start_at=at("2026-01-01T05:00Z")), 0, "05:00"),
        (HOURLY, "2026-01-01T01:00Z", Window(start_at=at("2026-01-01T05:01Z")), 0, "06:00"),
        (HOURLY, "2026-01-01T07:00Z", Window(start_at=at("2026-01-01T05:00Z")), 0, "08:00"),
        (EVERY_HOUR, "2026-01-01T01:00Z", Window(start_at=at("2026-01-01T05:30Z")), 0, "06:00"),
        (EVERY_HOUR, "2026-01-01T01:00Z", Window(start_at=at("2026-01-01T05:00Z")), 0, "05:00"),
        (HOURLY, "2026-01-01T01:00Z", Window(end_at=at("2026-01-01T02:00Z")), 0, "02:00"),
        (HOURLY, "2026-01-01T01:00Z", Window(end_at=at("2026-01-01T01:59Z")), 0, None),
        (HOURLY, "2026-01-01T03:00Z", Window(end_at=at("2026-01-01T02:00Z")), 0, None),
        (HOURLY, "2026-01-01T01:00Z", Window(max_executions=3), 2, "02:00"),
        (HOURLY, "2026-01-01T01:00Z", Window(max_executions=3), 3, None),
        (HOURLY, "2026-01-01T01:00Z", Window(max_executions=3), 4, None),
        (OneTime(at("2026-01-01T04:00Z")), ANCHOR, Window(end_at=at("2026-01-01T03:00Z")), 0, None),
        (
            OneTime(at("2026-01-01T04:00Z")),
            ANCHOR,
            Window(start_at=at("2026-01-01T05:00Z")),
            0,
            None,
        ),
    ],
)
def test_next_occurrence(
    schedule: Schedule, after: str, window: Window, so_far: int, expected: str | None
) -> None:
    result = next_occurrence(schedule, at(after), window, so_far)
    if expected is None:
        assert result is None
    else:
        full = expected if "T" in expected else f"2026-01-01T{expected}Z"
        assert result == at(full)


@pytest.mark.parametrize(
    ("schedule", "now", "window", "expected"),
    [
        (OneTime(at("2026-01-01T04:00Z")), "2026-01-01T04:00Z", Window(), "2026-01-01T04:00Z"),
        (OneTime(at("2026-01-01T04:00Z")), "2026-01-01T04:00:01Z", Window(), None),
        (Interval(60, at("2026-01-01T04:00Z")), "2026-01-01T04:00Z", Window(), "2026-01-01T04:00Z"),
        (Interval(60, at("2026-01-01T04:00Z")), "2026-01-01T03:00Z", Window(), "2026-01-01T04:00Z"),
        (Interval(60, at("2026-01-01T04:00Z")), "2026-01-01T04:00:30Z", Window(), "04:01"),
        (HOURLY, "2026-01-01T04:00Z", Window(), "2026-01-01T04:00Z"),
        (HOURLY, "2026-01-01T04:00:00.000001+00:00", Window(), "2026-01-01T05:00Z"),
        (HOURLY, "2026-01-01T04:00Z", Window(start_at=at("2026-01-01T06:00Z")), "06:00"),
        (HOURLY, "2026-01-01T04:00Z", Window(end_at=at("2026-01-01T03:00Z")), None),
        (HOURLY, "2026-01-01T04:00Z", Window(max_executions=1), "04:00"),
    ],
)
def test_first_occurrence(
    schedule: Schedule, now: str, window: Window, expected: str | None
) -> None:
    result = first_occurrence(schedule, at(now), window)
    if expected is None:
        assert result is None
    else:
        full = expected if "T" in expected else f"2026-01-01T{expected}Z"
        assert result == at(full)


def test_upcoming() -> None:
    after = at("2026-01-01T00:30Z")
    assert [fmt(t) for t in upcoming(HOURLY, after, Window(), 3)] == [
        "2026-01-01T01:00Z",
        "2026-01-01T02:00Z",
        "2026-01-01T03:00Z",
    ]
    assert len(upcoming(HOURLY, after, Window(max_executions=5), 10)) == 5
    assert len(upcoming(HOURLY, after, Window(max_executions=5), 10, occurrences_so_far=4)) == 1
    assert upcoming(HOURLY, after, Window(end_at=at("2026-01-01T02:30Z")), 10) == [
        at("2026-01-01T01:00Z"),
        at("2026-01-01T02:00Z"),
    ]
    assert upcoming(OneTime(at("2026-01-02T00:00Z")), after, Window(), 5) == [
        at("2026-01-02T00:00Z")
    ]
    assert upcoming(HOURLY, after, Window(), 0) == []
    with pytest.raises(ValueError):
        upcoming(HOURLY, after, Window(), -1)


# --------------------------------------------------------------------------- properties

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Taipei",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Pacific/Chatham",
    "Antarctica/Troll",
    "Pacific/Apia",
]
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2040, 1, 1, tzinfo=UTC)


def _offset_at(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


@cache
def transitions(name: str) -> list[datetime]:
    """Offset changes of a zone between 2000 and 2040, found by probing every 12 hours."""
    tz = ZoneInfo(name)
    found = []
    probe, probe_offset = EARLIEST, _offset_at(tz, EARLIEST)
    while probe < LATEST:
        following = probe + timedelta(hours=12)
        following_offset = _offset_at(tz, following)
        if following_offset != probe_offset:
            low, high = probe, following
            while high - low > timedelta(seconds=1):
                middle = (low + (high - low) / 2).replace(microsecond=0)
                if _offset_at(tz, middle) == probe_offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
        probe, probe_offset = following, following_offset
    return found


@st.composite
def zone_and_base(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and a base instant, half the time within a day or so of an offset change."""
    name = draw(st.sampled_from(ZONES))
    changes = transitions(name)
    if len(changes) > 0 and draw(st.booleans()):
        centre = draw(st.sampled_from(changes))
        seconds = draw(st.integers(-30 * 3600, 4 * 3600))
    else:
        centre = EARLIEST
        seconds = draw(st.integers(0, int((LATEST - EARLIEST).total_seconds())))
    microseconds = draw(st.sampled_from([0, 0, 1, 500_000, 999_999]))
    return name, centre + timedelta(seconds=seconds, microseconds=microseconds)


MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@st.composite
def cron_field(
    draw: st.DrawFn,
    low: int,
    high: int,
    names: list[str] | None = None,
    name_base: int = 0,
    tokens: st.SearchStrategy[str] | None = None,
) -> str:
    """One cron field built from the grammar: *, */n, and lists of a, a-b, a-b/n, a/n
    (and, given `tokens`, the day tokens such as L, 15W or 5#2 among them)."""

    def value(number: int) -> str:
        if names is not None and 0 <= number - name_base < len(names) and draw(st.booleans()):
            text = names[number - name_base]  # 7 stays a number: SUN is 0
            return draw(st.sampled_from([text, text.lower(), text.title()]))
        return str(number)

    def item() -> str:
        kinds = ["one", "range", "range-step", "open-step"] + (
            ["token"] * 2 if tokens is not None else []
        )
        kind = draw(st.sampled_from(kinds))
        if kind == "token":
            assert tokens is not None
            return draw(tokens)
        first, second = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2)))
        step = draw(st.integers(1, high - low + 1))
        if kind == "one":
            return value(first)
        if kind == "range":
            return f"{value(first)}-{value(second)}"
        if kind == "range-step":
            return f"{value(first)}-{value(second)}/{step}"
        return f"{value(first)}/{step}"

    shape = draw(st.sampled_from(["star", "star-step", "list"]))
    if shape == "star":
        return "*"
    if shape == "star-step":
        return f"*/{draw(st.integers(1, high - low + 1))}"
    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


minute_fields = cron_field(0, 59)
hour_fields = cron_field(0, 23)
dom_fields = cron_field(1, 31)
month_fields = cron_field(1, 12, MONTH_NAMES, name_base=1)
dow_fields = cron_field(0, 7, DOW_NAMES)
dom_tokens = st.one_of(
    st.just("L"),
    st.just("LW"),
    st.integers(1, 30).map(lambda n: f"L-{n}"),
    st.integers(1, 31).map(lambda n: f"{n}W"),
)
dow_tokens = st.one_of(
    st.builds(lambda d, n: f"{d}#{n}", st.integers(0, 7), st.integers(1, 5)),
    st.builds(lambda d: f"{d}L", st.integers(0, 7)),
    st.builds(lambda d, n: f"{d}#{n}", st.sampled_from(DOW_NAMES), st.integers(1, 5)),
)
dom_fields_with_tokens = cron_field(1, 31, tokens=dom_tokens)
dow_fields_with_tokens = cron_field(0, 7, DOW_NAMES, tokens=dow_tokens)

# Month and day-of-month "*": the next fire is always within eight days.
frequent_expressions = st.builds(
    lambda minute, hour, dow: f"{minute} {hour} * * {dow}", minute_fields, hour_fields, dow_fields
)
any_expressions = st.builds(
    lambda *fields: " ".join(fields),
    minute_fields,
    hour_fields,
    dom_fields,
    month_fields,
    dow_fields,
)
token_expressions = st.builds(
    lambda *fields: " ".join(fields),
    minute_fields,
    hour_fields,
    dom_fields_with_tokens,
    month_fields,
    dow_fields_with_tokens,
)


def oracle_matches(spec: CronSpec, wall: datetime) -> bool:
    """The cron rule itself, straight from the parsed sets."""
    if not (wall.minute in spec.minutes and wall.hour in spec.hours and wall.month in spec.months):
        return False
    return oracle_day_matches(spec, wall.date())


def oracle_day_matches(spec: CronSpec, day: date) -> bool:
    dom = day.day in spec.days_of_month or oracle_dom_token(spec, day)
    dow = day.isoweekday() % 7 in spec.days_of_week or oracle_dow_token(spec, day)
    return (dom and dow) if (spec.dom_star or spec.dow_star) else (dom or dow)


def oracle_dom_token(spec: CronSpec, day: date) -> bool:
    """L-n, nW and LW from their definitions, with dates (LW is kept as 31W)."""
    last = calendar.monthrange(day.year, day.month)[1]
    if any(day.day == last - n for n in spec.last_days):
        return True
    weekdays = [d for d in range(1, last + 1) if date(day.year, day.month, d).weekday() < 5]
    # The weekday of the month nearest day n (a day past the end counts as the last).
    return any(
        min(weekdays, key=lambda d: abs(d - min(n, last))) == day.day for n in spec.nearest_weekdays
    )


def oracle_dow_token(spec: CronSpec, day: date) -> bool:
    """d#n and dL by counting the same weekdays of the month before and after the day."""
    weekday = day.isoweekday() % 7
    earlier = sum(
        1 for d in range(1, day.day) if date(day.year, day.month, d).weekday() == day.weekday()
    )
    later = (day + timedelta(days=7)).month != day.month
    return (weekday, earlier + 1) in spec.nth_weekdays or (later and weekday in spec.last_weekdays)


def oracle_is_slot(spec: CronSpec, tz: ZoneInfo, instant: datetime) -> bool:
    """Whether the DST rule fires at this whole UTC minute."""
    local = instant.astimezone(tz)
    wall = local.replace(tzinfo=None)
    # Rule 2: a repeated wall time fires on its second pass only for a `*` hour field.
    if oracle_matches(spec, wall) and (local.fold == 0 or spec.hour_star):
        return True
    # Rule 1: at the instant the clock jumps forward, fire if any skipped wall time matches.
    jump = _offset_at(tz, instant) - _offset_at(tz, instant - timedelta(seconds=1))
    skipped = wall - jump
    while skipped < wall:
        if oracle_matches(spec, skipped):
            return True
        skipped += MINUTE
    return False


def oracle_slots(spec: CronSpec, tz: ZoneInfo, base: datetime, last: datetime) -> list[datetime]:
    """Every firing UTC minute in (base, last], walking real time."""
    found = []
    instant = base.replace(second=0, microsecond=0) + MINUTE
    while instant <= last:
        # Skip a whole day or hour when no local date it touches can match and its offset
        # is constant (so it holds no jump either); otherwise look at every minute.
        for chunk in (timedelta(days=1), timedelta(hours=1)):
            chunk_end = instant + chunk - MINUTE
            if (
                chunk_end <= last
                and _offset_at(tz, instant - timedelta(seconds=1)) == _offset_at(tz, chunk_end)
                and not oracle_day_matches(spec, instant.astimezone(tz).date())
                and not oracle_day_matches(spec, chunk_end.astimezone(tz).date())
            ):
                instant += chunk
                break
        else:
            if oracle_is_slot(spec, tz, instant):
                found.append(instant)
            instant += MINUTE
    return found


def fire_chain(schedule: Cron, base: datetime, until: datetime, limit: int) -> list[datetime]:
    """Iterate next_fire_time from base until past `until` (or `limit` fires)."""
    chain: list[datetime] = []
    cursor = base
    while len(chain) < limit:
        instant = next_fire_time(schedule, cursor)
        assert instant is not None
        assert instant.tzinfo is not None and instant.utcoffset() == timedelta(0)
        assert instant > cursor
        chain.append(instant)
        if instant > until:
            break
        cursor = instant
    return chain


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=frequent_expressions, place=zone_and_base())
def test_cron_fires_exactly_on_slots(expression: str, place: tuple[str, datetime]) -> None:
    """Over about a day, the fires are exactly the oracle's slots: none skipped, none extra."""
    name, base = place
    spec = parse_cron(expression)
    chain = fire_chain(Cron(expression, name), base, base + timedelta(hours=30), limit=2000)
    assert chain == oracle_slots(spec, ZoneInfo(name), base, chain[-1])


def check_next_three_fires(expression: str, place: tuple[str, datetime]) -> None:
    """The next three fires of ``expression`` from ``place`` are the oracle's (an
    expression refused as never firing is not a case)."""
    name, base = place
    try:
        spec = parse_cron(expression)
    except ScheduleError as error:
        assert "never fires" in error.message
        assume(False)
        raise
    chain = fire_chain(Cron(expression, name), base, base, limit=3)
    assert chain == oracle_slots(spec, ZoneInfo(name), base, chain[-1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=any_expressions, place=zone_and_base())
def test_cron_with_restricted_days(expression: str, place: tuple[str, datetime]) -> None:
    """Months and days restricted too: the next three fires, checked over up to decades."""
    check_next_three_fires(expression, place)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=token_expressions, place=zone_and_base())
def test_cron_with_day_tokens(expression: str, place: tuple[str, datetime]) -> None:
    """L, L-n, nW, LW, d#n and dL among the day fields' items: the next three fires, by
    the oracle's definitions of the tokens, across offset changes too."""
    check_next_three_fires(expression, place)


@settings(max_examples=200, deadline=None)
@given(
    interval_seconds=st.one_of(st.integers(1, 120), st.integers(1, 10**8)),
    anchor=st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
    after=st.datetimes(datetime(1999, 1, 1), datetime(2041, 1, 1), timezones=st.just(UTC)),
)
def test_interval_is_anchor_plus_multiple(
    interval_seconds: int, anchor: datetime, after: datetime
) -> None:
    result = next_fire_time(Interval(interval_seconds, anchor), after)
    assert result is not None
    assert result.tzinfo is UTC
    assert result > after
    step = timedelta(seconds=interval_seconds)
    k, remainder = divmod(result - anchor, step)
    assert remainder == timedelta(0)
    assert k >= 0
    assert k == 0 or result - step <= after  # the first such instant, not a later one


# --------------------------------------------------------------------------- density

YEAR = timedelta(days=366)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("expression", "timezone_name", "expected"),
    [
        ("* * * * *", "UTC", timedelta(minutes=1)),
        ("*/5 * * * *", "Asia/Taipei", timedelta(minutes=5)),
        ("0,50 * * * *", "UTC", timedelta(minutes=10)),  # 50 -> next hour's 0
        ("0 9,10 * * *", "UTC", timedelta(hours=1)),
        ("45 0,23 * * *", "UTC", timedelta(hours=1)),  # 23:45 -> 00:45 the next day
        ("0 0,23 1,31 1,12 *", "UTC", timedelta(hours=1)),  # only 31 Dec -> 1 Jan
        ("0 0,23 * * 1,3,5", "UTC", timedelta(hours=23)),  # no two days in a row
        ("0 9 * * 1-5", "Asia/Taipei", None),
        ("0 0 29 2 *", "UTC", None),
        ("0 * * * *", "Europe/Berlin", timedelta(hours=1)),
        ("0 0 * * *", "Europe/Berlin", timedelta(hours=23)),  # the spring-forward day
        ("20 * * * *", "Australia/Lord_Howe", timedelta(minutes=40)),  # 01:20 -> the jump
        ("45 * * * *", "America/Santiago", timedelta(minutes=15)),  # 23:45 -> jump at 24:00
        ("0 0,23 L,1 * *", "UTC", timedelta(hours=1)),  # the last day 23:00 -> the 1st 00:00
        ("0 0,23 L-1,L * *", "UTC", timedelta(hours=1)),
        ("0 0,23 * * 5L,6#1", "UTC", timedelta(hours=1)),  # a month ending on its last Friday
        ("0 0,23 * * 1#1", "UTC", timedelta(hours=23)),  # one day a month
        ("0 0,23 15W * *", "UTC", timedelta(hours=23)),
        ("0 0,23 1W,LW * *", "UTC", timedelta(hours=1)),  # LW on the 31st, 1W on the 1st
    ],
)
def test_shortest_gap_of_a_cron(
    expression: str, timezone_name: str, expected: timedelta | None
) -> None:
    start = at("2026-01-01T00:00Z")
    assert shortest_gap(Cron(expression, timezone_name), start, start + YEAR) == expected


def test_shortest_gap_of_intervals_one_times_and_a_bound() -> None:
    start = at("2026-01-01T00:00Z")
    assert shortest_gap(Interval(30, start), start, start + YEAR) == timedelta(seconds=30)
    assert shortest_gap(Interval(86400, start), start, start + YEAR) is None
    assert shortest_gap(OneTime(start), start, start + YEAR) is None
    minute = timedelta(minutes=1)
    assert shortest_gap(Cron("* * * * *"), start, start + YEAR, below=minute) is None
    assert shortest_gap(Cron("0,30 * * * *"), start, start + YEAR, below=minute) is None
    with pytest.raises(ValueError, match="at most a day"):
        shortest_gap(Interval(30, start), start, start + YEAR, below=2 * DAY)


def consecutive_gaps(schedule: Cron, base: datetime, until: datetime) -> list[timedelta]:
    chain = fire_chain(schedule, base, until, limit=3000)
    return [b - a for a, b in pairwise(chain) if b <= until]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=frequent_expressions, place=zone_and_base())
def test_no_two_fires_are_closer_than_the_shortest_gap(
    expression: str, place: tuple[str, datetime]
) -> None:
    """Walking the real fires over about a day (often across an offset change), no two
    consecutive ones are closer than the shortest gap (nor than a day when it is None)."""
    name, base = place
    schedule = Cron(expression, name)
    gap = shortest_gap(schedule, base, base + 2 * DAY)
    walked = consecutive_gaps(schedule, base, base + timedelta(hours=30))
    assert all(g >= (DAY if gap is None else gap) for g in walked)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minute=minute_fields, hour=hour_fields, place=zone_and_base())
def test_the_shortest_gap_of_a_daily_pattern_is_met(
    minute: str, hour: str, place: tuple[str, datetime]
) -> None:
    """A cron that fires every day shows its shortest gap within any two days: the walk
    over four days around the window finds it exactly where the zone keeps one offset,
    and never finds less than it inside the window."""
    name, base = place
    schedule = Cron(f"{minute} {hour} * * *", name)
    gap = shortest_gap(schedule, base, base + 2 * DAY)
    inside = consecutive_gaps(schedule, base, base + 2 * DAY)
    around = consecutive_gaps(schedule, base - DAY, base + 3 * DAY)
    bound = DAY if gap is None else gap
    assert min(inside) >= bound
    assert min(around) <= bound or gap is None
    if not any(base - DAY <= change <= base + 3 * DAY for change in transitions(name)):
        assert gap == (min(inside) if min(inside) < DAY else None)


DST_ZONES = [name for name in ZONES if len(transitions(name)) > 20]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minute=st.integers(0, 59),
    hours=st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True),
    name=st.sampled_from(DST_ZONES),
    change=st.integers(0, 10_000),
    before=st.integers(0, 26 * 3600),
)
def test_a_gap_shortened_by_an_offset_change_is_found(
    minute: int, hours: list[int], name: str, change: int, before: int
) -> None:
    """A few fires a day, across an offset change: the walk finds no gap below the
    shortest gap, and one equal to it (the change's own, when it is the shortest)."""
    changes = transitions(name)
    centre = changes[change % len(changes)]
    base = centre - timedelta(seconds=before)
    schedule = Cron(f"{minute} {','.join(map(str, hours))} * * *", name)
    gap = shortest_gap(schedule, base, base + 2 * DAY)
    bound = DAY if gap is None else gap
    # A 25-hour day can leave a daily schedule one fire in the window: nothing to compare.
    assert min(consecutive_gaps(schedule, base, base + 2 * DAY), default=bound) >= bound
    assert min(consecutive_gaps(schedule, base - DAY, base + 3 * DAY)) <= bound or gap is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dom=dom_fields_with_tokens, dow=dow_fields_with_tokens, start=st.integers(0, 30 * 365))
def test_day_tokens_never_fire_closer_than_the_shortest_gap(dom: str, dow: str, start: int) -> None:
    """At 00:00 and 23:00, two fires an hour apart need two matching days in a row: over
    a year of fires, that never happens unless the shortest gap says it can."""
    expression = f"0 0,23 {dom} * {dow}"
    try:
        parse_cron(expression)
    except ScheduleError:
        assume(False)
    base = EARLIEST + timedelta(days=start)
    schedule = Cron(expression)
    gap = shortest_gap(schedule, base, base + 2 * DAY)
    walked = consecutive_gaps(schedule, base, base + YEAR)
    assert all(g >= (DAY if gap is None else gap) for g in walked)
