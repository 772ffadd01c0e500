"""The cron syntax people type beyond the five plain fields: the ``@`` macros and the day
tokens ``L``, ``L-n``, ``nW``, ``LW`` (day of month), ``d#n`` and ``dL`` (day of week).

Tables of hand-checked fire times (leap years, months of 28 to 31 days, daylight-saving
days) and refusals, then properties that check every fire against the definition of its
token, computed with dates rather than with the module's arithmetic. The walk through
real time with the daylight-saving rule is checked against the oracle of
``test_schedules`` (``test_cron_with_day_tokens``).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskhub.core.cron import MACROS, expand_macro, parse_cron
from taskhub.core.errors import ScheduleError
from taskhub.core.schedules import Cron, next_fire_time, validate


def at(text: str) -> datetime:
    value = datetime.fromisoformat(text if "T" in text else f"{text}T00:00Z")
    return value.astimezone(UTC)


def fires(expression: str, zone: str, after: str, count: int) -> list[str]:
    found: list[str] = []
    cursor = at(after)
    for _ in range(count):
        instant = next_fire_time(Cron(expression, zone), cursor)
        assert instant is not None
        found.append(instant.strftime("%Y-%m-%dT%H:%MZ"))
        cursor = instant
    return found


def midnights(*days: str) -> list[str]:
    return [f"{day}T00:00Z" for day in days]


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        pytest.param(
            "0 9 L * *",
            "UTC",
            "2027-12-15",
            [
                "2027-12-31T09:00Z",
                "2028-01-31T09:00Z",
                "2028-02-29T09:00Z",
                "2028-03-31T09:00Z",
                "2028-04-30T09:00Z",
            ],
            id="last-day-31-29-30",
        ),
        pytest.param(
            "0 9 L 2 *",
            "UTC",
            "2027-03-01",
            ["2028-02-29T09:00Z", "2029-02-28T09:00Z"],
            id="last-day-of-february-leap-and-not",
        ),
        pytest.param(
            "0 0 L-1 * *",
            "UTC",
            "2028-01-01",
            midnights("2028-01-30", "2028-02-28", "2028-03-30", "2028-04-29"),
            id="day-before-last",
        ),
        pytest.param(
            "0 0 L-30 * *",
            "UTC",
            "2026-01-02",
            midnights("2026-03-01", "2026-05-01", "2026-07-01", "2026-08-01"),
            id="L-30-only-in-31-day-months",
        ),
        pytest.param(
            "0 0 L-28 2 *",
            "UTC",
            "2026-01-01",
            midnights("2028-02-01", "2032-02-01"),
            id="L-28-of-february-only-in-leap-years",
        ),
        pytest.param(
            "0 0 15W * *",
            "UTC",
            "2026-02-01",
            midnights("2026-02-16", "2026-03-16", "2026-04-15", "2026-05-15"),
            id="15W-sunday-moves-to-monday",
        ),
        pytest.param(
            "0 0 15W 8 *",
            "UTC",
            "2026-01-01",
            midnights("2026-08-14"),
            id="15W-saturday-moves-to-friday",
        ),
        pytest.param(
            "0 0 31W * *",
            "UTC",
            "2025-11-01",
            midnights("2025-11-28", "2025-12-31", "2026-01-30", "2026-02-27"),
            id="31W-in-a-30-day-month-is-nearest-its-last-day",
        ),
        pytest.param(
            "0 0 1W * *",
            "UTC",
            "2026-07-15",
            midnights("2026-08-03", "2026-09-01", "2026-10-01", "2026-11-02"),
            id="1W-saturday-the-1st-moves-to-monday-the-3rd",
        ),
        pytest.param(
            "0 0 LW * *",
            "UTC",
            "2026-01-01",
            midnights("2026-01-30", "2026-02-27", "2026-03-31", "2026-04-30", "2026-05-29"),
            id="last-weekday",
        ),
        pytest.param(
            "0 0 * * 5#5",
            "UTC",
            "2026-01-01",
            midnights("2026-01-30", "2026-05-29", "2026-07-31", "2026-10-30"),
            id="fifth-friday-skips-months-without-one",
        ),
        pytest.param(
            "0 0 * 2 1#5",
            "UTC",
            "2017-01-01",
            midnights("2044-02-29"),
            id="fifth-monday-of-february-a-leap-day",
        ),
        pytest.param(
            "0 0 * * 1#2",
            "UTC",
            "2026-01-01",
            midnights("2026-01-12", "2026-02-09", "2026-03-09", "2026-04-13"),
            id="second-monday",
        ),
        pytest.param(
            "0 0 * * sun#1",
            "UTC",
            "2026-01-01",
            midnights("2026-01-04", "2026-02-01", "2026-03-01", "2026-04-05"),
            id="first-sunday-by-name",
        ),
        pytest.param(
            "0 0 * * 5L",
            "UTC",
            "2026-01-01",
            midnights("2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"),
            id="last-friday",
        ),
        pytest.param(
            "0 0 * * 7L",
            "UTC",
            "2026-01-01",
            midnights("2026-01-25", "2026-02-22", "2026-03-29"),
            id="last-sunday-as-7",
        ),
        pytest.param(
            "0 0 L,15 * *",
            "UTC",
            "2026-01-01",
            midnights("2026-01-15", "2026-01-31", "2026-02-15", "2026-02-28"),
            id="list-of-L-and-a-day",
        ),
        pytest.param(
            "0 0 * * 1#1,5L",
            "UTC",
            "2026-01-01",
            midnights("2026-01-05", "2026-01-30", "2026-02-02", "2026-02-27"),
            id="list-of-first-monday-and-last-friday",
        ),
        pytest.param(
            "0 0 L * 1#1",
            "UTC",
            "2026-01-01",
            midnights("2026-01-05", "2026-01-31", "2026-02-02", "2026-02-28"),
            id="both-day-fields-restricted-either-matches",
        ),
        pytest.param(
            "0 0 */2 * 5L",
            "UTC",
            "2026-01-01",
            midnights("2026-02-27", "2026-03-27", "2026-05-29"),
            id="star-step-day-of-month-and-last-friday-both-match",
        ),
        pytest.param(
            "59 23 L 12 *", "UTC", "2026-01-01", ["2026-12-31T23:59Z"], id="last-minute-of-year"
        ),
        # Daylight saving: the tokens pick the day, the usual rule the instant.
        # America/New_York 2026-03-08 (2nd Sunday of March): 02:00 EST -> 03:00 EDT at 07:00Z;
        # 2027-03-14 likewise.
        pytest.param(
            "30 2 * 3 0#2",
            "America/New_York",
            "2026-03-01",
            ["2026-03-08T07:00Z", "2027-03-14T07:00Z"],
            id="ny-second-sunday-of-march-skipped-time-fires-at-jump",
        ),
        # 2026-11-01 and 2027-11-07 (1st Sunday of November): 02:00 EDT -> 01:00 EST.
        pytest.param(
            "30 1 * 11 0#1",
            "America/New_York",
            "2026-10-01",
            ["2026-11-01T05:30Z", "2027-11-07T05:30Z"],
            id="ny-first-sunday-of-november-repeated-time-fires-once",
        ),
        pytest.param(
            "0,30 * * 11 0#1",
            "America/New_York",
            "2026-11-01T04:45Z",
            [
                "2026-11-01T05:00Z",
                "2026-11-01T05:30Z",
                "2026-11-01T06:00Z",
                "2026-11-01T06:30Z",
                "2026-11-01T07:00Z",
            ],
            id="ny-star-hour-fires-both-passes",
        ),
        # Australia/Lord_Howe, half-hour shifts: 2026-04-05 and 2027-04-04 02:00 (+11) ->
        # 01:30 (+10:30); 2026-10-04 and 2027-10-03 02:00 (+10:30) -> 02:30 (+11).
        pytest.param(
            "45 1 * 4 0#1",
            "Australia/Lord_Howe",
            "2026-04-01",
            ["2026-04-04T14:45Z", "2027-04-03T14:45Z"],
            id="lord-howe-first-sunday-of-april-fires-once",
        ),
        pytest.param(
            "15 2 * 10 0#1",
            "Australia/Lord_Howe",
            "2026-09-01",
            ["2026-10-03T15:30Z", "2027-10-02T15:30Z"],
            id="lord-howe-first-sunday-of-october-fires-at-jump",
        ),
        pytest.param(
            "0 0 L * *",
            "Asia/Taipei",
            "2026-01-01",
            ["2026-01-30T16:00Z", "2026-02-27T16:00Z"],
            id="taipei-last-day-is-previous-utc-day",
        ),
    ],
)
def test_day_tokens(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert fires(expression, zone, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("@yearly", "2026-06-01", midnights("2027-01-01", "2028-01-01")),
        ("@annually", "2026-06-01", midnights("2027-01-01")),
        ("@monthly", "2026-01-15", midnights("2026-02-01", "2026-03-01")),
        ("@weekly", "2026-01-01", midnights("2026-01-04", "2026-01-11")),
        ("@daily", "2026-01-01", midnights("2026-01-02", "2026-01-03")),
        ("@midnight", "2026-01-01", midnights("2026-01-02")),
        ("@hourly", "2026-01-01T00:30Z", ["2026-01-01T01:00Z", "2026-01-01T02:00Z"]),
        ("  @daily\t", "2026-01-01", midnights("2026-01-02")),
        ("@Daily", "2026-01-01", midnights("2026-01-02")),
    ],
)
def test_macros(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, "UTC", after, len(expected)) == expected


def test_macros_are_their_expansions() -> None:
    assert MACROS == {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
    for macro, fields in MACROS.items():
        assert parse_cron(macro) == parse_cron(fields)
        assert expand_macro(macro) == fields
    assert parse_cron("@hourly").hour_star
    assert expand_macro(" 0 9 * * * ") == "0 9 * * *"


def test_token_spellings_that_mean_the_same() -> None:
    assert parse_cron("0 0 LW * *") == parse_cron("0 0 31W * *")
    assert parse_cron("0 0 * * 7L") == parse_cron("0 0 * * 0L") == parse_cron("0 0 * * SunL")
    assert parse_cron("0 0 * * 7#2") == parse_cron("0 0 * * SUN#2")
    assert parse_cron("0 0 l,15 * *") == parse_cron("0 0 15,L * *")
    spec = parse_cron("0 0 1,L-2,15W * 1#1,5L,MON")
    assert spec.days_of_month == {1} and spec.days_of_week == {1}
    assert (spec.last_days, spec.nearest_weekdays) == (frozenset({2}), frozenset({15}))
    assert (spec.nth_weekdays, spec.last_weekdays) == (frozenset({(1, 1)}), frozenset({5}))
    assert not (spec.dom_star or spec.dow_star)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("@reboot", "'@reboot' is not supported"),
        ("@every 5m", "unknown macro '@every'"),
        ("@", "unknown macro '@'"),
        ("@daily 5", "stands alone"),
        ("0 0 L-0 * *", "day-of-month field: in 'L-0' (days before the last day) n must be 1-30"),
        ("0 0 L-31 * *", "n must be 1-30"),
        ("0 0 L- * *", "n must be 1-30"),
        ("0 0 0W * *", "day-of-month field: in '0W' (nearest weekday) the day must be 1-31"),
        ("0 0 32W * *", "the day must be 1-31"),
        ("0 0 * * 5#0", "day-of-week field: in '5#0' (nth weekday) n must be 1-5"),
        ("0 0 * * 5#6", "n must be 1-5"),
        ("0 0 * * 5#", "n must be 1-5"),
        ("0 0 * * 8#1", "day-of-week field: 8 is out of range 0-7"),
        ("0 0 * * FUN#1", "unknown value 'FUN'"),
        ("0 0 * * 8L", "day-of-week field: 8 is out of range"),
        ("0 0 * * L", "day-of-week field: 'L' alone is not accepted"),
        ("0 0 5L * *", "day-of-month field: '5L' belongs in the day-of-week field"),
        ("0 0 5#2 * *", "day-of-month field: '5#2' belongs in the day-of-week field"),
        ("0 0 * * 15W", "day-of-week field: '15W' belongs in the day-of-month field"),
        ("0 0 * * LW", "day-of-week field: 'LW' belongs in the day-of-month field"),
        ("0 0 * * L-2", "belongs in the day-of-month field"),
        ("0 0 L/2 * *", "day-of-month field: 'L/2': L, L-n, nW and LW are written alone"),
        ("0 0 1W-5W * *", "day-of-month field: '1W-5W': L, L-n, nW and LW are written alone"),
        ("0 0 L-5-10 * *", "written alone"),
        ("0 0 W * *", "written alone"),
        ("0 0 * * 1-5#2", "day-of-week field: '1-5#2': d#n and dL are written alone"),
        ("0 0 * * 5L/2", "written alone"),
        ("0 0 * * #2", "written alone"),
        ("L 0 * * *", "minute field: unknown value 'L'"),
        ("0 0 * 5#2 *", "month field: '5#2': '#' (nth weekday) is for day-of-week"),
        ("0 0 L-29 2 *", "never fires"),
        ("0 0 L-30 4,6,9,11 *", "never fires"),
        ("0 0 15W * */6", "never fires"),  # a weekday, yet only Sundays and Saturdays
        ("0 0 */31 * 5L", "never fires"),  # the 1st is never a month's last Friday
    ],
)
def test_refused(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate(Cron(expression))
    assert caught.value.field == "schedule.cron"
    assert message in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 30W 2 *",  # nearest weekday to February's last day
        "0 0 L-27 2 *",
        "0 0 * 2 5#5",  # leap Februaries that begin on a Friday
        "0 0 LW * */6,1",
        "0 0 1 * 5L",  # OR rule: the 1st, or the last Friday
    ],
)
def test_rare_but_valid(expression: str) -> None:
    validate(Cron(expression))
    assert next_fire_time(Cron(expression), at("2026-01-01")) is not None


# --------------------------------------------------------------------------- properties

# Zones whose noon never falls in a daylight-saving gap: a fire's local date is its day.
ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Taipei"]
bases = st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC))


def last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def fire_days(expression: str, zone: str, base: datetime, count: int) -> list[date]:
    """The local dates of the next `count` fires of a noon expression."""
    days: list[date] = []
    cursor = base
    for _ in range(count):
        instant = next_fire_time(Cron(expression, zone), cursor)
        assert instant is not None
        local = instant.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (12, 0)
        days.append(local.date())
        cursor = instant
    return days


def expected_days(
    base: datetime, zone: str, count: int, wanted: Callable[[date], bool]
) -> list[date]:
    """The first `count` dates after the base's that satisfy `wanted`, day by day."""
    local = base.astimezone(ZoneInfo(zone))
    day = local.date() if (local.hour, local.minute) < (12, 0) else local.date() + timedelta(1)
    found: list[date] = []
    while len(found) < count:
        if wanted(day):
            found.append(day)
        day += timedelta(days=1)
    return found


