"""Executions and dead letters: reading a tenant's history, and redriving.

A dead letter is an execution that exhausted its attempts (status ``dead``). Redriving
sends it again with the same idempotency key and a fresh budget of attempts; its attempt
numbers keep counting up, so a receiver can tell the rounds apart.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from taskhub import paging, queries
from taskhub.definitions import parse_time
from taskhub.errors import Conflict, NotFound, ValidationError
from taskhub.statuses import ExecutionStatus
from taskhub.tasks import execution_view, get_task

STATUSES = frozenset(s.value for s in ExecutionStatus)


def list_executions(
    conn: Connection,
    tenant: str,
    *,
    task_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Newest first. With ``task_id``, one task's (404 if it is not the tenant's);
    otherwise every task's of the tenant."""
    task_uuid = None
    if task_id is not None:
        task_uuid = uuid.UUID(get_task(conn, tenant, task_id)["id"])
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(sorted(STATUSES))}")
    size = paging.check_limit(limit)
    before_id = None
    if cursor is not None:
        [before_id] = paging.decode(cursor, 1)
        if not isinstance(before_id, int) or isinstance(before_id, bool):
            raise ValidationError("cursor", "is not a cursor this API returned")
    filters = queries.ExecutionFilters(
        task_id=task_uuid,
        status=status,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
    )
    rows = queries.list_executions(conn, tenant, filters, before_id, size + 1)
    next_cursor = paging.encode([rows[size - 1]["id"]]) if len(rows) > size else None
    return {"items": [execution_view(r) for r in rows[:size]], "next_cursor": next_cursor}


def list_dead_letters(conn: Connection, tenant: str, **filters: Any) -> dict[str, Any]:
    return list_executions(conn, tenant, status=ExecutionStatus.DEAD.value, **filters)


def _execution_id(value: str | int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound("no such execution") from None


def get_execution(conn: Connection, tenant: str, execution_id: str | int) -> dict[str, Any]:
    row = queries.get_tenant_execution(conn, tenant, _execution_id(execution_id))
    if row is None:
        raise NotFound("no such execution")
    return execution_view(row)


def redrive(
    conn: Connection, tenant: str, execution_id: str | int, now: datetime
) -> dict[str, Any]:
    """Send a dead letter again: the next tick picks it up (the caller may ask for one)."""
    row = queries.get_tenant_execution(conn, tenant, _execution_id(execution_id))
    if row is None:
        raise NotFound("no such dead letter")
    if row["status"] != ExecutionStatus.DEAD.value:
        raise Conflict(f"the execution is {row['status']}, not dead", "status")
    queries.redrive_execution(conn, row["id"], now)
    return get_execution(conn, tenant, row["id"])
