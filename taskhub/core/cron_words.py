"""A schedule in words, for people reading a list of tasks: "At 09:00, Monday through
Friday (Asia/Taipei)", "Every 5 minutes", "Once, at 2027-01-01 09:00 UTC".

Each cron field is read as written (its list items, ranges, steps and names, the day
tokens L, L-n, nW, LW, d#n and dL, a macro as its five fields), so the words say what
the expression says; a step that does not divide its field evenly is
spelled out value by value rather than rounded to "every n". The words never replace
the expression (pages show both), and :func:`describe` never raises: an expression
this module cannot word, or the product does not accept, reads as itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from taskhub.core.cron import expand_macro, parse_cron
from taskhub.core.errors import ScheduleError
from taskhub.core.schedules import Cron, Interval, Schedule

_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS: Final = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NUMBERS: Final = {name[:3].upper(): number for number, name in enumerate(_MONTHS, 1)}
_DAY_NUMBERS: Final = {name[:3].upper(): number for number, name in enumerate(_DAYS)}

_MINUTE, _HOUR, _DOM, _MONTH, _DOW = range(5)
#: Each field's bounds as ``*`` covers them (day-of-week: Sunday 0 to Saturday 6).
_STAR_BOUNDS: Final = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
#: (one, many) names of each field's unit.
_UNITS: Final = (
    ("minute", "minutes"),
    ("hour", "hours"),
    ("day of the month", "days of the month"),
    ("month", "months"),
    ("day of the week", "days of the week"),
)
#: A step that does not divide its field is listed value by value up to this many.
_MAX_LISTED: Final = 8

#: Whole units an interval is said in, largest first.
_INTERVAL_UNITS: Final = (
    (7 * 86400, "week"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
    (1, "second"),
)


def describe(schedule: Schedule) -> str:
    """The schedule in English words (a cron schedule names its time zone)."""
    if isinstance(schedule, Cron):
        return describe_cron(schedule.expression, schedule.timezone)
    if isinstance(schedule, Interval):
        return describe_interval(schedule.interval_seconds)
    return describe_once(schedule.at)


def describe_view(schedule: Mapping[str, Any]) -> str:
    """The words of a schedule as the API shows it (``{"cron", "timezone"}``,
    ``{"interval_seconds"}`` or ``{"at"}``)."""
    try:
        if "cron" in schedule:
            return describe_cron(str(schedule["cron"]), str(schedule.get("timezone") or "UTC"))
        if "interval_seconds" in schedule:
            return describe_interval(int(schedule["interval_seconds"]))
        if "at" in schedule:
            return describe_once(datetime.fromisoformat(str(schedule["at"])))
    except (TypeError, ValueError):
        pass
    return "Schedule not known"


def describe_interval(seconds: int) -> str:
    """ "Every 90 seconds", "Every 5 minutes", "Every hour": the largest whole unit."""
    if seconds <= 0:
        return f"Every {seconds} seconds"
    for size, unit in _INTERVAL_UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    raise AssertionError("a second divides every whole number of seconds")


def describe_once(at: datetime) -> str:
    """ "Once, at 2027-01-01 09:00 UTC" (seconds only when it has some)."""
    when = at.astimezone(UTC) if at.tzinfo is not None else at
    shape = "%Y-%m-%d %H:%M:%S" if when.second or when.microsecond else "%Y-%m-%d %H:%M"
    return f"Once, at {when.strftime(shape)} UTC"


def describe_cron(expression: str, timezone: str = "UTC") -> str:
    """A cron expression in words, its zone in parentheses; never raises."""
    try:
        parse_cron(expression)
        fields = expand_macro(expression).split()
        # A field that allows every value says nothing (day fields: see _day_words).
        minute, hour, month = (
            "*" if _is_full(fields[index], index) else fields[index]
            for index in (_MINUTE, _HOUR, _MONTH)
        )
        words = _time_words(minute, hour) + _day_words(fields[_DOM], month, fields[_DOW])
    except (ScheduleError, ArithmeticError, LookupError, TypeError, ValueError):
        words = f"Cron {expression.strip()}" if isinstance(expression, str) else "Cron"
    return f"{words} ({timezone})"


# --- reading a field ------------------------------------------------------------------


def _value(text: str, index: int) -> int:
    if text.isdigit():
        value = int(text)
        return 0 if index == _DOW and value == 7 else value
    names = _MONTH_NUMBERS if index == _MONTH else _DAY_NUMBERS
    return names[text.upper()]


def _name(value: int, index: int) -> str:
    if index == _MONTH:
        return _MONTHS[value - 1]
    if index == _DOW:
        return _DAYS[value % 7]
    if index == _HOUR:
        return f"{value:02d}"
    return str(value)


def _raw_end(text: str, index: int) -> int:
    """The end of a range as written: 7 (Sunday at a range's end) stays 7 here."""
    if text.isdigit():
        return int(text)
    return _value(text, index)


def _item_values(item: str, index: int) -> list[int]:
    """The values one list item stands for, in order (Sunday as 0)."""
    base, slash, step_text = item.partition("/")
    step = int(step_text) if slash else 1
    low, high = _STAR_BOUNDS[index]
    if base == "*":
        start, end = low, high
    else:
        first, dash, last = base.partition("-")
        start = int(first) if first.isdigit() else _value(first, index)
        if dash:
            end = _raw_end(last, index)
        elif slash:
            end = 6 if index == _DOW and start < 7 else _STAR_BOUNDS[index][1]
            end = 7 if index == _DOW and start == 7 else end
        else:
            end = start
    values = []
    for value in range(start, end + 1, step):
        value = 0 if index == _DOW and value == 7 else value
        if value not in values:
            values.append(value)
    return values


def _is_full(field: str, index: int) -> bool:
    """Whether the field allows every value of its kind ("*", "0-59", "*/1,5", "1-7")."""
    low, high = _STAR_BOUNDS[index]
    return len(_values(field, index)) == high - low + 1


def _is_plain(field: str) -> bool:
    """Numbers or names only: no range, no step, no star."""
    return all(c not in field for c in "*-/")


def _join(parts: list[str], conjunction: str = "and") -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {conjunction} {parts[-1]}"


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _item_words(item: str, index: int) -> str:
    """One list item: "Monday", "9 through 17", "every 15 minutes", "every 2nd hour
    from 08 through 18"."""
    one, many = _UNITS[index]  # "many" words only a step of minutes
    base, slash, step_text = item.partition("/")
    if not slash:
        if base == "*":
            return f"every {one}"
        first, dash, last = base.partition("-")
        if dash:
            start, end = _value(first, index), _raw_end(last, index)
            if _name(start, index) == _name(end, index):
                return _name(start, index)
            return f"{_name(start, index)} through {_name(end, index)}"
        return _name(_value(base, index), index)
    step = int(step_text)
    values = _item_values(item, index)
    low, high = _STAR_BOUNDS[index]
    if values == _item_values(f"*/{step}", index):
        base = "*"  # "0/5" and "0-59/5" are "*/5" as written differently
    if len(values) == high - low + 1:
        return f"every {one}"
    if base == "*" and (high - low + 1) % step == 0:
        return f"every {step} {many}" if index == _MINUTE else f"every {_ordinal(step)} {one}"
    if len(values) <= _MAX_LISTED:
        return _join([_name(value, index) for value in values])
    span = f"{_name(values[0], index)} through {_name(values[-1], index)}"
    return f"every {_ordinal(step)} {one} from {span}"


def _field_words(field: str, index: int) -> str:
    items = field.split(",")
    if len(items) > 1 and any("/" in item or item == "*" for item in items):
        # A step among other items reads badly as a phrase: its values, else as written.
        values = _values(field, index)
        if len(values) <= _MAX_LISTED:
            return _join([_name(value, index) for value in values])
        return field
    return _join([_item_words(item, index) for item in items])


def _values(field: str, index: int) -> list[int]:
    """The plain values of a field (its day tokens, which depend on the month, aside)."""
    found: set[int] = set()
    for item in _plain_items(field, index):
        found.update(_item_values(item, index))
    return sorted(found)


def _is_token(item: str, index: int) -> bool:
    """Whether a day-field item is a day token: L, L-n, nW, LW; d#n, dL (no day name
    holds an L or a #)."""
    upper = item.upper()
    if index == _DOM:
        return "L" in upper or "W" in upper
    return index == _DOW and ("#" in upper or upper.endswith("L"))


def _plain_items(field: str, index: int) -> list[str]:
    return [item for item in field.split(",") if not _is_token(item, index)]


def _token_items(field: str, index: int) -> list[str]:
    return [item for item in field.split(",") if _is_token(item, index)]


def _dom_token_words(item: str) -> str:
    """ "the last day of the month", "the weekday nearest day 15", ..."""
    upper = item.upper()
    if upper == "L":
        return "the last day of the month"
    if upper == "LW":
        return "the last weekday of the month"
    if upper.startswith("L-"):
        before = int(upper[2:])
        if before == 1:
            return "the day before the last day of the month"
        return f"the day {before} days before the last day of the month"
    return f"the weekday nearest day {int(upper[:-1])}"


def _dow_token_words(item: str) -> str:
    """ "the 2nd Monday of the month", "the last Friday of the month"."""
    upper = item.upper()
    if "#" in upper:
        weekday, _hash, count = upper.partition("#")
        return f"the {_ordinal(int(count))} {_name(_value(weekday, _DOW), _DOW)} of the month"
    return f"the last {_name(_value(upper[:-1], _DOW), _DOW)} of the month"


# --- the sentence ---------------------------------------------------------------------


def _time_words(minute: str, hour: str) -> str:
    """When in the day: "At 09:00", "At 09:00 and 17:30", "Every 5 minutes, between
    09:00 and 17:59", "At minute 15 of every hour"."""
    if _is_plain(minute) and _is_plain(hour):
        minutes, hours = _values(minute, _MINUTE), _values(hour, _HOUR)
        if len(minutes) * len(hours) <= _MAX_LISTED:
            return "At " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    minute_words = _minute_at(minute)
    every = minute_words.startswith("Every")
    if hour == "*":
        return minute_words if every else f"{minute_words} of every hour"
    if "," not in hour and "/" not in hour:
        first, _dash, last = hour.partition("-")
        start = _value(first, _HOUR)
        end = _raw_end(last, _HOUR) if last else start
        return f"{minute_words}, between {start:02d}:00 and {end:02d}:59"
    return f"{minute_words} {'during' if every else 'past'} {_hours_words(hour)}"


def _hours_words(hour: str) -> str:
    """ "every 2nd hour" (a step that divides the day), else "hours 00, 05 and 10"."""
    base, slash, step_text = hour.partition("/")
    if "," not in hour and base == "*" and slash and 24 % int(step_text) == 0:
        step = int(step_text)
        return "every hour" if step == 1 else f"every {_ordinal(step)} hour"
    words = _field_words(hour, _HOUR)
    return words if words.startswith("every") else f"hours {words}"


def _minute_at(minute: str) -> str:
    words = _field_words(minute, _MINUTE)
    if words.startswith("every") and "," not in minute:
        return words.capitalize()
    plural = len(_values(minute, _MINUTE)) > 1
    return f"At minute{'s' if plural else ''} {words}"


def _day_words(dom: str, month: str, dow: str) -> str:
    """Which days: ", Monday through Friday", ", on day 1 of the month or on Monday",
    ", in January"."""
    parts = []
    dom_full, dow_full = _is_full(dom, _DOM), _is_full(dow, _DOW)
    if not dom.startswith("*") and not dow.startswith("*"):
        # Vixie cron: with both restricted, a day matches if either matches (so a field
        # allowing every day makes every day match).
        if not (dom_full or dow_full):
            parts.append(f"{_dom_words(dom)} or {_dow_words(dow)}")
    else:
        parts.extend(
            words
            for words in (
                None if dom_full else _dom_words(dom),
                None if dow_full else _dow_words(dow),
            )
            if words
        )
    if month != "*":
        parts.append(f"in {_field_words(month, _MONTH)}")
    return "".join(f", {part}" for part in parts)


def _dom_words(dom: str) -> str:
    tokens = [_dom_token_words(item) for item in _token_items(dom, _DOM)]
    plain = ",".join(_plain_items(dom, _DOM))
    if not plain:
        return f"on {_join(tokens)}"
    words = _field_words(plain, _DOM)
    if not words.startswith("every"):
        plural = len(_values(plain, _DOM)) > 1
        words = f"day{'s' if plural else ''} {words} of the month"
    if not tokens:
        return words if words.startswith("every") else f"on {words}"
    return f"on {_join([words, *tokens])}"


def _dow_words(dow: str) -> str:
    tokens = [_dow_token_words(item) for item in _token_items(dow, _DOW)]
    plain = ",".join(_plain_items(dow, _DOW))
    if not plain:
        return f"on {_join(tokens)}"
    words = _field_words(plain, _DOW)
    if not tokens and "," not in plain and "/" not in plain and " through " in words:
        return words  # "Monday through Friday"
    return f"on {_join([words, *tokens])}"
