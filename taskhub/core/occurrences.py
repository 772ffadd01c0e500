"""Which occurrences a claim fires, and the key that names each occurrence forever.

Pure functions over ``taskhub.core.schedules``. The catch-up rule: every occurrence that is
at most ``misfire_grace_s`` late is fired, each as its own execution, so a tick that
was skipped, a broker flush or a database outage of a few minutes loses nothing.
Occurrences later than that were *missed* (the scheduler was down for longer); the
task's misfire policy says what happens to them:

- ``fire_once``: one execution, for the oldest missed occurrence;
- ``skip``: none; the schedule resumes from the grace horizon;
- ``fire_each``: one execution each, for at most ``fire_each_max`` of them, the newest;
  older ones beyond the bound are skipped, so a year of downtime never floods a target.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskhub.core.exclusions import Exclusions
from taskhub.core.schedules import Schedule, Window, next_occurrence
from taskhub.core.statuses import MisfirePolicy

#: Idempotency keys are UUIDv5 names in this namespace: the same (task, scheduled_for)
#: gives the same key in every process, for every attempt and every redrive.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c1a8e-57a4-4c41-9a43-3a2e0f0c7b11")
_MICROSECOND = timedelta(microseconds=1)


_NAMESPACE_BYTES = IDEMPOTENCY_NAMESPACE.bytes


@functools.lru_cache(maxsize=4096)
def _iso(instant: datetime) -> str:
    """A claim's occurrences share their due times (a busy minute's thousands at one
    second): each is formatted once."""
    return instant.isoformat()


def idempotency_key(task_id: uuid.UUID | str, scheduled_for: datetime) -> str:
    """``uuid5(IDEMPOTENCY_NAMESPACE, "<task id>|<scheduled_for, ISO 8601>")`` as text.

    Computed from the SHA-1 digest directly, without building ``UUID`` objects: a claim
    makes one key per occurrence, and this is a third of ``uuid.uuid5``'s cost."""
    if scheduled_for.utcoffset() != timedelta(0):
        raise ValueError("scheduled_for must be aware UTC")
    name = f"{task_id}|{_iso(scheduled_for)}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def spread_offset_s(key: str, spread_seconds: int) -> float:
    """The occurrence's stable offset in ``[0, spread_seconds)``, to the millisecond.

    Derived from its idempotency key alone, so every tick, redelivery and process agrees,
    and a busy minute's occurrences spread evenly over the window.
    """
    if spread_seconds <= 0:
        return 0.0
    fraction = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return min(spread_seconds - 0.001, round(fraction * spread_seconds, 3))


@dataclass(frozen=True)
class Plan:
    """What one claim does to one task: fire ``fire`` and store ``next_time``."""

    fire: list[datetime]
    next_time: datetime | None


@dataclass(frozen=True)
class ClaimRules:
    """How a claim treats one task's due occurrences: the grace and bounds the settings
    give every claim, and the task's own misfire policy. One value per policy serves a
    whole claim batch."""

    misfire_grace_s: float
    max_per_claim: int
    misfire_policy: MisfirePolicy = MisfirePolicy.FIRE_ONCE
    fire_each_max: int = 100

    def __post_init__(self) -> None:
        if self.max_per_claim < 1:
            raise ValueError("max_per_claim must be at least 1")
        if self.fire_each_max < 1:
            raise ValueError("fire_each_max must be at least 1")


