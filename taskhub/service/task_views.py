"""How a task and an execution look from outside, and the reads of tasks: the views
the API and the CLI return (credentials masked), one task or a page of them, and the
fire times a task or a schedule would have.

Every function takes an open ``Connection`` (the caller's transaction) and the caller's
tenant; another tenant's task is reported exactly like a missing one. Results are
JSON-ready dicts in the API's shape. What changes a task is in
:mod:`taskhub.service.task_service`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import credentials, limits, paging
from taskhub.core.callbacks import callback_of
from taskhub.core.clock import utcnow
from taskhub.core.definitions import (
    parse_schedule,
    parse_time,
    parse_window,
    rate_limit_dict,
    schedule_to_dict,
)
from taskhub.core.errors import NotFound, ValidationError
from taskhub.core.exclusions import Exclusions
from taskhub.core.schedules import Cron, Interval, Schedule, Window, next_occurrence
from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings
from taskhub.core.statuses import (
    CallbackStatus,
    ExecutionStatus,
    LastStatus,
    TaskStatus,
    task_status,
)
from taskhub.db import exclusion_queries, task_queries, withdrawal_queries
from taskhub.db.rows import celery_call_of, rate_limit_of, schedule_of, window_of

_MICROSECOND = timedelta(microseconds=1)

#: A task's id as a caller names it: the text of a path or a command line, or a UUID.
TaskId = str | uuid.UUID


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def stored_secrets(row: RowMapping | Mapping[str, Any], settings: Settings) -> dict[str, str]:
    """The task's credential headers in plaintext: its sealed ones, plus any plain header
    whose name counts as a credential (a row stored before that name was configured)."""
    plain = dict(row["headers"])
    found = {k: v for k, v in plain.items() if credentials.is_secret(k, settings.secret_headers)}
    sealed = row.get("sealed_headers") if isinstance(row, Mapping) else None
    if sealed:
        found.update(sealer_for(settings).unseal_json(sealed))
    return found


def _shown_headers(row: RowMapping | Mapping[str, Any], settings: Settings) -> dict[str, str]:
    """The task's headers as they may be shown: credentials masked."""
    plain = {
        k: v
        for k, v in dict(row["headers"]).items()
        if not credentials.is_secret(k, settings.secret_headers)
    }
    return {**plain, **credentials.masked(stored_secrets(row, settings))}