@settings(max_examples=60, deadline=None)
@given(base=bases, zone=st.sampled_from(ZONES), offset=st.integers(0, 30))
def test_L_and_L_minus_n_fire_on_that_day_of_every_month_that_has_it(
    base: datetime, zone: str, offset: int
) -> None:
    token = "L" if offset == 0 else f"L-{offset}"
    days = fire_days(f"0 12 {token} * *", zone, base, 4)
    assert all(day.day == last_day(day) - offset for day in days)
    assert days == expected_days(base, zone, 4, lambda d: d.day == last_day(d) - offset)


@settings(max_examples=60, deadline=None)
@given(base=bases, zone=st.sampled_from(ZONES), n=st.integers(1, 31))
def test_nW_is_a_weekday_within_two_days_of_n_in_the_same_month(
    base: datetime, zone: str, n: int
) -> None:
    days = fire_days(f"0 12 {n}W * *", zone, base, 4)
    for day in days:
        assert day.weekday() < 5
        assert abs(day.day - min(n, last_day(day))) <= 2
        # no weekday of the month is nearer (the month's own days only)
        nearer = [
            d
            for d in range(1, last_day(day) + 1)
            if date(day.year, day.month, d).weekday() < 5
            and abs(d - min(n, last_day(day))) < abs(day.day - min(n, last_day(day)))
        ]
        assert nearer == []
    # one fire a month, every month
    months = [(day.year, day.month) for day in days]
    assert all((b[0] * 12 + b[1]) - (a[0] * 12 + a[1]) == 1 for a, b in pairwise(months))


