"""Executions and dead letters: reading a tenant's history, and redriving.

A dead letter is an execution that exhausted its attempts (status ``dead``). Redriving
sends it again with the same idempotency key and a fresh budget of attempts; its attempt
numbers keep counting up, so a receiver can tell the rounds apart. A bulk redrive does
the same for every dead letter that matches a filter, in bounded batches, each its own
transaction, so that redriving a million never holds a million row locks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from taskhub.core import paging
from taskhub.core.definitions import parse_tags, parse_time
from taskhub.core.errors import Conflict, NotFound, ValidationError
from taskhub.core.statuses import ExecutionStatus
from taskhub.db import callback_queries, execution_queries
from taskhub.service.task_views import execution_view, owned_task_id, tag_filters

STATUSES = frozenset(s.value for s in ExecutionStatus)
#: Dead letters redriven per transaction by a bulk redrive.
REDRIVE_BATCH_SIZE = 500
REDRIVE_FILTER_FIELDS = ("task_id", "tags", "since", "until", "all")


def list_executions(
    conn: Connection,
    tenant: str,
    *,
    task_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    tags: list[str] | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Newest first. With ``task_id``, one task's (404 if it is not the tenant's);
    otherwise every task's of the tenant. ``tags`` (``key:value``) filter on the task's."""
    task_uuid = None
    if task_id is not None:
        task_uuid = owned_task_id(conn, tenant, task_id)
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(sorted(STATUSES))}")
    size = paging.check_limit(limit)
    before_id = None
    if cursor is not None:
        [before_id] = paging.decode(cursor, 1)
        if not isinstance(before_id, int) or isinstance(before_id, bool):
            raise ValidationError("cursor", "is not a cursor this API returned")
    filters = execution_queries.ExecutionFilters(
        task_id=task_uuid,
        status=status,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        tags=tag_filters(tags or []),
    )
    rows = execution_queries.list_executions(conn, tenant, filters, before_id, size + 1)
    next_cursor = paging.encode([rows[size - 1]["id"]]) if len(rows) > size else None
    shown = rows[:size]
    sent = callback_queries.latest_for_executions(conn, (r["id"] for r in shown))
    items = [execution_view(r, sent.get(r["id"])) for r in shown]
    return {"items": items, "next_cursor": next_cursor}


def list_dead_letters(conn: Connection, tenant: str, **filters: Any) -> dict[str, Any]:
    return list_executions(conn, tenant, status=ExecutionStatus.DEAD.value, **filters)


def _execution_id(value: str | int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound("no such execution") from None


def get_execution(conn: Connection, tenant: str, execution_id: str | int) -> dict[str, Any]:
    row = execution_queries.get_tenant_execution(conn, tenant, _execution_id(execution_id))
    if row is None:
        raise NotFound("no such execution")
    sent = callback_queries.latest_for_executions(conn, [row["id"]])
    return execution_view(row, sent.get(row["id"]))


def redrive(
    conn: Connection, tenant: str, execution_id: str | int, now: datetime
) -> dict[str, Any]:
    """Send a dead letter again: the next tick picks it up (the caller may ask for one)."""
    row = execution_queries.get_tenant_execution(conn, tenant, _execution_id(execution_id))
    if row is None:
        raise NotFound("no such dead letter")
    if row["status"] != ExecutionStatus.DEAD.value:
        raise Conflict(f"the execution is {row['status']}, not dead", "status")
    execution_queries.redrive_execution(conn, row["id"], now)
    return get_execution(conn, tenant, row["id"])


def parse_redrive_filter(
    conn: Connection, tenant: str, data: Any
) -> execution_queries.ExecutionFilters:
    """A bulk redrive's body: ``{"task_id"?, "tags"?, "since"?, "until"?}`` with at least
    one filter, or ``{"all": true}``: redriving everything is never the default."""
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key not in REDRIVE_FILTER_FIELDS:
            raise ValidationError(key, "unknown field")
    # An empty tags object filters nothing: it does not count as a filter.
    given = [key for key in REDRIVE_FILTER_FIELDS[:-1] if data.get(key) not in (None, {})]
    if "all" in data:
        if data["all"] is not True:
            raise ValidationError("all", "must be true (or left out)")
        if given:
            raise ValidationError("all", f"cannot be combined with {given[0]}")
    elif not given:
        raise ValidationError(
            "", 'give at least one of task_id, tags, since, until, or {"all": true}'
        )
    task_uuid = None
    task_id = data.get("task_id")
    if task_id is not None:
        if not isinstance(task_id, str):
            raise ValidationError("task_id", "must be a task id")
        task_uuid = owned_task_id(conn, tenant, task_id)
    tags = parse_tags(data.get("tags"))
    return execution_queries.ExecutionFilters(
        task_id=task_uuid,
        since=parse_time(data.get("since"), "since"),
        until=parse_time(data.get("until"), "until"),
        tags=tuple(sorted(tags.items())),
    )


def redrive_matching(
    engine: Engine, tenant: str, data: Any, now: datetime, batch_size: int = REDRIVE_BATCH_SIZE
) -> dict[str, int]:
    """Redrive every dead letter of the tenant that matches the filter ``data`` (see
    :func:`parse_redrive_filter`): each as :func:`redrive` does, in batches of
    ``batch_size``, one transaction each. The filter is checked before anything changes;
    if a batch fails, the batches before it stay redriven and a repeat redrives the rest.
    Returns ``{"redriven": N}``; the caller may ask for a tick."""
    with engine.begin() as conn:
        filters = parse_redrive_filter(conn, tenant, data)
    redriven = 0
    after_id: int | None = None
    while True:
        with engine.begin() as conn:
            ids = execution_queries.lock_dead_letters(conn, tenant, filters, after_id, batch_size)
            redriven += execution_queries.redrive_executions(conn, ids, now)
        if len(ids) < batch_size:
            return {"redriven": redriven}
        after_id = ids[-1]
