"""Tasks (one registered HTTP trigger and its schedule): the service functions
that the API and the CLI are thin layers over.

Every function takes an open ``Connection`` (the caller's transaction) and the caller's
tenant; another tenant's task is reported exactly like a missing one. Results are
JSON-ready dicts in the API's shape.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import credentials, limits, paging
from taskhub.core.addresses import parse_target_url
from taskhub.core.definitions import (
    TaskDefinition,
    parse_definition,
    parse_schedule,
    parse_time,
    parse_window,
    rate_limit_dict,
    schedule_to_dict,
)
from taskhub.core.errors import Conflict, NotFound, ValidationError
from taskhub.core.occurrences import idempotency_key
from taskhub.core.schedules import (
    Cron,
    Interval,
    Schedule,
    Window,
    first_occurrence,
    upcoming,
)
from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings, load
from taskhub.core.statuses import ExecutionStatus, LastStatus, PausedBy, TaskStatus, task_status
from taskhub.db import execution_queries, task_queries, withdrawal_queries
from taskhub.db.rows import rate_limit_of, schedule_of, window_of
from taskhub.engine import withdrawal
from taskhub.service import quotas

__all__ = ["ValidationError", "parse_definition"]

_MICROSECOND = timedelta(microseconds=1)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def schedule_columns(schedule: Schedule) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "cron_expression": None,
        "timezone": limits.DEFAULT_TIMEZONE,
        "interval_seconds": None,
        "run_at": None,
    }
    if isinstance(schedule, Cron):
        columns.update(
            schedule_kind="cron", cron_expression=schedule.expression, timezone=schedule.timezone
        )
    elif isinstance(schedule, Interval):
        columns.update(schedule_kind="interval", interval_seconds=schedule.interval_seconds)
    else:
        columns.update(schedule_kind="at", run_at=schedule.at)
    return columns


def _stored_secrets(row: RowMapping | Mapping[str, Any], settings: Settings) -> dict[str, str]:
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
    return {**plain, **credentials.masked(_stored_secrets(row, settings))}


def _keep_masked(definition: TaskDefinition, stored: Mapping[str, str]) -> TaskDefinition:
    """A credential header sent back exactly as it was shown (masked) keeps its stored
    value: a client may PATCH the task it read without knowing the secret."""
    by_name = {name.lower(): value for name, value in stored.items()}
    headers = {}
    for name, value in definition.target.headers.items():
        old = by_name.get(name.lower())
        headers[name] = old if old is not None and value == credentials.mask(old) else value
    return dataclasses.replace(
        definition, target=dataclasses.replace(definition.target, headers=headers)
    )


def _origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of a stored (so valid) URL, as the HTTP client reads it:
    where a request and its credentials go."""
    target = parse_target_url(url)
    return target.url.scheme, target.host, target.port


def _refuse_moved_credentials(
    definition: TaskDefinition, old_url: str, stored: Mapping[str, str]
) -> None:
    """Stored credentials belong to their target's origin: a change of scheme, host or
    port that would keep one without sending it again in full (a masked value sent back,
    or ``target.headers`` not sent at all) is refused, so nobody who can read the task's
    masked headers can send its real credentials to a host of their choosing."""
    if not stored or _origin(definition.target.url) == _origin(old_url):
        return
    by_name = {name.lower(): value for name, value in stored.items()}
    carried = [
        name
        for name, value in definition.target.headers.items()
        if (old := by_name.get(name.lower())) is not None and value == credentials.mask(old)
    ]
    if carried:
        raise ValidationError(
            "target.headers",
            f"target.url moves to another scheme, host or port, and stored credentials "
            f"are not sent there: give {', '.join(sorted(carried))} again in full, "
            f"or leave {'them' if len(carried) > 1 else 'it'} out of target.headers",
        )


