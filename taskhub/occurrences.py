"""Which occurrences a claim fires, and the key that names each occurrence forever.

Pure functions over ``taskhub.schedules``. The catch-up rule: every occurrence that is
at most ``misfire_grace_s`` late is fired, each as its own execution, so a tick that
was skipped, a broker flush or a database outage of a few minutes loses nothing.
Occurrences later than that (the scheduler was down for longer) collapse into one
execution, for the oldest missed one, and the schedule resumes from now.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskhub.schedules import Schedule, Window, next_occurrence

#: Idempotency keys are UUIDv5 names in this namespace: the same (task, scheduled_for)
#: gives the same key in every process, for every attempt and every redrive.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c1a8e-57a4-4c41-9a43-3a2e0f0c7b11")


def idempotency_key(task_id: uuid.UUID | str, scheduled_for: datetime) -> str:
    if scheduled_for.utcoffset() != timedelta(0):
        raise ValueError("scheduled_for must be aware UTC")
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{task_id}|{scheduled_for.isoformat()}"))


@dataclass(frozen=True)
class Plan:
    """What one claim does to one task: fire ``fire`` and store ``next_time``."""

    fire: list[datetime]
    next_time: datetime | None


def plan_claim(
    schedule: Schedule,
    window: Window,
    *,
    first_due: datetime,
    now: datetime,
    occurrences_so_far: int,
    misfire_grace_s: float,
    max_per_claim: int,
) -> Plan:
    """The occurrences due at ``now`` starting at the task's ``next_execution_time``.

    At most ``max_per_claim`` are returned; if more are due, ``next_time`` stays in the
    past and the next claim continues from there.
    """
    if max_per_claim < 1:
        raise ValueError("max_per_claim must be at least 1")
    fire: list[datetime] = []
    count = occurrences_so_far
    current: datetime | None = first_due
    horizon = now - timedelta(seconds=misfire_grace_s)
    if current is not None and current < horizon:
        fire.append(current)
        count += 1
        # Occurrences exactly ``misfire_grace_s`` late are still within the grace.
        resume_after = max(current, horizon - timedelta(microseconds=1))
        current = next_occurrence(schedule, resume_after, window, count)
    while current is not None and current <= now and len(fire) < max_per_claim:
        fire.append(current)
        count += 1
        current = next_occurrence(schedule, current, window, count)
    return Plan(fire=fire, next_time=current)
