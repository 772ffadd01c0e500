"""Which occurrences of a task are excluded: skipped one by one, or falling on a date of
one of its exclusion calendars (a date in that calendar's own time zone).

Pure: the schedule stepping (``taskhub.core.occurrences``) takes an :class:`Exclusions`
and steps over what it excludes, so the next occurrence stored for a task, the claim and
the preview all agree on what fires. An excluded instant also says where stepping may
resume (the end of an excluded local day), so a task firing every second steps over a
holiday in one step, not 86,400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from taskhub.core import limits
from taskhub.core.errors import ValidationError
from taskhub.core.wall_clock import zone

SKIP_REASON = "skip"
CALENDAR_REASON_PREFIX = "calendar:"
_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Calendar:
    """Dates (in ``timezone``) on which no occurrence of a task that names it fires."""

    name: str
    timezone: str
    dates: frozenset[date]


@dataclass(frozen=True)
class Exclusions:
    """A task's skipped occurrences (aware UTC) and its calendars."""

    skips: frozenset[datetime] = frozenset()
    calendars: tuple[Calendar, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.skips and not any(c.dates for c in self.calendars)

    def reason(self, instant: datetime) -> str | None:
        """Why ``instant`` does not fire (``skip`` or ``calendar:<name>``), None if it does.
        A skip wins over a calendar; among calendars, the first named."""
        if instant in self.skips:
            return SKIP_REASON
        for calendar in self.calendars:
            if instant.astimezone(zone(calendar.timezone)).date() in calendar.dates:
                return CALENDAR_REASON_PREFIX + calendar.name
        return None

    def resume_after(self, instant: datetime) -> datetime | None:
        """None if ``instant`` fires; otherwise the latest instant every occurrence up
        to which is excluded too (at least ``instant``): stepping continues after it."""
        if self.reason(instant) is None:
            return None
        resume = instant
        for calendar in self.calendars:
            tz = zone(calendar.timezone)
            day = instant.astimezone(tz).date()
            if day in calendar.dates:
                resume = max(resume, _end_of_day(day, calendar.timezone))
        return resume


def _end_of_day(day: date, timezone: str) -> datetime:
    """The last microsecond of ``day`` in ``timezone`` (aware UTC): just before the first
    instant whose local date is the next day."""
    tz = zone(timezone)
    following = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    # A zone may skip midnight (a DST jump at 00:00): the fold-0 reading can land an hour
    # early or late; walk to the exact boundary by its local date.
    while following.astimezone(tz).date() > day:
        following -= timedelta(hours=1)
    while following.astimezone(tz).date() <= day:
        following += timedelta(minutes=15)
    while (following - timedelta(minutes=1)).astimezone(tz).date() > day:
        following -= timedelta(minutes=1)
    return following - _ONE_US


def parse_calendar_dates(values: object, path: str = "dates") -> frozenset[date]:
    """A calendar's ``dates``: a list of distinct ``YYYY-MM-DD`` strings, at most
    ``MAX_CALENDAR_DATES``; refused naming ``dates[i]`` otherwise."""
    if not isinstance(values, list):
        raise ValidationError(path, "must be a list of dates (YYYY-MM-DD)")
    if len(values) > limits.MAX_CALENDAR_DATES:
        raise ValidationError(path, f"must hold at most {limits.MAX_CALENDAR_DATES} dates")
    found: set[date] = set()
    for index, value in enumerate(values):
        where = f"{path}[{index}]"
        if not isinstance(value, str) or len(value) != 10:
            raise ValidationError(where, "must be a date as YYYY-MM-DD")
        try:
            found.add(date.fromisoformat(value))
        except ValueError:
            raise ValidationError(where, "must be a date as YYYY-MM-DD") from None
    return frozenset(found)
