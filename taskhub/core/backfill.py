"""Backfill: the occurrences of a task's schedule in a past range, fired now.

Pure: which instants a backfill of ``{"start", "end"}`` names, and why a request is
refused (naming ``start`` or ``end``). Whether one was already executed is the
database's to say (executions are unique on (task, scheduled_for)); sending them is the
engine's, like any other queued execution.

Decisions, said once here and in docs/scheduling.md:

- ``end`` later than now is clamped to now: what falls due after now is the schedule's
  own to fire, and a client whose clock runs ahead still gets "everything up to now".
- ``start`` before the task's ``start_at`` is refused; before its creation is not.
- Occurrences after the task's ``end_at`` are not the task's, so are left out.
  ``max_executions`` does not limit a backfill (as it does not limit a run-now), and
  backfilled occurrences do not count toward it.
- A skipped occurrence, or one on a date of an exclusion calendar the task names, is
  not fired and not counted: the schedule says it does not run (as Temporal's backfill
  follows its schedule's exclusions); unskip it first to backfill it.
- An interval schedule with no ``start_at`` is anchored at the task's creation; before
  that its occurrences continue at the same step (anchor - k * interval_seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskhub.core import wall_clock
from taskhub.core.definitions import parse_time
from taskhub.core.errors import ValidationError
from taskhub.core.exclusions import Exclusions
from taskhub.core.fields import object_of
from taskhub.core.schedules import Interval, Schedule, Window, next_fire_time

__all__ = ["BackfillRange", "occurrences_between", "parse_backfill", "plan_backfill"]

FIELDS = ("start", "end")
#: A task that neither skips nor names calendars.
NONE_EXCLUDED = Exclusions()


@dataclass(frozen=True)
class BackfillRange:
    """The range a user asked for, both ends included, as given (aware UTC)."""

    start: datetime
    end: datetime


def parse_backfill(data: Any) -> BackfillRange:
    """``{"start": ISO, "end": ISO}``: both required, with an offset, ``end`` after
    ``start``. Errors name the field."""
    body: Mapping[str, Any] = object_of(data, "", FIELDS)
    times: dict[str, datetime] = {}
    for name in FIELDS:
        value = parse_time(body.get(name), name)
        if value is None:
            raise ValidationError(name, "is required: an ISO 8601 time with offset")
        times[name] = value
    if times["end"] <= times["start"]:
        raise ValidationError("end", "must be after start")
    return BackfillRange(times["start"], times["end"])


def _reaching_back(schedule: Schedule, start: datetime) -> Schedule:
    """An interval's anchor moved back by whole steps to at or before ``start``: the same
    fire times, continued into the past."""
    if not isinstance(schedule, Interval) or start >= schedule.anchor:
        return schedule
    step = timedelta(seconds=schedule.interval_seconds)
    steps = -((schedule.anchor - start) // -step)  # ceiling
    try:
        return Interval(schedule.interval_seconds, schedule.anchor - steps * step)
    except OverflowError:  # before year 1: from the first representable step
        return schedule


def occurrences_between(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    window: Window,
    limit: int,
    exclusions: Exclusions = NONE_EXCLUDED,
) -> list[datetime]:
    """The schedule's occurrences from ``start`` to ``end`` (both included), sorted, never
    before the window's ``start_at`` or after its ``end_at``, none that ``exclusions``
    leaves out, at most ``limit`` of them (the first ones). ``max_executions`` is not
    applied (see the module's docstring)."""
    if window.start_at is not None:
        start = max(start, window.start_at)
    if window.end_at is not None:
        end = min(end, window.end_at)
    schedule = _reaching_back(schedule, start)
    found: list[datetime] = []
    if start <= wall_clock.EARLIEST:
        start = wall_clock.EARLIEST + wall_clock.ONE_US
    cursor: datetime | None = start - wall_clock.ONE_US
    while len(found) < limit and cursor is not None:
        cursor = next_fire_time(schedule, cursor)
        if cursor is None or cursor > end:
            break
        resume = exclusions.resume_after(cursor)
        if resume is None:
            found.append(cursor)
        else:
            cursor = resume
    return found


def plan_backfill(
    schedule: Schedule,
    window: Window,
    asked: BackfillRange,
    now: datetime,
    max_occurrences: int,
    exclusions: Exclusions = NONE_EXCLUDED,
) -> list[datetime]:
    """The occurrences a backfill of ``asked`` fires at ``now`` (before the database
    drops those already executed), or a refusal naming ``start`` or ``end``."""
    if window.start_at is not None and asked.start < window.start_at:
        raise ValidationError(
            "start", f"must not be before the task's start_at ({window.start_at.isoformat()})"
        )
    if asked.start > now:
        raise ValidationError(
            "start", "must not be in the future: a backfill fires past occurrences"
        )
    found = occurrences_between(
        schedule, asked.start, min(asked.end, now), window, max_occurrences + 1, exclusions
    )
    if len(found) > max_occurrences:
        raise ValidationError(
            "end",
            f"the range holds more than {max_occurrences} occurrences "
            f"(TASKHUB_BACKFILL_MAX_OCCURRENCES): end it sooner, at or before "
            f"{found[max_occurrences - 1].isoformat()}, and backfill the rest in another call",
        )
    return found
