"""The storage tests' world: one clock reading, one settings object, and helpers that add
a task, claim what is due and write an outcome back, shared by the tests of the database
layer, of the stored counters and of holders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core import settings
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.db.models import executions
from taskhub.engine import discovery
from taskhub.service import task_service

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = settings.load(
    {
        "TASKHUB_CLAIM_BATCH_SIZE": "50",
        "TASKHUB_DISPATCH_LEASE_SECONDS": "60",
        "TASKHUB_PUBLISH_LEAD_SECONDS": "2",
    }
)


def add_task(engine: Engine, name: str, schedule: dict[str, Any], **extra: Any) -> uuid.UUID:
    data = {
        "name": name,
        "schedule": schedule,
        "target": {"url": "http://target.test/hook"},
        **extra,
    }
    with engine.begin() as conn:
        return task_service.create_task(
            conn,
            parse_definition(data, NOW - timedelta(hours=1)),
            NOW - timedelta(hours=1),
            SETTINGS,
        )


def outcome(
    request: TriggerRequest,
    http_status: int | None = 200,
    error_kind: str | None = None,
    at: datetime = NOW,
) -> TriggerOutcome:
    """The outcome a trigger worker would report for ``request``, its attempt started ``at``."""
    return TriggerOutcome(
        execution_id=request.execution_id,
        attempt=request.attempt,
        started_at=at,
        duration_ms=12,
        http_status=http_status,
        error_kind=error_kind,
        error=None if http_status and http_status < 300 else f"HTTP {http_status}",
        retry_after_s=None,
        response_excerpt="ok",
    )


def claim_all(engine: Engine, now: datetime) -> list[TriggerRequest]:
    requests: list[TriggerRequest] = []
    discovery.run_tick(engine, SETTINGS, requests.extend, lambda: now)
    return requests


def execution_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(executions).order_by(executions.c.id)).mappings())