def _definition_columns(
    definition: TaskDefinition, settings: Settings | None = None
) -> dict[str, Any]:
    settings = settings or load()
    plain, secret = credentials.split(definition.target.headers, settings.secret_headers)
    return {
        "name": definition.name,
        **schedule_columns(definition.schedule),
        "start_at": definition.window.start_at,
        "end_at": definition.window.end_at,
        "max_executions": definition.window.max_executions,
        "url": definition.target.url,
        "method": definition.target.method,
        "headers": plain,
        "sealed_headers": sealer_for(settings).seal_json(secret) if secret else None,
        "body": definition.target.body,
        "timeout_seconds": definition.target.timeout_seconds,
        "max_attempts": definition.retry.max_attempts,
        "backoff_seconds": definition.retry.backoff_seconds,
        "max_backoff_seconds": definition.retry.max_backoff_seconds,
        "tags": definition.tags,
        "misfire_policy": definition.misfire_policy.value,
        "auto_pause_after_failures": definition.auto_pause_after_failures,
        "rate_limit_max_in_flight": None
        if definition.rate_limit is None
        else definition.rate_limit.max_in_flight,
        "rate_limit_per_second": None
        if definition.rate_limit is None
        else definition.rate_limit.per_second,
        "spread_seconds": definition.spread_seconds,
    }


