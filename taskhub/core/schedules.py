"""When a task fires: cron, fixed-interval and one-time schedules, plus the window limits.

Pure functions on timezone-aware UTC instants, so the API (validation and previews), the
discovery task (next run after a fire) and the tests all share one definition of "due".
Nothing here knows about HTTP, Celery or databases.

Cron syntax is ``taskhub.core.cron``'s; which instant a local wall time names, across
daylight-saving changes, is ``taskhub.core.wall_clock``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from taskhub.core import limits, wall_clock
from taskhub.core.cron import CronSpec, parse_cron
from taskhub.core.errors import ScheduleError
from taskhub.core.wall_clock import zone

__all__ = [
    "Cron",
    "Interval",
    "OneTime",
    "Schedule",
    "Window",
    "first_occurrence",
    "next_fire_time",
    "next_occurrence",
    "shortest_gap",
    "upcoming",
    "validate",
    "validate_window",
]


@dataclass(frozen=True)
class Cron:
    """Five-field cron expression evaluated in an IANA time zone."""

    expression: str
    timezone: str = limits.DEFAULT_TIMEZONE


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


def _cron_next(spec: CronSpec, tz: ZoneInfo, after: datetime) -> datetime | None:
    if after >= wall_clock.LATEST:
        return None
    # Hot path (discovery runs it thousands of times a second): datetime.replace() is slow,
    # so wall times are built from fields and results by subtracting the offset.
    local = after.astimezone(tz)
    after_offset = local.utcoffset()
    last_year = min(9999, after.year + _SEARCH_YEARS)
    if (
        after > wall_clock.EARLIEST
        and (after - wall_clock.DAY).astimezone(tz).utcoffset() == after_offset
        and (after + wall_clock.DAY).astimezone(tz).utcoffset() == after_offset
    ):
        # No offset change within a day either side: wall time is UTC plus a constant.
        assert after_offset is not None
        start = datetime(local.year, local.month, local.day, local.hour, local.minute)
        wall = spec._next_wall(start + wall_clock.ONE_MINUTE, last_year, UTC)
        if wall is None:
            return None
        instant = wall - after_offset  # the wall time, labelled UTC, shifted to real UTC
        if instant <= after + wall_clock.DAY:
            return instant
        return _checked(wall_clock.first_instant(tz, wall.replace(tzinfo=None)))
    return _cron_next_near_transition(spec, tz, after, last_year)


def _cron_next_near_transition(
    spec: CronSpec, tz: ZoneInfo, after: datetime, last_year: int
) -> datetime | None:
    """The careful path, taken within a day of an offset change."""
    wall_after = after.astimezone(tz).replace(tzinfo=None)
    changes = wall_clock.changes_around(tz, after.toordinal())
    # The highest wall time shown so far: after a fall-back the clock reads less than it
    # did just before, and wall times up to that peak have had their first pass.
    highest_wall = wall_after
    for instant, before, after_change in changes:
        if after_change < before and instant <= after:
            highest_wall = max(
                highest_wall, (instant - wall_clock.ONE_US).replace(tzinfo=None) + before
            )
    wall = spec._next_wall(wall_clock.floor_minute(highest_wall) + wall_clock.ONE_MINUTE, last_year)
    best = None if wall is None else wall_clock.first_instant(tz, wall, changes)
    if spec.hour_star:
        for instant, before, after_change in changes:
            repeat = before - after_change
            if repeat <= timedelta(0) or instant + repeat <= after:
                continue
            # Second pass of the repeated wall times, in real time order.
            start = instant.replace(tzinfo=None) + after_change
            if instant <= after:
                start = max(start, wall_clock.floor_minute(wall_after) + wall_clock.ONE_MINUTE)
            second = spec._next_wall(wall_clock.ceil_minute(start), last_year)
            if second is not None and second < instant.replace(tzinfo=None) + before:
                candidate = (second - after_change).replace(tzinfo=UTC)
                if best is None or candidate < best:
                    best = candidate
    return None if best is None else _checked(best)


def _checked(instant: datetime) -> datetime | None:
    return None if instant >= wall_clock.LATEST else instant


def _interval_next(schedule: Interval, after: datetime) -> datetime | None:
    interval_seconds = schedule.interval_seconds
    _check_interval_seconds(interval_seconds)
    anchor = _field_utc(schedule.anchor, "schedule.anchor")
    if after < anchor:
        return anchor
    # Integer microseconds: anchor + k * interval exactly, however far from the anchor.
    step_us = interval_seconds * 1_000_000
    elapsed_us = (after - anchor) // wall_clock.ONE_US
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
            after = start_at - wall_clock.ONE_US  # start_at itself is allowed
    instant = next_fire_time(schedule, after)
    if instant is None:
        return None
    if window.end_at is not None and instant > _as_utc(window.end_at, "end_at"):
        return None
    return instant


def first_occurrence(schedule: Schedule, now: datetime, window: Window) -> datetime | None:
    """The first occurrence at or after `now`: a schedule due exactly now fires now."""
    return next_occurrence(schedule, _as_utc(now, "now") - wall_clock.ONE_US, window, 0)


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

_DENSITY_LIMIT = wall_clock.DAY


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
    best = below if wall is None else min(below, wall * wall_clock.ONE_MINUTE)
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


def _month_days(day: date) -> int:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (following - timedelta(days=1)).day


# Each calendar day and the day after it, with their months' lengths, over a leap year
# and a common one (a February of 29 days and one of 28).
_DAY_PAIRS = tuple(
    (first.month, first.day, _month_days(first), second.month, second.day, _month_days(second))
    for first, second in (
        (date(2024, 1, 1) + timedelta(days=n), date(2024, 1, 1) + timedelta(days=n + 1))
        for n in range(366 + 365)
    )
)


@lru_cache(maxsize=1024)
def _adjacent_days(spec: CronSpec) -> bool:
    """Whether two consecutive days can both match. Over the years every date falls on
    every weekday (the 29th of February too), so each pair of dates is tried with each
    pair of consecutive weekdays; a day's match depends only on its day number, weekday
    and month length (the day tokens L, W, # and dL too). Cached per expression."""
    for month, day, days, next_month, next_day, next_days in _DAY_PAIRS:
        if month not in spec.months or next_month not in spec.months:
            continue
        for weekday in range(7):
            if spec._day_matches(day, weekday, days) and spec._day_matches(
                next_day, (weekday + 1) % 7, next_days
            ):
                return True
    return False


@lru_cache(maxsize=256)
def _changes_between(tz: ZoneInfo, start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The instants in (start, end] at which `tz` changes its UTC offset. Cached: a
    caller that rounds its window to the day probes a zone's year once a day."""
    found = []
    probe = max(start, wall_clock.EARLIEST)
    end = min(end, wall_clock.LATEST)
    probe_offset = wall_clock.offset_at(tz, probe)
    while probe < end:
        following = min(probe + wall_clock.PROBE_STEP, end)
        following_offset = wall_clock.offset_at(tz, following)
        if following_offset != probe_offset:
            found.append(wall_clock.transition_between(tz, probe, following))
        probe, probe_offset = following, following_offset
    return tuple(found)


def _shortest_gap_near(schedule: Cron, change: datetime, best: timedelta) -> timedelta:
    """`best`, or a shorter gap between consecutive fires near `change`. Away from it
    fires are wall times at one offset, whose gaps the fields already bound; a pair
    shorter than `best` that the change shortened has a fire within `best` of it."""
    fire = next_fire_time(schedule, change - best - wall_clock.ONE_US)
    while fire is not None and fire <= change + best:
        following = next_fire_time(schedule, fire)
        if following is None:
            break
        best = min(best, following - fire)
        fire = following
    return best
