"""When a task fires: cron, fixed-interval and one-time schedules, plus the window limits.

Pure functions on timezone-aware UTC instants, so the API (validation and previews), the
discovery task (next run after a fire) and the tests all share one definition of "due".
Nothing here knows about HTTP, Celery or databases.

Cron syntax: five fields (minute hour day-of-month month day-of-week) with ``*``,
numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` to the field's
maximum), lists ``a,b-c``, the names JAN-DEC and SUN-SAT in any case, and both 0 and 7
for Sunday. When both day-of-month and day-of-week are restricted, a day matches if
either matches; otherwise both must match. As in Vixie cron, a field counts as ``*``
("not restricted") when it begins with ``*``, so ``*/2`` counts as ``*`` both for that
rule and for the hour-field exception of rule 2 below.

Daylight-saving rule:

Cron fields are matched against local wall-clock times in the task's zone:

1. A matching wall time that does not exist (clocks jump forward over it) fires once, at
   the instant the clock jumps (the first instant after the gap). Several such wall times
   in one gap collapse into that single fire, and if the first wall time after the gap
   also matches, that is the same fire (never twice at one instant).
2. A matching wall time that occurs twice (clocks fall back) fires once, at its first
   (earlier) instant — UNLESS the expression's hour field is `*` (a job that runs more
   than hourly), which then follows real time and fires at both instants. (This is Vixie
   cron's rule.)

How it is computed: for the first-pass rule, the instant of a wall time ``w`` is the first
instant at which the local clock reads ``w`` or later. That map never decreases as ``w``
grows, so the next fire is the first matching wall time above the highest wall time the
clock has shown so far, which is found by stepping through the allowed months, days,
hours and minutes (never minute by minute). Second-pass fires of a ``*`` hour field are
added only when a fall-back lies within a day of the search start. This relies on the
tz database having no two offset changes within 24 hours and no fall-back of a day or
more, which holds for every zone from 1900 to 2100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

__all__ = [
    "Cron",
    "CronSpec",
    "Interval",
    "OneTime",
    "Schedule",
    "ScheduleError",
    "Window",
    "first_occurrence",
    "next_fire_time",
    "next_occurrence",
    "parse_cron",
    "shortest_gap",
    "upcoming",
    "validate",
    "validate_window",
    "zone",
]


class ScheduleError(ValueError):
    """Bad schedule input. `field` is the dotted path of the offending field as the API names it."""

    field: str
    message: str

    def __init__(self, field: str, message: str) -> None:
        # Both go to args so the error survives pickling (Celery serialises exceptions).
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Cron:
    """Five-field cron expression evaluated in an IANA time zone."""

    expression: str
    timezone: str = "UTC"


@dataclass(frozen=True)
class Interval:
    """Fires at anchor + k * interval_seconds (k >= 0); anchored so it never drifts."""

    interval_seconds: int
    anchor: datetime


@dataclass(frozen=True)
class OneTime:
    """Fires once, at `at`."""

    at: datetime


Schedule = Cron | Interval | OneTime


@dataclass(frozen=True)
class Window:
    """Limits that apply to any schedule; None means no limit."""

    start_at: datetime | None = None
    end_at: datetime | None = None
    max_executions: int | None = None


# --------------------------------------------------------------------------- cron parsing

_MINUTE, _HOUR, _DOM, _MONTH, _DOW = range(5)
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_DOW_NAMES = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
# Longest day-of-month each month can have (February counts its leap day).
_MAX_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_QUARTZ_RE = re.compile(r"[0-9]*L|[0-9]+W|LW")  # Quartz-style day syntax we refuse
_UNSUPPORTED = {
    "L": "'L' (last day) is not supported",
    "W": "'W' (nearest weekday) is not supported",
    "#": "'#' (nth weekday) is not supported",
    "?": "'?' is not supported; use '*'",
}


def _lookup_next(allowed: frozenset[int], size: int) -> tuple[int, ...]:
    """Table of the smallest allowed value >= i (or -1), so scanning never tests value by value."""
    table = [-1] * (size + 1)
    following = -1
    for value in range(size - 1, -1, -1):
        if value in allowed:
            following = value
        table[value] = following
    return tuple(table)


@dataclass(frozen=True)
class CronSpec:
    """A validated cron expression: the allowed values of each field, Sunday as 0.

    The ``*_star`` flags record whether a field began with ``*`` (Vixie cron's notion of
    an unrestricted field), which decides the day-of-month / day-of-week OR rule and the
    fall-back exception of the DST rule.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_star: bool
    dow_star: bool
    hour_star: bool
    _next_minute: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_hour: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_month: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dom_ok: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _dow_ok: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _every_day: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_next_minute", _lookup_next(self.minutes, 60))
        object.__setattr__(self, "_next_hour", _lookup_next(self.hours, 24))
        object.__setattr__(self, "_next_month", _lookup_next(self.months, 13))
        object.__setattr__(self, "_dom_ok", tuple(d in self.days_of_month for d in range(32)))
        object.__setattr__(self, "_dow_ok", tuple(d in self.days_of_week for d in range(7)))
        all_dom = len(self.days_of_month) == 31
        all_dow = len(self.days_of_week) == 7
        and_rule = self.dom_star or self.dow_star
        every_day = (all_dom and all_dow) if and_rule else (all_dom or all_dow)
        object.__setattr__(self, "_every_day", every_day)

    def matches(self, wall: datetime) -> bool:
        """Whether a naive local wall-clock time is one of the expression's slots."""
        if wall.second or wall.microsecond:
            return False
        if not (
            wall.minute in self.minutes and wall.hour in self.hours and wall.month in self.months
        ):
            return False
        return self._day_matches(wall.day, (wall.weekday() + 1) % 7)

    def _day_matches(self, day: int, cron_weekday: int) -> bool:
        dom_ok = self._dom_ok[day]
        dow_ok = self._dow_ok[cron_weekday]
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def _next_day(self, year: int, month: int, day: int) -> int:
        """First matching day >= `day` in that month, or -1."""
        month_days = _days_in_month(year, month)
        if self._every_day:
            return day if day <= month_days else -1
        weekday_of_first = (date(year, month, 1).weekday() + 1) % 7
        for candidate in range(day, month_days + 1):
            if self._day_matches(candidate, (weekday_of_first + candidate - 1) % 7):
                return candidate
        return -1

    def _next_wall(
        self, start: datetime, last_year: int, label: tzinfo | None = None
    ) -> datetime | None:
        """First matching wall time >= `start` (a whole minute), searching to `last_year`.

        The result is naive unless given a `label` zone (which only labels it).
        """
        year, month, day = start.year, start.month, start.day
        hour, minute = start.hour, start.minute
        next_month, next_hour, next_minute = self._next_month, self._next_hour, self._next_minute
        while year <= last_year:
            found = next_month[month]
            if found < 0:
                year, month, day, hour, minute = year + 1, 1, 1, 0, 0
                continue
            if found != month:
                month, day, hour, minute = found, 1, 0, 0
            found = self._next_day(year, month, day)
            if found < 0:
                month, day, hour, minute = month + 1, 1, 0, 0
                continue
            if found != day:
                day, hour, minute = found, 0, 0
            found = next_hour[hour]
            if found < 0:
                day, hour, minute = day + 1, 0, 0
                continue
            if found != hour:
                hour, minute = found, 0
            found = next_minute[minute]
            if found < 0:
                hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, found, tzinfo=label)
        return None


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return _MAX_MONTH_DAYS[month]


