"""Celery's schedules as taskhub's: a ``crontab`` as a five-field cron expression that
fires at exactly the same wall times, an interval in whole seconds, and a refusal, with
its reason, for what taskhub cannot express (``solar``, custom schedule classes).

Celery matches a day only if it is in *both* ``day_of_month`` and ``day_of_week``; cron
(Vixie's rule, which taskhub follows) matches either when both fields are restricted and
both when one of them begins with ``*``. A crontab restricting both is therefore carried
over only when one of the two can be written starting with ``*`` (e.g. ``*/2``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

from celery.schedules import BaseSchedule, crontab, schedule, solar

from taskhub.core.cron import parse_cron
from taskhub.core.errors import ScheduleError
from taskhub.service.importing.entries import Unmappable

#: Celery's crontab fields in cron's order, with their bounds (Sunday is 0).
CRON_FIELDS: Final = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day_of_month", 1, 31),
    ("month_of_year", 1, 12),
    ("day_of_week", 0, 6),
)
_MINUTE_S: Final = 60
_HOUR_S: Final = 3600
_DAY_S: Final = 86400


def render_field(values: Iterable[int], low: int, high: int) -> str:
    """A cron field for exactly ``values``: ``*``, ``*/n``, ``a-b/n``, or a list of
    numbers and ranges."""
    ordered = sorted(set(values))
    if not ordered:
        raise Unmappable("a crontab field matches nothing")
    for step in range(1, high - low + 1):
        if ordered == list(range(low, high + 1, step)):
            return "*" if step == 1 else f"*/{step}"
    first, last = ordered[0], ordered[-1]
    if len(ordered) >= 3:
        step = ordered[1] - first
        if step > 1 and ordered == list(range(first, last + 1, step)):
            return f"{first}-{last}/{step}"
    return ",".join(_runs(ordered))


def _runs(ordered: list[int]) -> Iterable[str]:
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        if previous - start >= 2:
            yield f"{start}-{previous}"
        else:
            yield from (str(v) for v in range(start, previous + 1))
        if value is not None:
            start = previous = value


def _sets_of(tab: crontab) -> list[set[int]]:
    return [set(getattr(tab, name)) for name, _low, _high in CRON_FIELDS]


def cron_of(tab: crontab) -> str:
    """The cron expression that fires at exactly the wall times ``tab`` does."""
    if type(tab) is not crontab:
        raise Unmappable(f"custom schedule class {_class_name(tab)} (subclass of crontab)")
    if getattr(tab, "_orig_kwargs", {}).get("nowfun") is not None:
        raise Unmappable("a crontab with its own nowfun: its time zone cannot be read")
    wanted = _sets_of(tab)
    fields = [
        render_field(values, low, high)
        for values, (_n, low, high) in zip(wanted, CRON_FIELDS, strict=True)
    ]
    if not fields[2].startswith("*") and not fields[4].startswith("*"):
        raise Unmappable(
            "day_of_month and day_of_week are both restricted: Celery runs on the days "
            "that match both, cron on the days that match either"
        )
    expression = " ".join(fields)
    try:
        spec = parse_cron(expression)
    except ScheduleError as error:
        raise Unmappable(f"the crontab reads as {expression!r}, which {error.message}") from None
    got = [spec.minutes, spec.hours, spec.days_of_month, spec.months, spec.days_of_week]
    if [set(v) for v in got] != wanted:  # pragma: no cover - a rendering bug, said plainly
        raise Unmappable(f"the crontab could not be written exactly as cron ({expression!r})")
    return expression


def whole_seconds(every: timedelta, what: str) -> int:
    seconds = every.total_seconds()
    if seconds != int(seconds) or seconds < 1:
        raise Unmappable(f"{what} of {seconds:g} s is not a whole number of seconds of at least 1")
    return int(seconds)


def interval_schedule(every: timedelta, relative: bool, timezone: str | None) -> dict[str, Any]:
    """An interval, in whole seconds. ``relative=True`` (Celery rounds each run to the
    interval's unit: the minute, the hour, the local day) becomes the cron expression
    that runs on those boundaries at the same period, which exists only when the period
    divides the next larger unit; otherwise the entry is refused."""
    seconds = whole_seconds(every, "an interval")
    if not relative or seconds < _MINUTE_S:
        return {"interval_seconds": seconds}
    expression = _relative_cron(seconds)
    if expression is None:
        raise Unmappable(
            f"relative=True with an interval of {seconds} s rounds each run to its unit, "
            "which no fixed schedule repeats"
        )
    if timezone is None:
        raise Unmappable(_LOCAL_TIME)
    return {"cron": expression, "timezone": timezone}


def _relative_cron(seconds: int) -> str | None:
    if seconds < _HOUR_S:
        minutes, rest = divmod(seconds, _MINUTE_S)
        if rest or _HOUR_S // _MINUTE_S % minutes:
            return None
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if seconds < _DAY_S:
        hours, rest = divmod(seconds, _HOUR_S)
        if rest or _DAY_S // _HOUR_S % hours:
            return None
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    return "0 0 * * *" if seconds == _DAY_S else None


_LOCAL_TIME: Final = (
    "the app runs its schedules in the machine's local time (enable_utc=False and no "
    "timezone): set the app's timezone"
)


def taskhub_schedule(value: Any, relative: bool, timezone: str | None) -> dict[str, Any]:
    """A ``beat_schedule`` entry's ``schedule`` (a crontab, a Celery ``schedule``, a
    timedelta or a number of seconds) as a taskhub schedule. ``timezone`` is the app's
    (None: local time, which cannot be named)."""
    if isinstance(value, bool):
        raise Unmappable(f"schedule {value!r} is not a schedule")
    if isinstance(value, int | float):
        value = timedelta(seconds=value)
    if isinstance(value, timedelta):
        return interval_schedule(value, relative, timezone)
    if type(value) is schedule:
        every: timedelta = getattr(value, "run_every")  # noqa: B009 - not in the stubs
        return interval_schedule(every, bool(value.relative), timezone)
    if isinstance(value, solar):
        raise Unmappable(solar_refusal(value.event))
    if isinstance(value, crontab):
        expression = cron_of(value)
        if timezone is None:
            raise Unmappable(_LOCAL_TIME)
        return {"cron": expression, "timezone": timezone}
    if isinstance(value, BaseSchedule):
        raise Unmappable(f"custom schedule class {_class_name(value)}")
    raise Unmappable(f"schedule of type {_class_name(value)} is not one Celery beat knows")


def solar_refusal(event: str) -> str:
    return f"solar schedule ({event}): taskhub has no schedules of sunrise and sunset"


def _class_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"