def target_dict(row: RowMapping | Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The task's target as a user would send it: its HTTP call, credential header values
    masked, or its Celery task with every field."""
    celery = celery_call_of(row)
    if celery is not None:
        return {"celery": celery.to_dict(), "timeout_seconds": row["timeout_seconds"]}
    return {
        "url": row["url"],
        "method": row["method"],
        "headers": _shown_headers(row, settings),
        "body": row["body"],
        "timeout_seconds": row["timeout_seconds"],
    }


def definition_dict(row: RowMapping | Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The task as a user would send it (the fields of a task definition), credential
    header values masked."""
    return {
        "name": row["name"],
        "schedule": schedule_to_dict(schedule_of(row)),
        "target": target_dict(row, settings),
        "retry": {
            "max_attempts": row["max_attempts"],
            "backoff_seconds": row["backoff_seconds"],
            "max_backoff_seconds": row["max_backoff_seconds"],
        },
        "start_at": _iso(row["start_at"]),
        "end_at": _iso(row["end_at"]),
        "max_executions": row["max_executions"],
        "tags": dict(row["tags"]),
        "misfire_policy": row["misfire_policy"],
        "auto_pause_after_failures": row["auto_pause_after_failures"],
        "rate_limit": rate_limit_dict(rate_limit_of(row)),
        "spread_seconds": row["spread_seconds"],
        "exclude_calendars": list(row.get("exclude_calendars") or []),
        "overlap": row["overlap"],
        "retention_days": row.get("retention_days"),
        "callback": callback_dict(row.get("callback")),
        "max_lag_seconds": row.get("max_lag_seconds"),
    }


def next_fire(
    row: RowMapping | Mapping[str, Any], unsent: tuple[datetime, int] | None
) -> datetime | None:
    """The next occurrence that will really fire: the earliest of the task's occurrences
    written down but not sent yet (``unsent``, as ``withdrawal_queries.unfired_occurrences`` gives
    it), which its ``next_execution_time`` has already moved past, or that time."""
    stored: datetime | None = row["next_execution_time"]
    if unsent is None or not row["is_active"]:
        return stored
    return unsent[0] if stored is None else min(stored, unsent[0])


def task_view(
    row: RowMapping | Mapping[str, Any],
    settings: Settings,
    unsent: tuple[datetime, int] | None = None,
) -> dict[str, Any]:
    """A task as returned: what was sent plus its state. ``unsent``: see
    :func:`next_fire`."""
    return {
        "id": str(row["id"]),
        **definition_dict(row, settings),
        "status": task_status(is_active=row["is_active"], is_finished=row["is_finished"]).value,
        "next_execution_time": _iso(next_fire(row, unsent)),
        "last_execution_time": _iso(row["last_execution_time"]),
        "last_status": row["last_status"],
        "execution_count": row["execution_count"],
        "consecutive_failures": row["consecutive_failures"],
        "paused_by": row["paused_by"],
        "paused_reason": row["paused_reason"],
        "paused_at": _iso(row["paused_at"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def execution_view(
    row: RowMapping | Mapping[str, Any], callback: RowMapping | None = None
) -> dict[str, Any]:
    """An execution as returned; ``callback``: its newest callback delivery, if any
    (``callback_queries.latest_for_executions``)."""
    return {
        "id": row["id"],
        "task_id": str(row["task_id"]),
        "scheduled_for": _iso(row["scheduled_for"]),
        "status": row["status"],
        "attempts": row["attempts"],
        "http_status": row["http_status"],
        "duration_ms": row["duration_ms"],
        "error": row["error"],
        "response_excerpt": row["response_excerpt"],
        "idempotency_key": row["idempotency_key"],
        "next_attempt_at": _iso(row["next_attempt_at"])
        if row["status"] == ExecutionStatus.QUEUED.value
        else None,
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "created_at": _iso(row["created_at"]),
        "callback": None if callback is None else callback_delivery_view(callback),
    }


def callback_dict(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A task's callback as a user would send it, ``on`` in full (None: none)."""
    callback = callback_of(stored)
    return None if callback is None else callback.to_dict()


def callback_delivery_view(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    """An execution's callback delivery as shown: its status, attempts, and the last
    attempt's HTTP status or error."""
    return {
        "url": row["url"],
        "event": row["event"],
        "status": row["status"],
        "attempts": row["attempts"],
        "http_status": row["http_status"],
        "error": row["error"],
        "next_attempt_at": _iso(row["next_attempt_at"])
        if row["status"] == CallbackStatus.PENDING.value
        else None,
        "last_attempt_at": _iso(row["last_attempt_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


def _task_id(value: TaskId) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("no such task") from None


def task_row(conn: Connection, tenant: str, task_id: TaskId, lock: bool = False) -> RowMapping:
    """The tenant's task, locked until the caller commits if ``lock``; another tenant's
    is :class:`NotFound`, exactly like a missing one."""
    find = task_queries.lock_tenant_task if lock else task_queries.get_tenant_task
    row = find(conn, tenant, _task_id(task_id))
    if row is None:
        raise NotFound("no such task")
    return row


def get_task(
    conn: Connection, tenant: str, task_id: TaskId, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    row = task_row(conn, tenant, task_id)
    return task_view(row, settings, _unfired(conn, [row], now).get(row["id"]))


def _unfired(
    conn: Connection, rows: Sequence[RowMapping], now: datetime | None
) -> dict[uuid.UUID, tuple[datetime, int]]:
    """The active tasks' occurrences written down but not yet sent (:func:`next_fire`)."""
    active = [row["id"] for row in rows if row["is_active"] and not row["is_finished"]]
    return withdrawal_queries.unfired_occurrences(conn, active, now or utcnow())


def tag_filters(tags: list[str]) -> tuple[tuple[str, str], ...]:
    """``key:value`` filters (query parameters, CLI options) as (key, value) pairs."""
    parsed = []
    for tag in tags:
        key, sep, value = tag.partition(":")
        if not sep or not key:
            raise ValidationError("tag", f"use key:value, got {tag[:40]!r}")
        parsed.append((key, value))
    return tuple(parsed)


def list_tasks(
    conn: Connection,
    tenant: str,
    settings: Settings,
    *,
    status: str | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    name_prefix: str | None = None,
    last_status: str | None = None,
    next_before: str | None = None,
    next_after: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    if status is not None and status not in {s.value for s in TaskStatus}:
        raise ValidationError("status", "must be active, paused or finished")
    if last_status is not None and last_status not in {s.value for s in LastStatus}:
        raise ValidationError(
            "last_status", f"must be one of {', '.join(s.value for s in LastStatus)}"
        )
    size = paging.check_limit(limit)
    after = None
    if cursor is not None:
        created_at, last_id = paging.decode(cursor, 2)
        created = parse_time(created_at, "cursor")
        if created is None:
            raise ValidationError("cursor", "is not a cursor this API returned")
        after = (created, _cursor_uuid(last_id))
    filters = task_queries.TaskFilters(
        status=status,
        tags=tag_filters(tags or []),
        name=name,
        name_prefix=name_prefix,
        last_status=last_status,
        next_before=parse_time(next_before, "next_before"),
        next_after=parse_time(next_after, "next_after"),
    )
    rows = task_queries.list_tasks(conn, tenant, filters, after, size + 1)
    unsent = _unfired(conn, rows[:size], now)
    items = [task_view(row, settings, unsent.get(row["id"])) for row in rows[:size]]
    next_cursor = None
    if len(rows) > size:
        last = rows[size - 1]
        next_cursor = paging.encode([last["created_at"].isoformat(), str(last["id"])])
    return {"items": items, "next_cursor": next_cursor}


def owned_task_id(conn: Connection, tenant: str, task_id: TaskId) -> uuid.UUID:
    """The id of the tenant's task (:class:`NotFound` if it is not the tenant's): what a
    filter by task checks before it reads anything else."""
    found: uuid.UUID = task_row(conn, tenant, task_id)["id"]
    return found


def _cursor_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError("cursor", "is not a cursor this API returned") from None


def _preview(
    schedule: Schedule,
    window: Window,
    now: datetime,
    count: int,
    occurrences_so_far: int,
    exclusions: Exclusions | None = None,
    claimed_before: datetime | None = None,
) -> dict[str, Any]:
    """The next ``count`` occurrences from ``now``, each flagged ``skipped`` (with its
    ``reason``, ``skip`` or ``calendar:<name>``) when ``exclusions`` excludes it; an
    excluded one does not count toward ``max_executions``. Occurrences that fire before
    ``claimed_before`` (the task's stored next time) were claimed already: not shown."""
    if not limits.MIN_PREVIEW <= count <= limits.MAX_PREVIEW:
        raise ValidationError(
            "count", f"must be between {limits.MIN_PREVIEW} and {limits.MAX_PREVIEW}"
        )
    zone = ZoneInfo(schedule.timezone) if isinstance(schedule, Cron) else None
    entries: list[dict[str, Any]] = []
    fired = occurrences_so_far
    # Strictly after the cursor: start a microsecond early so an occurrence due exactly
    # now is shown.
    cursor: datetime | None = now - _MICROSECOND
    while len(entries) < count and cursor is not None:
        cursor = next_occurrence(schedule, cursor, window, fired)
        if cursor is None:
            break
        reason = None if exclusions is None else exclusions.reason(cursor)
        if reason is None and claimed_before is not None and cursor < claimed_before:
            continue
        entry: dict[str, Any] = {
            "utc": cursor.isoformat(),
            "local": cursor.astimezone(zone).isoformat() if zone else cursor.isoformat(),
            "skipped": reason is not None,
            "reason": reason,
        }
        if reason is None:
            fired += 1
        entries.append(entry)
    return {
        "timezone": schedule.timezone if isinstance(schedule, Cron) else limits.DEFAULT_TIMEZONE,
        "fire_times": entries,
    }


def preview_task(
    conn: Connection,
    tenant: str,
    task_id: TaskId,
    now: datetime,
    count: int = limits.DEFAULT_PREVIEW,
) -> dict[str, Any]:
    """From the next occurrence that will really fire (:func:`next_fire`): one written
    down but not fired yet comes first, and counts as not yet fired. Occurrences the
    task's skips and exclusion calendars exclude are shown, flagged ``skipped``."""
    row = task_row(conn, tenant, task_id)
    unfired = _unfired(conn, [row], now).get(row["id"])
    if row["is_finished"] or next_fire(row, unfired) is None:
        return _preview(schedule_of(row), window_of(row), now, count, 0) | {"fire_times": []}
    so_far = row["occurrence_count"]
    exclusions = exclusion_queries.exclusions_of(conn, [row]).get(str(row["id"]))
    claimed_before = None
    if unfired is not None:
        start, so_far = unfired[0], so_far - unfired[1]
    elif row["is_active"]:
        start = max(now, row["next_execution_time"])
        if exclusions is not None and start > now:
            # The excluded occurrences before the stored next time are shown too.
            start, claimed_before = now, row["next_execution_time"]
    else:
        start = now
    return _preview(
        schedule_of(row), window_of(row), start, count, so_far, exclusions, claimed_before
    )


def preview_schedule(
    data: Any, now: datetime, count: int = limits.DEFAULT_PREVIEW
) -> dict[str, Any]:
    """The next fire times of a schedule that is not saved: ``{"schedule": {...},
    "start_at", "end_at", "max_executions"}`` (all but ``schedule`` optional)."""
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key not in ("schedule", "start_at", "end_at", "max_executions"):
            raise ValidationError(key, "unknown field")
    if "schedule" not in data:
        raise ValidationError("schedule", "is required")
    schedule = parse_schedule(data["schedule"], now)
    # Read as a task's window is, within the same bounds.
    window = parse_window(data)
    if isinstance(schedule, Interval) and window.start_at is not None:
        # Counted from start_at, exactly as the saved task would be (``schedule_of``).
        schedule = Interval(schedule.interval_seconds, anchor=window.start_at)
    return _preview(schedule, window, now, count, 0)
