"""Cron expressions: parsing the five fields and stepping to the next matching wall time.

Cron syntax: five fields (minute hour day-of-month month day-of-week) with ``*``,
numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` to the field's
maximum), lists ``a,b-c``, the names JAN-DEC and SUN-SAT in any case, and both 0 and 7
for Sunday. When both day-of-month and day-of-week are restricted, a day matches if
either matches; otherwise both must match. As in Vixie cron, a field counts as ``*``
("not restricted") when it begins with ``*``, so ``*/2`` counts as ``*`` for that rule;
taskhub uses the same test on the hour field alone for the fall-back exception of its
daylight-saving rule (``wall_clock``).

Also accepted: the macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``,
``@daily`` (``@midnight``) and ``@hourly``, which are their five-field expansions; in the
day-of-month field ``L`` (the last day), ``L-n`` (n days before it, n 1-30), ``nW`` (the
weekday, Monday to Friday, nearest day n without leaving the month; a day past the
month's end counts as its last day, as in Quartz and croniter) and ``LW`` (the last
weekday of the month); in the day-of-week field ``d#n`` (the nth weekday d of the month,
n 1-5; a month without one is skipped) and ``dL`` (the last weekday d of the month).
Each of these is a list item of its own: it mixes with other items (``L,15``,
``1#1,5L``, ``MON-FRI,5L``) and adds the days it names, but takes no range or step.
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
#: Each macro and the five fields it stands for.
MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_LAST_OFFSET = 30  # L-30: the 1st of a 31-day month
_MAX_NTH = 5  # d#5: a fifth weekday exists in some months only
# Day tokens (matched on the upper-cased list item).
_DOM_LAST_RE = re.compile(r"L(?:-([0-9]*))?")
_DOM_NEAREST_RE = re.compile(r"([0-9]+)W")
_DOW_NTH_RE = re.compile(r"([0-9A-Z]+)#([0-9]*)")
_DOW_LAST_RE = re.compile(r"([0-9A-Z]+)L")
_TOKEN_USAGE = {
    _DOM: "L, L-n, nW and LW are written alone as list items, without a range or a step "
    "(write 'L,15', not 'L-15/2')",
    _DOW: "d#n and dL are written alone as list items, without a range or a step "
    "(write '1#1,5L', not '1-5#2')",
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
    an unrestricted field), which decides the day-of-month / day-of-week OR rule, and
    ``hour_star`` the fall-back exception of the DST rule. The day tokens that depend on
    the month are kept apart from the plain day sets (they add to them): ``last_days``
    holds n of each ``L-n`` (0 for ``L``), ``nearest_weekdays`` n of each ``nW`` (``LW``
    as 31, the same days), ``nth_weekdays`` (d, n) of each ``d#n`` and ``last_weekdays``
    d of each ``dL``.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_star: bool
    dow_star: bool
    hour_star: bool
    last_days: frozenset[int] = frozenset()
    nearest_weekdays: frozenset[int] = frozenset()
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    last_weekdays: frozenset[int] = frozenset()
    _next_minute: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_hour: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_month: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _dom_ok: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _dow_ok: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _every_day: bool = field(init=False, repr=False, compare=False)
    _dom_tokens: bool = field(init=False, repr=False, compare=False)
    _dow_tokens: bool = field(init=False, repr=False, compare=False)

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
        # The day tokens only add days, so the plain sets alone decide "every day".
        object.__setattr__(self, "_every_day", every_day)
        object.__setattr__(self, "_dom_tokens", bool(self.last_days or self.nearest_weekdays))
        object.__setattr__(self, "_dow_tokens", bool(self.nth_weekdays or self.last_weekdays))

    @property
    def has_day_tokens(self) -> bool:
        """Whether a day token (L, L-n, nW, LW, d#n, dL) is used: days depend on the month."""
        return self._dom_tokens or self._dow_tokens

    def matches(self, wall: datetime) -> bool:
        """Whether a naive local wall-clock time is one of the expression's slots."""
        if wall.second or wall.microsecond:
            return False
        if not (
            wall.minute in self.minutes and wall.hour in self.hours and wall.month in self.months
        ):
            return False
        month_days = _days_in_month(wall.year, wall.month)
        return self._day_matches(wall.day, (wall.weekday() + 1) % 7, month_days)

    def _day_matches(self, day: int, cron_weekday: int, month_days: int) -> bool:
        """Whether a day matches, knowing its weekday (Sunday 0) and its month's length:
        every day token is decided by those three numbers."""
        dom_ok = self._dom_ok[day] or (
            self._dom_tokens and self._dom_token_matches(day, cron_weekday, month_days)
        )
        dow_ok = self._dow_ok[cron_weekday] or (
            self._dow_tokens and self._dow_token_matches(day, cron_weekday, month_days)
        )
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def _dom_token_matches(self, day: int, cron_weekday: int, month_days: int) -> bool:
        if month_days - day in self.last_days:
            return True
        for target in self.nearest_weekdays:
            target = min(target, month_days)
            target_weekday = (cron_weekday + target - day) % 7
            if _nearest_weekday(target, target_weekday, month_days) == day:
                return True
        return False

    def _dow_token_matches(self, day: int, cron_weekday: int, month_days: int) -> bool:
        if (cron_weekday, (day + 6) // 7) in self.nth_weekdays:
            return True
        return cron_weekday in self.last_weekdays and day + 7 > month_days

    def _next_day(self, year: int, month: int, day: int) -> int:
        """First matching day >= `day` in that month, or -1."""
        month_days = _days_in_month(year, month)
        if self._every_day:
            return day if day <= month_days else -1
        weekday_of_first = (date(year, month, 1).weekday() + 1) % 7
        for candidate in range(day, month_days + 1):
            if self._day_matches(candidate, (weekday_of_first + candidate - 1) % 7, month_days):
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


def _nearest_weekday(target: int, target_weekday: int, month_days: int) -> int:
    """The day, Monday to Friday, nearest day `target` (whose weekday is given, Sunday 0)
    without leaving the month: a Saturday moves to the Friday before unless it is the
    1st (then the Monday after), a Sunday to the Monday after unless it is the last day
    (then the Friday before)."""
    if target_weekday == 6:
        return target + 2 if target == 1 else target - 1
    if target_weekday == 0:
        return target - 2 if target == month_days else target + 1
    return target


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
    raise _cron_error(f"{name} field: unknown value {text!r}")


@dataclass
class _DayTokens:
    """The day tokens of one expression, collected while its fields are parsed."""

    last_days: set[int] = field(default_factory=set)
    nearest_weekdays: set[int] = field(default_factory=set)
    nth_weekdays: set[tuple[int, int]] = field(default_factory=set)
    last_weekdays: set[int] = field(default_factory=set)


def _whole(text: str) -> int | None:
    return int(text) if text.isdigit() and text.isascii() else None


def _weekday(text: str, item: str) -> int:
    """The weekday d of a ``d#n`` or ``dL`` item (Sunday as 0 or 7)."""
    value = _parse_value(text, _DOW)
    if not 0 <= value <= 7:
        raise _cron_error(f"day-of-week field: {value} is out of range 0-7 in {item!r}")
    return value % 7


def _parse_dom_token(item: str, upper: str, tokens: _DayTokens) -> bool:
    """Read ``L``, ``L-n``, ``nW`` or ``LW`` into `tokens`; False if `item` is none of them."""
    name = _FIELD_NAMES[_DOM]
    if upper == "LW":
        tokens.nearest_weekdays.add(31)  # the weekday nearest the last day: the last weekday
        return True
    last = _DOM_LAST_RE.fullmatch(upper)
    if last is not None:
        if last.group(1) is None:
            tokens.last_days.add(0)
            return True
        offset = _whole(last.group(1))
        if offset is None or not 1 <= offset <= _MAX_LAST_OFFSET:
            raise _cron_error(
                f"{name} field: in {item!r} (days before the last day) n must be "
                f"1-{_MAX_LAST_OFFSET}"
            )
        tokens.last_days.add(offset)
        return True
    nearest = _DOM_NEAREST_RE.fullmatch(upper)
    if nearest is not None:
        day = _whole(nearest.group(1))
        if day is None or not 1 <= day <= 31:
            raise _cron_error(f"{name} field: in {item!r} (nearest weekday) the day must be 1-31")
        tokens.nearest_weekdays.add(day)
        return True
    if _DOW_NTH_RE.fullmatch(upper) or _DOW_LAST_RE.fullmatch(upper):
        raise _cron_error(f"{name} field: {item!r} belongs in the day-of-week field")
    return False


def _parse_dow_token(item: str, upper: str, tokens: _DayTokens) -> bool:
    """Read ``d#n`` or ``dL`` into `tokens`; False if `item` is neither."""
    name = _FIELD_NAMES[_DOW]
    nth = _DOW_NTH_RE.fullmatch(upper)
    if nth is not None:
        weekday = _weekday(nth.group(1), item)
        count = _whole(nth.group(2))
        if count is None or not 1 <= count <= _MAX_NTH:
            raise _cron_error(f"{name} field: in {item!r} (nth weekday) n must be 1-{_MAX_NTH}")
        tokens.nth_weekdays.add((weekday, count))
        return True
    if upper == "L":
        raise _cron_error(
            f"{name} field: 'L' alone is not accepted; write dL for the last weekday d of "
            "the month (5L: the last Friday), or 6 for Saturday"
        )
    if upper == "LW" or _DOM_NEAREST_RE.fullmatch(upper) or _DOM_LAST_RE.fullmatch(upper):
        raise _cron_error(f"{name} field: {item!r} belongs in the day-of-month field")
    last = _DOW_LAST_RE.fullmatch(upper)
    if last is not None:
        tokens.last_weekdays.add(_weekday(last.group(1), item))
        return True
    return False


def _has_token_letter(upper: str, index: int) -> bool:
    """Whether an item that is no day token still uses one's letters (in a range or step).

    No day name holds an L or a #; WED holds a W, so W counts in day-of-month only."""
    if index == _DOM:
        return any(letter in upper for letter in "LW#")
    return any(letter in upper for letter in "L#")


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


def _parse_field(text: str, index: int, tokens: _DayTokens) -> frozenset[int]:
    name = _FIELD_NAMES[index]
    if "?" in text:
        raise _cron_error(f"{name} field {text!r}: '?' is not supported; use '*'")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _cron_error(f"{name} field {text!r}: empty list item")
        upper = item.upper()
        if index == _DOM and _parse_dom_token(item, upper, tokens):
            continue
        if index == _DOW and _parse_dow_token(item, upper, tokens):
            continue
        if index in (_DOM, _DOW) and _has_token_letter(upper, index):
            tokens_here = _TOKEN_USAGE[index]
            raise _cron_error(f"{name} field: {item!r}: {tokens_here}")
        if "#" in item:
            raise _cron_error(f"{name} field: {item!r}: '#' (nth weekday) is for day-of-week")
        values |= _parse_item(item, index)
    return frozenset(values)


def expand_macro(expression: str) -> str:
    """The five fields an ``@`` macro stands for, or the expression as it is (stripped).

    Errors name field "schedule.cron"; ``@reboot`` and unknown macros are refused.
    """
    stripped = expression.strip()
    if not stripped.startswith("@"):
        return stripped
    word = stripped.split()[0]
    if word.lower() in MACROS and word == stripped:
        return MACROS[word.lower()]
    if word.lower() in MACROS:
        raise _cron_error(f"the macro {word!r} stands alone: nothing may follow it")
    if word.lower() == "@reboot":
        raise _cron_error("'@reboot' is not supported: a task runs on a schedule, not at start")
    known = ", ".join(MACROS)
    raise _cron_error(f"unknown macro {word!r}; use one of {known}, or five fields")


def parse_cron(expression: str) -> CronSpec:
    """Parse and validate a five-field cron expression (errors name field "schedule.cron")."""
    if not isinstance(expression, str):
        raise _cron_error("must be a string")
    return _parse_cron_cached(expression)


@lru_cache(maxsize=4096)
def _parse_cron_cached(expression: str) -> CronSpec:
    # Cached: discovery re-evaluates the same few expressions thousands of times a second.
    fields = expand_macro(expression).split()
    if len(fields) != 5:
        raise _cron_error(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    tokens = _DayTokens()
    parsed = [_parse_field(text, index, tokens) for index, text in enumerate(fields)]
    spec = CronSpec(
        minutes=parsed[_MINUTE],
        hours=parsed[_HOUR],
        days_of_month=parsed[_DOM],
        months=parsed[_MONTH],
        days_of_week=parsed[_DOW],
        dom_star=fields[_DOM].startswith("*"),
        dow_star=fields[_DOW].startswith("*"),
        hour_star=fields[_HOUR].startswith("*"),
        last_days=frozenset(tokens.last_days),
        nearest_weekdays=frozenset(tokens.nearest_weekdays),
        nth_weekdays=frozenset(tokens.nth_weekdays),
        last_weekdays=frozenset(tokens.last_weekdays),
    )
    _check_can_fire(spec, fields)
    return spec


def _check_can_fire(spec: CronSpec, fields: list[str]) -> None:
    """Refuse day/month combinations that no calendar has (a task that would never run).

    Every other combination fires: with the OR rule any weekday comes round each month,
    and with the AND rule every real (month, day) pair falls on every weekday over time.
    With day tokens, whether a day matches depends only on its day number, its weekday
    and its month's length, and every month begins on every weekday over the years (a
    February of 28 days and one of 29 too), so those few kinds of month are tried.
    """
    if not (spec.dom_star or spec.dow_star):
        return  # the OR rule: the day-of-week side comes round every month
    if spec.has_day_tokens:
        if not _fires_in_some_month(spec):
            raise _cron_error(
                f"never fires: no day matches both day-of-month {fields[_DOM]!r} and "
                f"day-of-week {fields[_DOW]!r} in month {fields[_MONTH]!r}"
            )
        return
    for month in spec.months:
        if any(day <= _MAX_MONTH_DAYS[month] for day in spec.days_of_month):
            return
    raise _cron_error(
        f"never fires: day-of-month {fields[_DOM]!r} does not occur in month {fields[_MONTH]!r}"
    )


def _fires_in_some_month(spec: CronSpec) -> bool:
    for month in spec.months:
        for month_days in (28, 29) if month == 2 else (_MAX_MONTH_DAYS[month],):
            for weekday_of_first in range(7):
                for day in range(1, month_days + 1):
                    if spec._day_matches(day, (weekday_of_first + day - 1) % 7, month_days):
                        return True
    return False
