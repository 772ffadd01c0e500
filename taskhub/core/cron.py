"""Cron expressions: parsing the five fields and stepping to the next matching wall time.

Cron syntax: five fields (minute hour day-of-month month day-of-week) with ``*``,
numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` to the field's
maximum), lists ``a,b-c``, the names JAN-DEC and SUN-SAT in any case, and both 0 and 7
for Sunday. When both day-of-month and day-of-week are restricted, a day matches if
either matches; otherwise both must match. As in Vixie cron, a field counts as ``*``
("not restricted") when it begins with ``*``, so ``*/2`` counts as ``*`` both for that
rule and for the hour-field exception of the daylight-saving rule (``wall_clock``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from functools import lru_cache

from taskhub.core.errors import ScheduleError

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