def definition_dict(
    row: RowMapping | Mapping[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """The task as a user would send it (the fields of a task definition), credential
    header values masked."""
    settings = settings or load()
    return {
        "name": row["name"],
        "schedule": schedule_to_dict(schedule_of(row)),
        "target": {
            "url": row["url"],
            "method": row["method"],
            "headers": _shown_headers(row, settings),
            "body": row["body"],
            "timeout_seconds": row["timeout_seconds"],
        },
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
    settings: Settings | None = None,
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


def _task_id(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("no such task") from None


def _row(conn: Connection, tenant: str, task_id: str | uuid.UUID, lock: bool = False) -> RowMapping:
    find = task_queries.lock_tenant_task if lock else task_queries.get_tenant_task
    row = find(conn, tenant, _task_id(task_id))
    if row is None:
        raise NotFound("no such task")
    return row


def create_task(
    conn: Connection,
    definition: TaskDefinition,
    now: datetime,
    tenant: str = "default",
    settings: Settings | None = None,
) -> uuid.UUID:
    if task_queries.task_name_taken(conn, tenant, definition.name):
        raise Conflict("a task with this name exists", "name")
    columns = _definition_columns(definition, settings)
    schedule = schedule_of({**columns, "created_at": now})
    first = first_occurrence(schedule, now, definition.window)
    return task_queries.insert_task(
        conn,
        {
            **columns,
            "tenant": tenant,
            "is_active": True,
            "is_finished": first is None,
            "next_execution_time": first,
            "created_at": now,
            "updated_at": now,
        },
    )


def add_task(
    conn: Connection, tenant: str, data: Any, now: datetime, settings: Settings | None = None
) -> dict[str, Any]:
    """Create a task from what a user sent; an IP-literal target in a blocked address
    class is refused here (``target.url``), not only when it fires. The tenant's quotas
    apply here (:func:`create_task`, which loaders and tests call, checks none)."""
    settings = settings or load()
    definition = parse_definition(data, now, address_policy=settings.address_policy)
    quotas.admit_task(conn, tenant, definition.schedule, now, settings)
    task_id = create_task(conn, definition, now, tenant, settings)
    return get_task(conn, tenant, task_id, settings, now)


def get_task(
    conn: Connection,
    tenant: str,
    task_id: str | uuid.UUID,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    row = _row(conn, tenant, task_id)
    return task_view(row, settings, _unfired(conn, [row], now).get(row["id"]))


def _unfired(
    conn: Connection, rows: Sequence[RowMapping], now: datetime | None
) -> dict[uuid.UUID, tuple[datetime, int]]:
    """The active tasks' occurrences written down but not yet sent (:func:`next_fire`)."""
    active = [row["id"] for row in rows if row["is_active"] and not row["is_finished"]]
    return withdrawal_queries.unfired_occurrences(conn, active, now or datetime.now(UTC))


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
    items = [task_view(row, unsent=unsent.get(row["id"])) for row in rows[:size]]
    next_cursor = None
    if len(rows) > size:
        last = rows[size - 1]
        next_cursor = paging.encode([last["created_at"].isoformat(), str(last["id"])])
    return {"items": items, "next_cursor": next_cursor}


def _cursor_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError("cursor", "is not a cursor this API returned") from None


def _merge(current: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge-patch: ``target`` and ``retry`` merge field by field; every other field,
    ``schedule`` and ``tags`` included, is replaced whole."""
    merged = dict(current)
    for key, value in patch.items():
        if key in ("target", "retry") and isinstance(value, Mapping) and key in merged:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def update_task(
    conn: Connection,
    tenant: str,
    task_id: str | uuid.UUID,
    patch: Any,
    now: datetime,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Change fields; the next run is recomputed from now. A credential header sent back
    masked is kept, but only while the target's origin stays the same
    (``_refuse_moved_credentials``).

    A patch of what or when the task fires (``withdrawal.FIRING_FIELDS``) first withdraws
    the occurrences written down and not yet sent; the changed task claims them again as
    it now says (a changed target: the same due times, to the new target)."""
    settings = settings or load()
    if not isinstance(patch, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    row = _row(conn, tenant, task_id, lock=True)
    if "id" in patch or "status" in patch:
        raise ValidationError(
            "id" if "id" in patch else "status",
            "cannot be changed (use pause and resume for status)",
        )
    merged = _merge(definition_dict(row, settings), patch)
    definition = parse_definition(
        merged,
        now,
        require_future_at="schedule" in patch,
        address_policy=settings.address_policy,
    )
    stored_secrets = _stored_secrets(row, settings)
    _refuse_moved_credentials(definition, row["url"], stored_secrets)
    definition = _keep_masked(definition, stored_secrets)
    if "schedule" in patch:
        quotas.check_schedule(conn, tenant, definition.schedule, now, settings)
    if task_queries.task_name_taken(conn, tenant, definition.name, except_id=row["id"]):
        raise Conflict("a task with this name exists", "name")
    if withdrawal.FIRING_FIELDS & set(patch) and withdrawal.withdraw(
        conn, [row["id"]], now, withdrawal.CHANGE
    ):
        row = _row(conn, tenant, row["id"], lock=True)  # its next time and count moved back
    columns = _definition_columns(definition, settings)
    values: dict[str, Any] = {**columns, "updated_at": now}
    if "schedule" in patch or {"start_at", "end_at", "max_executions"} & set(patch):
        schedule = schedule_of({**columns, "created_at": row["created_at"]})
        window = window_of(columns)
        if window.max_executions is not None and row["occurrence_count"] >= window.max_executions:
            next_time = None
        else:
            next_time = first_occurrence(schedule, now, window)
        values["next_execution_time"] = next_time
        values["is_finished"] = next_time is None and not task_queries.tasks_with_open_executions(
            conn, [row["id"]]
        )
    task_queries.update_task(conn, row["id"], values)
    return get_task(conn, tenant, row["id"], settings, now)


def delete_task(
    conn: Connection, tenant: str, task_id: str | uuid.UUID, now: datetime | None = None
) -> None:
    """Deletes the task and, with it, its executions and their attempts (those written
    down and not yet sent are counted as withdrawn)."""
    row = _row(conn, tenant, task_id, lock=True)
    withdrawal.withdraw(conn, [row["id"]], now or datetime.now(UTC), withdrawal.DELETE)
    task_queries.delete_task(conn, row["id"])


def parse_pause_request(data: Any) -> str | None:
    """The optional body of a pause, ``{"reason": "..."}``; the reason."""
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key != "reason":
            raise ValidationError(key, "unknown field")
    reason = data.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > limits.MAX_PAUSE_REASON_CHARS:
        raise ValidationError(
            "reason", f"must be a string of at most {limits.MAX_PAUSE_REASON_CHARS} characters"
        )
    return reason


def pause_task(
    conn: Connection,
    tenant: str,
    task_id: str | uuid.UUID,
    now: datetime,
    request: Any = None,
) -> dict[str, Any]:
    """A user's pause; ``request`` is the optional ``{"reason": ...}``. A task already
    paused (by a user or by auto-pause) stays paused as it was: who paused it first, and
    why, is kept. Its occurrences written down and not yet sent are withdrawn; a run-now
    is not (and may be asked for while paused)."""
    row = _row(conn, tenant, task_id, lock=True)
    reason = parse_pause_request({} if request is None else request)
    if row["is_finished"]:
        raise Conflict("the task is finished", "status")
    if row["is_active"]:
        withdrawal.withdraw(conn, [row["id"]], now, withdrawal.PAUSE)
        task_queries.update_task(
            conn,
            row["id"],
            {
                "is_active": False,
                "paused_by": PausedBy.USER.value,
                "paused_reason": reason,
                "paused_at": now,
                "updated_at": now,
            },
        )
    return get_task(conn, tenant, row["id"], now=now)


def resume_task(
    conn: Connection, tenant: str, task_id: str | uuid.UUID, now: datetime
) -> dict[str, Any]:
    """Occurrences that fell due while paused are skipped: the next run is from now.

    Who paused the task and why are cleared; nothing else is reset, so a task resumed
    after an auto-pause keeps its ``consecutive_failures`` and pauses again at its next
    failure unless it succeeds first."""
    row = _row(conn, tenant, task_id, lock=True)
    if row["is_finished"]:
        raise Conflict("the task is finished", "status")
    values: dict[str, Any] = {
        "is_active": True,
        "paused_by": None,
        "paused_reason": None,
        "paused_at": None,
        "updated_at": now,
    }
    if not row["is_active"] and row["next_execution_time"] is not None:
        values["next_execution_time"] = _next_from(row, now)
    task_queries.update_task(conn, row["id"], values)
    return get_task(conn, tenant, row["id"], now=now)


def _next_from(row: RowMapping, now: datetime) -> datetime | None:
    window = window_of(row)
    if window.max_executions is not None and row["occurrence_count"] >= window.max_executions:
        return None
    return first_occurrence(schedule_of(row), now, window)


def run_task_now(
    conn: Connection, tenant: str, task_id: str | uuid.UUID, now: datetime
) -> dict[str, Any]:
    """An extra occurrence, due now: the next tick sends it (the caller may ask for a tick
    at once). It does not count against ``max_executions``, and is allowed while the
    task is paused (a pause never withdraws it).

    The task's row stays locked until the caller commits: a delete waits, then takes this
    execution with it (executions have no foreign key to cascade on)."""
    row = _row(conn, tenant, task_id, lock=True)
    execution = execution_queries.insert_execution(
        conn,
        {
            "task_id": row["id"],
            "scheduled_for": now,
            "idempotency_key": idempotency_key(row["id"], now),
            "status": ExecutionStatus.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return execution_view(execution)


def execution_view(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
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
    }


def _preview(
    schedule: Schedule, window: Window, now: datetime, count: int, occurrences_so_far: int
) -> dict[str, Any]:
    if not limits.MIN_PREVIEW <= count <= limits.MAX_PREVIEW:
        raise ValidationError(
            "count", f"must be between {limits.MIN_PREVIEW} and {limits.MAX_PREVIEW}"
        )
    zone = ZoneInfo(schedule.timezone) if isinstance(schedule, Cron) else None
    # ``upcoming`` gives fire times strictly after its base; start a microsecond early so
    # an occurrence due exactly now is shown.
    times = upcoming(schedule, now - _MICROSECOND, window, count, occurrences_so_far)
    return {
        "timezone": schedule.timezone if isinstance(schedule, Cron) else limits.DEFAULT_TIMEZONE,
        "fire_times": [
            {
                "utc": t.isoformat(),
                "local": t.astimezone(zone).isoformat() if zone else t.isoformat(),
            }
            for t in times
        ],
    }


def preview_task(
    conn: Connection,
    tenant: str,
    task_id: str | uuid.UUID,
    now: datetime,
    count: int = limits.DEFAULT_PREVIEW,
) -> dict[str, Any]:
    """From the next occurrence that will really fire (:func:`next_fire`): one written
    down but not sent yet comes first, and counts as not yet fired."""
    row = _row(conn, tenant, task_id)
    unsent = _unfired(conn, [row], now).get(row["id"])
    if row["is_finished"] or next_fire(row, unsent) is None:
        return _preview(schedule_of(row), window_of(row), now, count, 0) | {"fire_times": []}
    so_far = row["occurrence_count"]
    if unsent is not None:
        start, so_far = unsent[0], so_far - unsent[1]
    elif row["is_active"]:
        start = max(now, row["next_execution_time"])
    else:
        start = now
    return _preview(schedule_of(row), window_of(row), start, count, so_far)


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