def _cron_error(message: str) -> ScheduleError:
    return ScheduleError("schedule.cron", message)


def _parse_value(text: str, index: int) -> int:
    name = _FIELD_NAMES[index]
    if text.isdigit() and text.isascii():
        return int(text)
    names = _MONTH_NAMES if index == _MONTH else _DOW_NAMES if index == _DOW else None
    if names is not None and text.isalpha() and text.upper() in names:
        return names[text.upper()]
    if not text:
        raise _cron_error(f"{name} field: missing value")
    if index in (_DOM, _DOW) and _QUARTZ_RE.fullmatch(text.upper()):
        letter = "W" if "W" in text.upper() else "L"
        raise _cron_error(f"{name} field: {_UNSUPPORTED[letter]} ({text!r})")
    raise _cron_error(f"{name} field: unknown value {text!r}")


def _parse_item(item: str, index: int) -> set[int]:
    name = _FIELD_NAMES[index]
    low, high = _FIELD_BOUNDS[index]
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isdigit() and step_text.isascii()):
            raise _cron_error(f"{name} field: step in {item!r} must be a positive whole number")
        step = int(step_text)
        if step == 0:
            raise _cron_error(f"{name} field: step in {item!r} must not be 0")
    if base == "*":
        start, end = low, (6 if index == _DOW else high)
    else:
        first, dash, last = base.partition("-")
        start = _parse_value(first, index)
        # "a/n" runs to the field's end; for weekdays that is Saturday (so "1/2" is MON,WED,FRI)
        # unless it starts at 7.
        open_end = 6 if index == _DOW and start < 7 else high
        end = _parse_value(last, index) if dash else (open_end if slash else start)
        for value in (start, end):
            if not low <= value <= high:
                raise _cron_error(f"{name} field: {value} is out of range {low}-{high}")
        if start > end:
            hint = " (write Sunday as 7 at the end of a range)" if index == _DOW else ""
            raise _cron_error(f"{name} field: range {base!r} is reversed{hint}")
    values = set(range(start, end + 1, step))
    if index == _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def _parse_field(text: str, index: int) -> frozenset[int]:
    name = _FIELD_NAMES[index]
    for token in "#?":
        if token in text:
            raise _cron_error(f"{name} field {text!r}: {_UNSUPPORTED[token]}")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _cron_error(f"{name} field {text!r}: empty list item")
        values |= _parse_item(item, index)
    return frozenset(values)


