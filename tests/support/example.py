"""The documented example task: one copy, so the definition parser and the API are held to
the same task."""

from __future__ import annotations

import copy
from typing import Any

_EXAMPLE_TASK: dict[str, Any] = {
    "name": "nightly-report",
    "schedule": {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"},
    "target": {
        "url": "https://example.com/hook",
        "method": "POST",
        "headers": {"X-Team": "billing"},
        "body": '{"kind": "nightly"}',
        "timeout_seconds": 30,
    },
    "retry": {"max_attempts": 3, "backoff_seconds": 10, "max_backoff_seconds": 600},
    "start_at": None,
    "end_at": None,
    "max_executions": None,
    "tags": {"team": "billing"},
}


def example_task() -> dict[str, Any]:
    """The example task definition, every field the API documents set: a fresh copy each
    call, so a test that changes it changes nobody else's."""
    return copy.deepcopy(_EXAMPLE_TASK)