@settings(max_examples=60, deadline=None)
@given(base=bases, zone=st.sampled_from(ZONES))
def test_LW_is_the_last_weekday_of_the_month(base: datetime, zone: str) -> None:
    days = fire_days("0 12 LW * *", zone, base, 4)
    for day in days:
        assert day.weekday() < 5
        after = [date(day.year, day.month, d) for d in range(day.day + 1, last_day(day) + 1)]
        assert all(d.weekday() >= 5 for d in after)


@settings(max_examples=60, deadline=None)
@given(
    base=bases,
    zone=st.sampled_from(ZONES),
    weekday=st.integers(0, 7),
    n=st.integers(1, 5),
)
def test_nth_weekday_falls_on_that_weekday_in_its_week_of_the_month(
    base: datetime, zone: str, weekday: int, n: int
) -> None:
    days = fire_days(f"0 12 * * {weekday}#{n}", zone, base, 3)
    for day in days:
        assert day.isoweekday() % 7 == weekday % 7
        assert 7 * (n - 1) + 1 <= day.day <= 7 * n
    assert days == expected_days(
        base,
        zone,
        3,
        lambda d: d.isoweekday() % 7 == weekday % 7 and (d.day - 1) // 7 == n - 1,
    )


@settings(max_examples=60, deadline=None)
@given(base=bases, zone=st.sampled_from(ZONES), weekday=st.integers(0, 7))
def test_dL_is_the_last_such_weekday_of_the_month(base: datetime, zone: str, weekday: int) -> None:
    days = fire_days(f"0 12 * * {weekday}L", zone, base, 3)
    for day in days:
        assert day.isoweekday() % 7 == weekday % 7
        assert (day + timedelta(days=7)).month != day.month
    assert days == expected_days(
        base,
        zone,
        3,
        lambda d: d.isoweekday() % 7 == weekday % 7 and (d + timedelta(days=7)).month != d.month,
    )


@settings(max_examples=60, deadline=None)
@given(base=bases, zone=st.sampled_from(ZONES), macro=st.sampled_from(sorted(MACROS)))
def test_a_macro_fires_as_its_expansion(base: datetime, zone: str, macro: str) -> None:
    mine, theirs = Cron(macro, zone), Cron(MACROS[macro], zone)
    cursor_a = cursor_b = base
    for _ in range(3):
        cursor_a = next_fire_time(mine, cursor_a)  # type: ignore[assignment]
        cursor_b = next_fire_time(theirs, cursor_b)  # type: ignore[assignment]
        assert cursor_a == cursor_b is not None