def parse_cron(expression: str) -> CronSpec:
    """Parse and validate a five-field cron expression (errors name field "schedule.cron")."""
    if not isinstance(expression, str):
        raise _cron_error("must be a string")
    return _parse_cron_cached(expression)


@lru_cache(maxsize=4096)
def _parse_cron_cached(expression: str) -> CronSpec:
    # Cached: discovery re-evaluates the same few expressions thousands of times a second.
    stripped = expression.strip()
    if stripped.startswith("@"):
        raise _cron_error(f"macros such as {stripped.split()[0]!r} are not supported")
    fields = stripped.split()
    if len(fields) != 5:
        raise _cron_error(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    parsed = [_parse_field(text, index) for index, text in enumerate(fields)]
    spec = CronSpec(
        minutes=parsed[_MINUTE],
        hours=parsed[_HOUR],
        days_of_month=parsed[_DOM],
        months=parsed[_MONTH],
        days_of_week=parsed[_DOW],
        dom_star=fields[_DOM].startswith("*"),
        dow_star=fields[_DOW].startswith("*"),
        hour_star=fields[_HOUR].startswith("*"),
    )
    _check_can_fire(spec, fields)
    return spec


def _check_can_fire(spec: CronSpec, fields: list[str]) -> None:
    """Refuse day/month combinations that no calendar has (a task that would never run).

    Every other combination fires: with the OR rule any weekday comes round each month,
    and with the AND rule every real (month, day) pair falls on every weekday over time.
    """
    if not (spec.dom_star or spec.dow_star):
        return
    for month in spec.months:
        if any(day <= _MAX_MONTH_DAYS[month] for day in spec.days_of_month):
            return
    raise _cron_error(
        f"never fires: day-of-month {fields[_DOM]!r} does not occur in month {fields[_MONTH]!r}"
    )


# --------------------------------------------------------------------------- time zones

_REFUSED_ZONES = frozenset({"localtime", "posixrules"})


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name` (errors name field "schedule.timezone")."""
    if not isinstance(name, str):
        raise ScheduleError("schedule.timezone", "must be a string")
    if name in _REFUSED_ZONES:
        raise ScheduleError("schedule.timezone", f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise ScheduleError(
            "schedule.timezone",
            f"unknown time zone {name!r}; use an IANA name such as 'Asia/Taipei'",
        ) from None


# --------------------------------------------------------------------------- instants

_ONE_US = timedelta(microseconds=1)
_ONE_MINUTE = timedelta(minutes=1)
_ONE_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
_PROBE_STEP = timedelta(hours=6)  # shorter than the gap between any two offset changes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
_LATEST = datetime(9999, 12, 29, tzinfo=UTC)  # leaves room for any UTC offset
_SEARCH_YEARS = 400  # one Gregorian cycle: if a day pattern exists, it recurs within this


def _as_utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _field_utc(value: datetime, field_path: str) -> datetime:
    """Like _as_utc, but as a ScheduleError naming the API field, for stored schedule data."""
    if not isinstance(value, datetime):
        raise ScheduleError(field_path, "must be a date-time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(field_path, "must include a UTC offset (for example 'Z')")
    return value.astimezone(UTC)


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    """UTC offset of `tz` at an aware instant (clamped to the representable range)."""
    if instant < _EARLIEST:
        instant = _EARLIEST
    elif instant > _LATEST:
        instant = _LATEST
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # ZoneInfo always knows its offset
    return offset


def _wall_offset(tz: ZoneInfo, wall: datetime, fold: int) -> timedelta:
    offset = wall.replace(tzinfo=tz, fold=fold).utcoffset()
    assert offset is not None
    return offset


def _transition_between(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """First whole second in (low, high] whose offset differs from `low`'s.

    Binary search: zoneinfo exposes offsets but not the transition list, and the tz
    database puts every transition on a whole second.
    """
    before = _offset(tz, low)
    low_s = (low - _EPOCH) // _ONE_SECOND
    high_s = -((_EPOCH - high) // _ONE_SECOND)  # ceiling
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if _offset(tz, _EPOCH + timedelta(seconds=middle)) == before:
            low_s = middle
        else:
            high_s = middle
    return _EPOCH + timedelta(seconds=high_s)


_Change = tuple[datetime, timedelta, timedelta]  # (instant, offset before, offset after)


@lru_cache(maxsize=1024)
def _changes_around(tz: ZoneInfo, day_ordinal: int) -> tuple[_Change, ...]:
    """Offset changes from a day before UTC day `day_ordinal` to two days after.

    Cached because every task due near a transition asks about the same few days.
    """
    low = max(datetime.fromordinal(day_ordinal).replace(tzinfo=UTC) - _DAY, _EARLIEST)
    high = min(low + 3 * _DAY, _LATEST)
    found = []
    probe, probe_offset = low, _offset(tz, low)
    while probe < high:
        following = min(probe + _PROBE_STEP, high)
        following_offset = _offset(tz, following)
        if following_offset != probe_offset:
            found.append(
                (_transition_between(tz, probe, following), probe_offset, following_offset)
            )
        probe, probe_offset = following, following_offset
    return tuple(found)


def _first_instant(tz: ZoneInfo, wall: datetime, changes: tuple[_Change, ...] = ()) -> datetime:
    """First instant at which the local clock reads `wall` or later (rules 1 and 2)."""
    offset = _wall_offset(tz, wall, 0)
    later_offset = _wall_offset(tz, wall, 1)
    if later_offset <= offset:
        # Ordinary time, or a repeated time whose fold=0 reading is its first pass.
        return (wall - offset).replace(tzinfo=UTC)
    # A skipped time: fold=0 reads it with the offset from before the jump and fold=1 with
    # the offset after, and the jump lies between those two readings.
    low = (wall - later_offset).replace(tzinfo=UTC)
    high = (wall - offset).replace(tzinfo=UTC)
    for instant, _, _ in changes:
        if low < instant <= high:
            return instant
    return _transition_between(tz, low, high)


def _floor_minute(wall: datetime) -> datetime:
    return wall.replace(second=0, microsecond=0)


def _ceil_minute(wall: datetime) -> datetime:
    floor = _floor_minute(wall)
    return floor if floor == wall else floor + _ONE_MINUTE


def _cron_next(spec: CronSpec, tz: ZoneInfo, after: datetime) -> datetime | None:
    if after >= _LATEST:
        return None
    # Hot path (discovery runs it thousands of times a second): datetime.replace() is slow,
    # so wall times are built from fields and results by subtracting the offset.
    local = after.astimezone(tz)
    after_offset = local.utcoffset()
    last_year = min(9999, after.year + _SEARCH_YEARS)
    if (
        after > _EARLIEST
        and (after - _DAY).astimezone(tz).utcoffset() == after_offset
        and (after + _DAY).astimezone(tz).utcoffset() == after_offset
    ):
        # No offset change within a day either side: wall time is UTC plus a constant.
        assert after_offset is not None
        start = datetime(local.year, local.month, local.day, local.hour, local.minute)
        wall = spec._next_wall(start + _ONE_MINUTE, last_year, UTC)
        if wall is None:
            return None
        instant = wall - after_offset  # the wall time, labelled UTC, shifted to real UTC
        if instant <= after + _DAY:
            return instant
        return _checked(_first_instant(tz, wall.replace(tzinfo=None)))
    return _cron_next_near_transition(spec, tz, after, last_year)


def _cron_next_near_transition(
    spec: CronSpec, tz: ZoneInfo, after: datetime, last_year: int
) -> datetime | None:
    """The careful path, taken within a day of an offset change."""
    wall_after = after.astimezone(tz).replace(tzinfo=None)
    changes = _changes_around(tz, after.toordinal())
    # The highest wall time shown so far: after a fall-back the clock reads less than it
    # did just before, and wall times up to that peak have had their first pass.
    highest_wall = wall_after
    for instant, before, after_change in changes:
        if after_change < before and instant <= after:
            highest_wall = max(highest_wall, (instant - _ONE_US).replace(tzinfo=None) + before)
    wall = spec._next_wall(_floor_minute(highest_wall) + _ONE_MINUTE, last_year)
    best = None if wall is None else _first_instant(tz, wall, changes)
    if spec.hour_star:
        for instant, before, after_change in changes:
            repeat = before - after_change
            if repeat <= timedelta(0) or instant + repeat <= after:
                continue
            # Second pass of the repeated wall times, in real time order.
            start = instant.replace(tzinfo=None) + after_change
            if instant <= after:
                start = max(start, _floor_minute(wall_after) + _ONE_MINUTE)
            second = spec._next_wall(_ceil_minute(start), last_year)
            if second is not None and second < instant.replace(tzinfo=None) + before:
                candidate = (second - after_change).replace(tzinfo=UTC)
                if best is None or candidate < best:
                    best = candidate
    return None if best is None else _checked(best)


def _checked(instant: datetime) -> datetime | None:
    return None if instant >= _LATEST else instant


def _interval_next(schedule: Interval, after: datetime) -> datetime | None:
    interval_seconds = schedule.interval_seconds
    _check_interval_seconds(interval_seconds)
    anchor = _field_utc(schedule.anchor, "schedule.anchor")
    if after < anchor:
        return anchor
    # Integer microseconds: anchor + k * interval exactly, however far from the anchor.
    step_us = interval_seconds * 1_000_000
    elapsed_us = (after - anchor) // _ONE_US
    k = elapsed_us // step_us + 1
    try:
        return anchor + timedelta(microseconds=k * step_us)
    except OverflowError:
        return None


def _check_interval_seconds(interval_seconds: object) -> None:
    if not isinstance(interval_seconds, int) or isinstance(interval_seconds, bool):
        raise ScheduleError("schedule.interval_seconds", "must be a whole number of seconds")
    if interval_seconds < 1:
        raise ScheduleError("schedule.interval_seconds", "must be at least 1")


# --------------------------------------------------------------------------- public API


def validate(schedule: Schedule) -> None:
    """Refuse a schedule that is malformed or can never fire, naming the API field."""
    if isinstance(schedule, Cron):
        parse_cron(schedule.expression)
        zone(schedule.timezone)
    elif isinstance(schedule, Interval):
        _check_interval_seconds(schedule.interval_seconds)
        _field_utc(schedule.anchor, "schedule.anchor")
    elif isinstance(schedule, OneTime):
        _field_utc(schedule.at, "schedule.at")
    else:
        raise ScheduleError("schedule", "must be one of cron, interval_seconds or at")


def validate_window(window: Window) -> None:
    """Refuse window limits that make no sense (errors name start_at, end_at, max_executions)."""
    start_at = None if window.start_at is None else _field_utc(window.start_at, "start_at")
    end_at = None if window.end_at is None else _field_utc(window.end_at, "end_at")
    if start_at is not None and end_at is not None and end_at < start_at:
        raise ScheduleError("end_at", "must not be before start_at")
    max_executions = window.max_executions
    if max_executions is not None:
        if not isinstance(max_executions, int) or isinstance(max_executions, bool):
            raise ScheduleError("max_executions", "must be a whole number")
        if max_executions < 1:
            raise ScheduleError("max_executions", "must be at least 1")


def next_fire_time(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire instant strictly after `after` (aware UTC), or None if there is none."""
    after = _as_utc(after, "after")
    if isinstance(schedule, Cron):
        spec, tz = parse_cron(schedule.expression), zone(schedule.timezone)
        try:
            return _cron_next(spec, tz, after)
        except OverflowError:  # the next fire would be past year 9999
            return None
    if isinstance(schedule, Interval):
        return _interval_next(schedule, after)
    if isinstance(schedule, OneTime):
        at = _field_utc(schedule.at, "schedule.at")
        return at if at > after else None
    raise TypeError(f"not a schedule: {schedule!r}")


def next_occurrence(
    schedule: Schedule, after: datetime, window: Window, occurrences_so_far: int
) -> datetime | None:
    """next_fire_time, but never before start_at, after end_at or beyond max_executions."""
    after = _as_utc(after, "after")
    if window.max_executions is not None and occurrences_so_far >= window.max_executions:
        return None
    if window.start_at is not None:
        start_at = _as_utc(window.start_at, "start_at")
        if after < start_at:
            after = start_at - _ONE_US  # start_at itself is allowed
    instant = next_fire_time(schedule, after)
    if instant is None:
        return None
    if window.end_at is not None and instant > _as_utc(window.end_at, "end_at"):
        return None
    return instant


def first_occurrence(schedule: Schedule, now: datetime, window: Window) -> datetime | None:
    """The first occurrence at or after `now`: a schedule due exactly now fires now."""
    return next_occurrence(schedule, _as_utc(now, "now") - _ONE_US, window, 0)


def upcoming(
    schedule: Schedule,
    after: datetime,
    window: Window,
    count: int,
    occurrences_so_far: int = 0,
) -> list[datetime]:
    """The next `count` occurrences after `after`, to preview a schedule."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    found: list[datetime] = []
    cursor: datetime | None = after
    while len(found) < count and cursor is not None:
        cursor = next_occurrence(schedule, cursor, window, occurrences_so_far + len(found))
        if cursor is not None:
            found.append(cursor)
    return found


# --------------------------------------------------------------------------- density

_DENSITY_LIMIT = _DAY


def shortest_gap(
    schedule: Schedule, start: datetime, end: datetime, below: timedelta = _DENSITY_LIMIT
) -> timedelta | None:
    """The shortest time between two consecutive occurrences of `schedule`, if it is
    shorter than `below` (at most a day); None if no two are that close.

    Quotas refuse a schedule that fires more often than a tenant may. An interval's gap is
    its interval, and a one-time schedule has none. A cron's covers every pair of
    consecutive fires its fields can bring in any year at a steady UTC offset (within an
    hour, across hours, across midnight and the new year), plus every pair near an
    offset change of its zone between `start` and `end`, where the daylight-saving rule
    shortens a gap: a skipped wall time fires at the jump, and a ``*`` hour field fires
    a repeated hour twice. Cheap: no walk through the occurrences, except a few around
    each offset change.
    """
    if not timedelta(0) < below <= _DENSITY_LIMIT:
        raise ValueError(f"below must be more than 0 and at most a day, got {below}")
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if isinstance(schedule, OneTime):
        return None
    if isinstance(schedule, Interval):
        _check_interval_seconds(schedule.interval_seconds)
        gap = timedelta(seconds=schedule.interval_seconds)
        return gap if gap < below else None
    if not isinstance(schedule, Cron):
        raise TypeError(f"not a schedule: {schedule!r}")
    spec, tz = parse_cron(schedule.expression), zone(schedule.timezone)
    wall = _wall_gap_minutes(spec)
    best = below if wall is None else min(below, wall * _ONE_MINUTE)
    for change in _changes_between(tz, start, end):
        best = _shortest_gap_near(schedule, change, best)
    return best if best < below else None


def _wall_gap_minutes(spec: CronSpec) -> int | None:
    """The shortest gap between consecutive matching wall times, in minutes, if under a
    day. Every matching day holds every allowed hour and minute, so the gaps within an
    hour and across hours are fixed; across midnight they need two adjacent matching
    days, and otherwise are over a day."""
    minutes, hours = sorted(spec.minutes), sorted(spec.hours)
    gaps = [b - a for a, b in pairwise(minutes)]
    span = minutes[-1] - minutes[0]
    gaps += [60 * (b - a) - span for a, b in pairwise(hours)]
    if _adjacent_days(spec):
        gaps.append(24 * 60 - (60 * hours[-1] + minutes[-1]) + (60 * hours[0] + minutes[0]))
    under_a_day = [gap for gap in gaps if gap < 24 * 60]
    return min(under_a_day) if under_a_day else None


# Each calendar day and the day after it, over a leap year and the 28 February of others.
_DAY_PAIRS = tuple(
    (first.month, first.day, second.month, second.day)
    for first, second in (
        *(
            (date(2024, 1, 1) + timedelta(days=n), date(2024, 1, 1) + timedelta(days=n + 1))
            for n in range(366)
        ),
        (date(2025, 2, 28), date(2025, 3, 1)),
    )
)


def _adjacent_days(spec: CronSpec) -> bool:
    """Whether two consecutive days can both match. Over the years every date falls on
    every weekday (the 29th of February too), so each pair of dates is tried with each
    pair of consecutive weekdays."""
    for month, day, next_month, next_day in _DAY_PAIRS:
        if month not in spec.months or next_month not in spec.months:
            continue
        for weekday in range(7):
            if spec._day_matches(day, weekday) and spec._day_matches(next_day, (weekday + 1) % 7):
                return True
    return False


@lru_cache(maxsize=256)
def _changes_between(tz: ZoneInfo, start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The instants in (start, end] at which `tz` changes its UTC offset. Cached: a
    caller that rounds its window to the day probes a zone's year once a day."""
    found = []
    probe = max(start, _EARLIEST)
    end = min(end, _LATEST)
    probe_offset = _offset(tz, probe)
    while probe < end:
        following = min(probe + _PROBE_STEP, end)
        following_offset = _offset(tz, following)
        if following_offset != probe_offset:
            found.append(_transition_between(tz, probe, following))
        probe, probe_offset = following, following_offset
    return tuple(found)


def _shortest_gap_near(schedule: Cron, change: datetime, best: timedelta) -> timedelta:
    """`best`, or a shorter gap between consecutive fires near `change`. Away from it
    fires are wall times at one offset, whose gaps the fields already bound; a pair
    shorter than `best` that the change shortened has a fire within `best` of it."""
    fire = next_fire_time(schedule, change - best - _ONE_US)
    while fire is not None and fire <= change + best:
        following = next_fire_time(schedule, fire)
        if following is None:
            break
        best = min(best, following - fire)
        fire = following
    return best
