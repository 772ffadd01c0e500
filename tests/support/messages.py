"""A trigger request as a worker receives it, built with whatever a test overrides: the
firing tests and the message-sizing tests build the same one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskhub.core.messages import TriggerRequest

SCHEDULED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def req(url: str, **overrides: Any) -> TriggerRequest:
    values: dict[str, Any] = {
        "execution_id": 41,
        "attempt": 1,
        "task_id": "task-7",
        "scheduled_for": SCHEDULED,
        "idempotency_key": "idem-41",
        "url": url,
        "method": "GET",
        "headers": {},
        "body": None,
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return TriggerRequest(**values)
