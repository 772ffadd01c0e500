"""What history retention removes, as pure rules: the sweeps of one prune pass.

An ended execution (``succeeded`` or ``failed``) is kept for its task's
``retention_days``, or the installation's execution retention if the task sets none; a
dead letter for the dead-letter retention, whatever its task sets. A retention of 0
days keeps that kind for ever. The installation's retentions may be fractions of a day; a
task's ``retention_days`` is whole days. Executions that have not ended (``queued``: waiting for a
retry; ``running``) are never removed.

Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Kind = Literal["execution", "dead_letter"]


@dataclass(frozen=True)
class Sweep:
    """One part of a pass: the executions of ``kind`` that ended before ``cutoff``.

    ``task_days``: for ``execution``, None sweeps the tasks without ``retention_days``,
    a number the tasks with exactly that many; for ``dead_letter`` it is None and every
    task's dead letters are swept."""

    kind: Kind
    cutoff: datetime
    task_days: int | None = None


def cutoff(now: datetime, days: float) -> datetime:
    """The instant before which an execution kept for ``days`` days has expired."""
    return now - timedelta(days=days)


def sweeps(
    now: datetime, execution_days: float, dead_letter_days: float, override_days: Iterable[int]
) -> list[Sweep]:
    """The sweeps of a pass at ``now``: the default retention (if not 0), each distinct
    task override, then the dead letters (if not 0)."""
    planned: list[Sweep] = []
    if execution_days > 0:
        planned.append(Sweep("execution", cutoff(now, execution_days)))
    for days in sorted(set(override_days)):
        planned.append(Sweep("execution", cutoff(now, days), days))
    if dead_letter_days > 0:
        planned.append(Sweep("dead_letter", cutoff(now, dead_letter_days)))
    return planned
