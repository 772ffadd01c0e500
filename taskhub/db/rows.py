"""Stored rows read as the values of ``taskhub.core``: what a task row's columns mean.

The engine (a claim) and the service (a task's view) read the same columns the same
way, here, so the meaning of a column is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import RowMapping

from taskhub.core.host_limits import HostLimit
from taskhub.core.schedules import Cron, Interval, OneTime, Schedule, Window


def schedule_of(row: RowMapping | Mapping[str, Any]) -> Schedule:
    """The schedule a stored task row describes. An interval counts from ``start_at``
    when set, else from the task's creation, so its fire times never drift."""
    kind = row["schedule_kind"]
    if kind == "cron":
        return Cron(row["cron_expression"], row["timezone"])
    if kind == "interval":
        return Interval(row["interval_seconds"], anchor=row["start_at"] or row["created_at"])
    return OneTime(row["run_at"])


def window_of(row: RowMapping | Mapping[str, Any]) -> Window:
    return Window(row["start_at"], row["end_at"], row["max_executions"])


def rate_limit_of(row: RowMapping | Mapping[str, Any]) -> HostLimit | None:
    """The task's own flow control (the columns of its ``rate_limit``), None if unset."""
    limit = HostLimit(row.get("rate_limit_max_in_flight"), row.get("rate_limit_per_second"))
    return None if limit.unlimited else limit