def plan_claim(
    schedule: Schedule,
    window: Window,
    rules: ClaimRules,
    *,
    first_due: datetime,
    now: datetime,
    occurrences_so_far: int,
    horizon: datetime | None = None,
    exclusions: Exclusions | None = None,
) -> Plan:
    """The occurrences due at ``now`` starting at the task's ``next_execution_time``; with
    ``horizon``, also those after ``now`` up to it (what falls due before the next tick, to
    be staged). The misfire rules are measured from the real ``now``: nothing after it can
    be missed, whatever the grace.

    At most ``rules.max_per_claim`` are returned; if more are due, ``next_time`` stays
    due (in the past, or before ``horizon``) and the next claim continues from there
    (whatever was already fired is never returned again: ``next_time`` is always after
    every fired time).

    With ``exclusions``, skipped occurrences and those on an excluded date are stepped
    over: neither fired, nor counted, nor stored as ``next_time``.
    """
    if exclusions is not None and exclusions.empty:
        exclusions = None

    def step(after: datetime, count: int) -> datetime | None:
        return next_included(schedule, after, window, count, exclusions)

    max_per_claim = rules.max_per_claim
    fire: list[datetime] = []
    count = occurrences_so_far
    current: datetime | None = first_due
    if exclusions is not None and current is not None:
        resume = exclusions.resume_after(current)  # excluded after it was stored
        if resume is not None:
            current = step(resume, count)
    grace_horizon = now - timedelta(seconds=rules.misfire_grace_s)
    # Occurrences exactly ``misfire_grace_s`` late are still within the grace.
    just_before_horizon = grace_horizon - _MICROSECOND
    if current is not None and current < grace_horizon:
        policy = rules.misfire_policy
        if policy is MisfirePolicy.FIRE_ONCE:
            fire.append(current)
            count += 1
            current = step(max(current, just_before_horizon), count)
        elif policy is MisfirePolicy.SKIP:
            current = step(just_before_horizon, count)
        else:
            missed = newest_missed(
                schedule, window, current, grace_horizon, count, rules.fire_each_max
            )
            if exclusions is not None:
                missed = [m for m in missed if exclusions.resume_after(m) is None]
            for index, instant in enumerate(missed):
                if len(fire) == max_per_claim:
                    # The rest are among the newest still: the next claim goes on from here.
                    return Plan(fire=fire, next_time=missed[index])
                fire.append(instant)
                count += 1
            after = max(missed[-1], just_before_horizon) if missed else just_before_horizon
            current = step(after, count)
    until = now if horizon is None else max(now, horizon)
    while current is not None and current <= until and len(fire) < max_per_claim:
        fire.append(current)
        count += 1
        current = step(current, count)
    return Plan(fire=fire, next_time=current)


def newest_missed(
    schedule: Schedule,
    window: Window,
    first_due: datetime,
    horizon: datetime,
    occurrences_so_far: int,
    limit: int,
) -> list[datetime]:
    """The newest ``limit`` occurrences in ``[first_due, horizon)``, oldest first, and no
    more than ``max_executions`` still allows.

    Walking every missed occurrence from ``first_due`` could take a year of minutes;
    instead a window ending at the horizon grows (x4) until it holds ``limit`` of them or
    reaches back to ``first_due``, so the work is about the bound, not the downtime.
    """
    if window.max_executions is not None:
        limit = min(limit, window.max_executions - occurrences_so_far)
    if limit < 1:
        return []
    span = timedelta(minutes=1)
    while True:
        start = max(first_due, horizon - span)
        newest: deque[datetime] = deque(maxlen=limit)
        seen = 0
        current: datetime | None = (
            first_due
            if start == first_due
            else next_occurrence(schedule, start - _MICROSECOND, window, occurrences_so_far)
        )
        while current is not None and current < horizon:
            newest.append(current)
            seen += 1
            current = next_occurrence(schedule, current, window, occurrences_so_far)
        if seen >= limit or start == first_due:
            return list(newest)
        span *= 4


def next_included(
    schedule: Schedule,
    after: datetime,
    window: Window,
    occurrences_so_far: int,
    exclusions: Exclusions | None,
) -> datetime | None:
    """The first occurrence after ``after`` that ``exclusions`` does not exclude.

    Terminates: each step over an excluded occurrence passes a skip or a whole excluded
    date, of which a task has finitely many (``limits``)."""
    instant = next_occurrence(schedule, after, window, occurrences_so_far)
    if exclusions is None:
        return instant
    while instant is not None:
        resume = exclusions.resume_after(instant)
        if resume is None:
            return instant
        instant = next_occurrence(schedule, resume, window, occurrences_so_far)
    return None


def first_included(
    schedule: Schedule, now: datetime, window: Window, exclusions: Exclusions | None
) -> datetime | None:
    """The first occurrence at or after ``now`` that ``exclusions`` does not exclude."""
    return next_included(schedule, now - _MICROSECOND, window, 0, exclusions)
