"""Tasks (one registered HTTP trigger and its schedule): the service functions that
change them, which the API and the CLI are thin layers over: add, update, pause,
resume, delete and run now. How a task looks from outside, and the reads, are in
:mod:`taskhub.service.task_views`.

Every function takes an open ``Connection`` (the caller's transaction) and the caller's
tenant; another tenant's task is reported exactly like a missing one. Results are
JSON-ready dicts in the API's shape. ``settings`` are the process's, built once.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import credentials, limits
from taskhub.core.addresses import parse_target_url
from taskhub.core.backfill import NONE_EXCLUDED, parse_backfill, plan_backfill
from taskhub.core.clock import utcnow
from taskhub.core.definitions import URL_TARGET_FIELDS, TaskDefinition, parse_definition
from taskhub.core.errors import Conflict, ValidationError
from taskhub.core.occurrences import first_included, idempotency_key
from taskhub.core.schedules import Cron, Interval, Schedule
from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings
from taskhub.core.statuses import ExecutionStatus, PausedBy
from taskhub.db import exclusion_queries, execution_queries, task_queries
from taskhub.db.rows import NewExecution, schedule_of, window_of
from taskhub.engine import withdrawal
from taskhub.service import quotas
from taskhub.service.exclusions import check_calendars_exist
from taskhub.service.task_views import (
    TaskId,
    definition_dict,
    execution_view,
    get_task,
    stored_secrets,
    task_row,
    task_view,
)


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
    definition: TaskDefinition, old_url: str | None, stored: Mapping[str, str]
) -> None:
    """Stored credentials belong to their target's origin: a change of scheme, host or
    port that would keep one without sending it again in full (a masked value sent back,
    or ``target.headers`` not sent at all) is refused, so nobody who can read the task's
    masked headers can send its real credentials to a host of their choosing."""
    new_url = definition.target.url
    if not stored or old_url is None or new_url is None or _origin(new_url) == _origin(old_url):
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


def _definition_columns(definition: TaskDefinition, settings: Settings) -> dict[str, Any]:
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
        "celery": None if definition.target.celery is None else definition.target.celery.to_dict(),
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
        "exclude_calendars": list(definition.exclude_calendars) or None,
        "overlap": definition.overlap.value,
        "retention_days": definition.retention_days,
        "callback": None if definition.callback is None else definition.callback.to_dict(),
        "max_lag_seconds": definition.max_lag_seconds,
    }


def _new_task_values(
    conn: Connection, definition: TaskDefinition, now: datetime, settings: Settings, tenant: str
) -> dict[str, Any]:
    """The row of a new task: its definition's columns and its first occurrence."""
    columns = _definition_columns(definition, settings)
    schedule = schedule_of({**columns, "created_at": now})
    # A new task has no skips yet; its calendars it has (checked by the caller).
    exclusions = exclusion_queries.exclusions_of(
        conn, [{"id": "", "tenant": tenant, **columns, "has_skips": False}]
    ).get("")
    first = first_included(schedule, now, definition.window, exclusions)
    return {
        "id": uuid.uuid4(),
        **columns,
        "tenant": tenant,
        "is_active": True,
        "is_finished": first is None,
        "next_execution_time": first,
        "created_at": now,
        "updated_at": now,
    }


def create_task(
    conn: Connection,
    definition: TaskDefinition,
    now: datetime,
    settings: Settings,
    tenant: str = "default",
) -> uuid.UUID:
    """Store a task as given, no quota checked (loaders and tests); it counts toward its
    tenant's ``max_tasks`` all the same."""
    if task_queries.task_name_taken(conn, tenant, definition.name):
        raise Conflict("a task with this name exists", "name")
    return task_queries.insert_task(conn, _new_task_values(conn, definition, now, settings, tenant))


def parse_task(
    data: Any, now: datetime, settings: Settings, *, require_future_at: bool = True
) -> TaskDefinition:
    """A task definition as this installation takes it: an IP-literal target in a
    blocked address class is refused here (``target.url``), not only when it fires, and
    a Celery target may name only the brokers and result backends configured."""
    return parse_definition(
        data,
        now,
        require_future_at=require_future_at,
        address_policy=settings.address_policy,
        celery_brokers=settings.celery_brokers.keys(),
        # By URL: a tracked task's backend must be one whose results taskhub reads.
        celery_result_backends=settings.celery_result_backends,
    )


