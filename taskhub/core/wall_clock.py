"""Wall-clock time in an IANA zone: which instant a local time names.

Daylight-saving rule. Cron fields are matched against local wall-clock times in the task's zone:

1. A matching wall time that does not exist (clocks jump forward over it) fires once, at
   the instant the clock jumps (the first instant after the gap). Several such wall times
   in one gap collapse into that single fire, and if the first wall time after the gap
   also matches, that is the same fire (never twice at one instant).
2. A matching wall time that occurs twice (clocks fall back) fires once, at its first
   (earlier) instant — UNLESS the expression's hour field, as written, begins with `*`
   (``*``, ``*/2``: a job that runs through the hours), which then follows real time and
   fires at both instants. Only the hour field counts: ``* 1 * * *`` fires in the first
   pass only, and so does ``0 0-23 * * *``. (Vixie cron differs: it repeats an entry
   whose minute or hour field begins with ``*``.)

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

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from taskhub.core.errors import ScheduleError

REFUSED_ZONES = frozenset({"localtime", "posixrules"})


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name` (errors name field "schedule.timezone")."""
    if not isinstance(name, str):
        raise ScheduleError("schedule.timezone", "must be a string")
    if name in REFUSED_ZONES:
        raise ScheduleError("schedule.timezone", f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise ScheduleError(
            "schedule.timezone",
            f"unknown time zone {name!r}; use an IANA name such as 'Asia/Taipei'",
        ) from None


ONE_US = timedelta(microseconds=1)
ONE_MINUTE = timedelta(minutes=1)
ONE_SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
PROBE_STEP = timedelta(hours=6)  # shorter than the gap between any two offset changes
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
LATEST = datetime(9999, 12, 29, tzinfo=UTC)  # leaves room for any UTC offset


def offset_at(tz: ZoneInfo, instant: datetime) -> timedelta:
    """UTC offset of `tz` at an aware instant (clamped to the representable range)."""
    if instant < EARLIEST:
        instant = EARLIEST
    elif instant > LATEST:
        instant = LATEST
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # ZoneInfo always knows its offset
    return offset


def wall_offset(tz: ZoneInfo, wall: datetime, fold: int) -> timedelta:
    offset = wall.replace(tzinfo=tz, fold=fold).utcoffset()
    assert offset is not None
    return offset


def transition_between(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """First whole second in (low, high] whose offset differs from `low`'s.

    Binary search: zoneinfo exposes offsets but not the transition list, and the tz
    database puts every transition on a whole second.
    """
    before = offset_at(tz, low)
    low_s = (low - EPOCH) // ONE_SECOND
    high_s = -((EPOCH - high) // ONE_SECOND)  # ceiling
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if offset_at(tz, EPOCH + timedelta(seconds=middle)) == before:
            low_s = middle
        else:
            high_s = middle
    return EPOCH + timedelta(seconds=high_s)


Change = tuple[datetime, timedelta, timedelta]  # (instant, offset before, offset after)


@lru_cache(maxsize=1024)
def changes_around(tz: ZoneInfo, day_ordinal: int) -> tuple[Change, ...]:
    """Offset changes from a day before UTC day `day_ordinal` to two days after.

    Cached because every task due near a transition asks about the same few days.
    """
    low = max(datetime.fromordinal(day_ordinal).replace(tzinfo=UTC) - DAY, EARLIEST)
    high = min(low + 3 * DAY, LATEST)
    found = []
    probe, probe_offset = low, offset_at(tz, low)
    while probe < high:
        following = min(probe + PROBE_STEP, high)
        following_offset = offset_at(tz, following)
        if following_offset != probe_offset:
            found.append((transition_between(tz, probe, following), probe_offset, following_offset))
        probe, probe_offset = following, following_offset
    return tuple(found)


def first_instant(tz: ZoneInfo, wall: datetime, changes: tuple[Change, ...] = ()) -> datetime:
    """First instant at which the local clock reads `wall` or later (rules 1 and 2)."""
    offset = wall_offset(tz, wall, 0)
    later_offset = wall_offset(tz, wall, 1)
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
    return transition_between(tz, low, high)


def floor_minute(wall: datetime) -> datetime:
    return wall.replace(second=0, microsecond=0)


def ceil_minute(wall: datetime) -> datetime:
    floor = floor_minute(wall)
    return floor if floor == wall else floor + ONE_MINUTE
