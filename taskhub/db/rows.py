"""Rows crossing the line between the domain and SQL.

Read: stored rows as the values of ``taskhub.core`` (what a task row's columns mean);
the engine (a claim) and the service (a task's view) read the same columns the same
way, here, so the meaning of a column is written once. Written: the typed rows the
engine and the service hand the hot writes, so bind names stay inside ``taskhub.db``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy.engine import RowMapping

from taskhub.core.celery_calls import CeleryCall
from taskhub.core.host_limits import HostLimit
from taskhub.core.schedules import Cron, Interval, OneTime, Schedule, Window

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def dataclass_of(cls: type[D], row: RowMapping | Mapping[str, Any]) -> D:
    """``cls`` built from the columns of ``row`` named like its fields: a public row
    (an API key, a signing secret) is copied column by column in one place."""
    return cls(**{field.name: row[field.name] for field in dataclasses.fields(cls)})


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


def celery_call_of(row: RowMapping | Mapping[str, Any]) -> CeleryCall | None:
    """The Celery task a task sends (its ``celery`` column), None for an HTTP target."""
    stored = row.get("celery")
    return None if stored is None else CeleryCall.from_dict(stored)


def rate_limit_of(row: RowMapping | Mapping[str, Any]) -> HostLimit | None:
    """The task's own flow control (the columns of its ``rate_limit``), None if unset."""
    limit = HostLimit(row.get("rate_limit_max_in_flight"), row.get("rate_limit_per_second"))
    return None if limit.unlimited else limit


# --- rows the hot writes take (``taskhub.db.recordsets`` declares their SQL types) ----


class NewExecution(NamedTuple):
    """An occurrence a claim writes down (``execution_queries.insert_executions``)."""

    task_id: uuid.UUID | str
    scheduled_for: datetime
    idempotency_key: str
    status: str
    #: Staged: the second to publish it; published now: the end of its publish lease.
    next_attempt_at: datetime
    publish_count: int


class TaskAdvance(NamedTuple):
    """A claimed task's next occurrence (``task_queries.advance_tasks``)."""

    id: uuid.UUID | str
    next_time: datetime | None
    #: Added to the task's ``occurrence_count``.
    occurrences: int
    finished: bool


class PublishLease(NamedTuple):
    """An execution published again, and when a tick may publish it once more if no
    outcome came back (``execution_queries.mark_published``)."""

    id: int
    lease_until: datetime


class Deferral(NamedTuple):
    """A throttled fire: back to ``queued`` until ``next_attempt_at``."""

    id: int
    next_attempt_at: datetime


class AwaitingResult(NamedTuple):
    """A tracked Celery task sent: its result is due by ``result_due_by``."""

    id: int
    result_due_by: datetime


class ResultEnd(NamedTuple):
    """A tracked Celery task's execution ended by its result, or by its timeout
    (``result_queries.end_awaiting``)."""

    id: int
    status: str
    error: str | None
    finished_at: datetime


class ExecutionResult(NamedTuple):
    """An attempt's effect on its execution (``execution_queries.update_execution_results``)."""

    id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    http_status: int | None
    duration_ms: int | None
    error: str | None
    response_excerpt: str | None
    started_at: datetime | None
    finished_at: datetime | None


class AttemptRow(NamedTuple):
    """One attempt (``execution_queries.insert_attempts``)."""

    execution_id: int
    number: int
    started_at: datetime
    duration_ms: int | None
    http_status: int | None
    error_kind: str | None
    error: str | None


class TaskResult(NamedTuple):
    """A write-back's effect on a task (``task_queries.update_task_results``)."""

    id: uuid.UUID
    last_execution_time: datetime | None
    last_status: str | None
    execution_count: int
    consecutive_failures: int
    is_finished: bool
    is_active: bool
    paused_by: str | None
    paused_reason: str | None
    paused_at: datetime | None
    updated_at: datetime


class Hold(NamedTuple):
    """A fire a trigger message takes for its process (``hold_queries.hold_executions``):
    only if the execution waits for exactly ``attempt``; held until ``lease_until``."""

    id: int
    attempt: int
    lease_until: datetime


class TaskHeaders(NamedTuple):
    """A task's headers re-sealed (``key_queries.update_task_headers``)."""

    id: uuid.UUID
    headers: Mapping[str, Any]
    sealed_headers: str | None


class NewCallbackDelivery(NamedTuple):
    """A task's callback of one ended execution, inserted in the write-back that ended
    it (``callback_queries.insert_deliveries``)."""

    execution_id: int
    task_id: uuid.UUID
    tenant: str
    url: str
    event: str
    document: Mapping[str, Any]


class CallbackAttempt(NamedTuple):
    """What one attempt of a delivery leaves it as (``callback_queries.record_attempt``):
    ``attempt`` is the number its sender took it with."""

    id: int
    attempt: int
    status: str
    next_attempt_at: datetime | None
    http_status: int | None
    error: str | None
    at: datetime