def add_task(
    conn: Connection, tenant: str, data: Any, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Create a task from what a user sent (:func:`parse_task`). The tenant's quotas
    apply here (:func:`create_task`, which loaders and tests call, checks none). The
    refusals come in this order: the definition, its calendars, its schedule against
    ``min_interval_seconds`` (422), ``max_tasks`` (409), its name (409). The task is
    returned as the insert stored it (nothing is read back)."""
    definition = parse_task(data, now, settings)
    check_calendars_exist(conn, tenant, definition.exclude_calendars)
    quotas.check_schedule(conn, tenant, definition.schedule, now, settings)
    values = _new_task_values(conn, definition, now, settings, tenant)
    row = task_queries.insert_named_task(conn, values)
    if row is None:
        quotas.refuse_if_full(conn, tenant, settings)  # the quota is named first, as ever
        raise Conflict("a task with this name exists", "name")
    # Last, so the tenant's row is locked only from here to the commit. A new task has
    # no executions, so nothing of it is waiting to be sent (``task_view``'s ``unsent``).
    quotas.take_place(conn, tenant, settings)
    return task_view(row, settings)


def _merge(current: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge-patch: ``target`` and ``retry`` merge field by field; every other field,
    ``schedule`` and ``tags`` included, is replaced whole. A target patch that gives the
    other kind (``celery`` to an HTTP target, ``url`` to a Celery one) switches it: the
    old kind's fields are dropped, ``timeout_seconds`` stays."""
    merged = dict(current)
    for key, value in patch.items():
        if key == "target" and isinstance(value, Mapping) and key in merged:
            merged[key] = {**_switched(merged[key], value), **value}
        elif key == "retry" and isinstance(value, Mapping) and key in merged:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _switched(target: Mapping[str, Any], patch: Mapping[str, Any]) -> Mapping[str, Any]:
    """``target`` less the fields of the kind ``patch`` switches away from."""
    if patch.get("celery") is not None:
        return {k: v for k, v in target.items() if k not in URL_TARGET_FIELDS}
    if patch.get("url") is not None:
        return {k: v for k, v in target.items() if k != "celery"}
    return target


def update_task(
    conn: Connection, tenant: str, task_id: TaskId, patch: Any, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Change fields; the next run is recomputed from now. A credential header sent back
    masked is kept, but only while the target's origin stays the same
    (``_refuse_moved_credentials``).

    A patch of what or when the task fires (``withdrawal.FIRING_FIELDS``) first withdraws
    the occurrences written down and not yet sent; the changed task claims them again as
    it now says (a changed target: the same due times, to the new target)."""
    if not isinstance(patch, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    row = task_row(conn, tenant, task_id, lock=True)
    if "id" in patch or "status" in patch:
        raise ValidationError(
            "id" if "id" in patch else "status",
            "cannot be changed (use pause and resume for status)",
        )
    merged = _merge(definition_dict(row, settings), patch)
    definition = parse_task(merged, now, settings, require_future_at="schedule" in patch)
    if "exclude_calendars" in patch:
        check_calendars_exist(conn, tenant, definition.exclude_calendars)
    stored = stored_secrets(row, settings)
    _refuse_moved_credentials(definition, row["url"], stored)
    definition = _keep_masked(definition, stored)
    if "schedule" in patch:
        quotas.check_schedule(conn, tenant, definition.schedule, now, settings)
    if task_queries.task_name_taken(conn, tenant, definition.name, except_id=row["id"]):
        raise Conflict("a task with this name exists", "name")
    if withdrawal.FIRING_FIELDS & set(patch) and withdrawal.withdraw(
        conn, [row["id"]], now, withdrawal.CHANGE
    ):
        row = task_row(conn, tenant, row["id"], lock=True)  # its next time and count moved back
    columns = _definition_columns(definition, settings)
    values: dict[str, Any] = {**columns, "updated_at": now}
    if {"schedule", "start_at", "end_at", "max_executions", "exclude_calendars"} & set(patch):
        schedule = schedule_of({**columns, "created_at": row["created_at"]})
        window = window_of(columns)
        if window.max_executions is not None and row["occurrence_count"] >= window.max_executions:
            next_time = None
        else:
            exclusions = exclusion_queries.exclusions_of(conn, [{**row, **columns}]).get(
                str(row["id"])
            )
            next_time = first_included(schedule, now, window, exclusions)
        values["next_execution_time"] = next_time
        values["is_finished"] = next_time is None and not task_queries.tasks_with_open_executions(
            conn, [row["id"]]
        )
    task_queries.update_task(conn, row["id"], values)
    return get_task(conn, tenant, row["id"], settings, now)


def delete_task(
    conn: Connection, tenant: str, task_id: TaskId, now: datetime | None = None
) -> None:
    """Deletes the task and, with it, its executions and their attempts (those written
    down and not yet sent are counted as withdrawn)."""
    row = task_row(conn, tenant, task_id, lock=True)
    withdrawal.withdraw(conn, [row["id"]], now or utcnow(), withdrawal.DELETE)
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
    task_id: TaskId,
    now: datetime,
    settings: Settings,
    request: Any = None,
) -> dict[str, Any]:
    """A user's pause; ``request`` is the optional ``{"reason": ...}``. A task already
    paused (by a user or by auto-pause) stays paused as it was: who paused it first, and
    why, is kept. Its occurrences written down and not yet sent are withdrawn; a run-now
    is not (and may be asked for while paused)."""
    row = task_row(conn, tenant, task_id, lock=True)
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
    return get_task(conn, tenant, row["id"], settings, now)


def resume_task(
    conn: Connection, tenant: str, task_id: TaskId, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Occurrences that fell due while paused are skipped: the next run is from now.

    Who paused the task and why are cleared; nothing else is reset, so a task resumed
    after an auto-pause keeps its ``consecutive_failures`` and pauses again at its next
    failure unless it succeeds first."""
    row = task_row(conn, tenant, task_id, lock=True)
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
        values["next_execution_time"] = _next_from(conn, row, now)
    task_queries.update_task(conn, row["id"], values)
    return get_task(conn, tenant, row["id"], settings, now)


def _next_from(conn: Connection, row: RowMapping, now: datetime) -> datetime | None:
    window = window_of(row)
    if window.max_executions is not None and row["occurrence_count"] >= window.max_executions:
        return None
    exclusions = exclusion_queries.exclusions_of(conn, [row]).get(str(row["id"]))
    return first_included(schedule_of(row), now, window, exclusions)


def run_task_now(conn: Connection, tenant: str, task_id: TaskId, now: datetime) -> dict[str, Any]:
    """An extra occurrence, due now: the next tick sends it (the caller may ask for a tick
    at once). It does not count against ``max_executions``, and is allowed while the
    task is paused (a pause never withdraws it).

    The task's row stays locked until the caller commits: a delete waits, then takes this
    execution with it (executions have no foreign key to cascade on)."""
    row = task_row(conn, tenant, task_id, lock=True)
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


def backfill_task(
    conn: Connection, tenant: str, task_id: TaskId, data: Any, now: datetime, settings: Settings
) -> dict[str, int]:
    """Fire now every occurrence of the task's schedule in ``{"start", "end"}`` (see
    :mod:`taskhub.core.backfill`) that has no execution yet; ``{"count": N}``, the ones
    newly written. Each is a ``queued`` execution due at once, like a run-now: the tick
    and the staging loop send them under flow control like any burst, and a pause or a
    change never withdraws them (due at their creation, they are not the schedule's
    staged occurrences). Allowed while the task is paused or finished, as a run-now is.

    The task's row stays locked until the caller commits, so two backfills of the same
    range write each occurrence once (the unique (task, scheduled_for) would anyway)."""
    # The task first, as every route of a task: another tenant's is a 404 whatever
    # the body says.
    row = task_row(conn, tenant, task_id, lock=True)
    asked = parse_backfill(data)
    exclusions = exclusion_queries.exclusions_of(conn, [row]).get(str(row["id"]))
    found = plan_backfill(
        schedule_of(row),
        window_of(row),
        asked,
        now,
        settings.backfill_max_occurrences,
        exclusions or NONE_EXCLUDED,
    )
    queued = ExecutionStatus.QUEUED.value
    rows = [
        NewExecution(row["id"], at, idempotency_key(row["id"], at), queued, now, 0) for at in found
    ]
    inserted = execution_queries.insert_executions(conn, rows, now)
    return {"count": len(inserted)}


# For a batch of tasks (:mod:`taskhub.service.task_batches`), which writes as these do.
definition_columns = _definition_columns
keep_masked = _keep_masked
