"""A user's own Celery app, as taskhub's users run theirs: it imports nothing of taskhub.

Its workers are started by the tests (``tests.support.celery_user``) as a plain
``celery -A tests.userapp worker -Q <queue>``. Its task records each call it runs, with
what a task can read of the message that brought it, in a Redis list of the test run's
own db: ``USERAPP_RECORD_URL``, key :data:`CALLS`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import celery
import redis
from celery import Celery

#: The Redis list each call is appended to, as one JSON object.
CALLS = "userapp:calls"

app = Celery(
    "userapp",
    broker=os.environ.get("USERAPP_BROKER_URL", "redis://127.0.0.1:6379/15"),
    backend=os.environ.get("USERAPP_RESULT_BACKEND") or None,
    set_as_current=True,
)
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
)
_records = redis.Redis.from_url(os.environ.get("USERAPP_RECORD_URL", "redis://127.0.0.1:6379/15"))


@app.task(bind=True, name="userapp.tasks.record")
def record(self: Any, *args: Any, **kwargs: Any) -> str:
    """Record this call: its Celery task id, taskhub's three headers as the task reads
    them, its arguments and the queue it came from."""
    return _record(self.request, args, kwargs)


class QuotaExceeded(Exception):
    """A user's own exception class, which taskhub's process cannot import."""


@app.task(bind=True, name="userapp.tasks.fail")
def fail(self: Any, *args: Any, **kwargs: Any) -> None:
    """Record this call, then fail with the user's own exception and ``args``."""
    _record(self.request, args, kwargs)
    raise QuotaExceeded(*args)


@app.task(bind=True, name="userapp.tasks.sleep")
def sleep(self: Any, *args: Any, **kwargs: Any) -> str:
    """Record this call, then take ``args[0]`` seconds before succeeding."""
    _record(self.request, args, kwargs)
    time.sleep(float(args[0]))
    return "slept"


def _record(request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    call = {
        "id": request.id,
        # As docs/sending.md shows it ("Celery targets").
        "taskhub_task_id": getattr(request, "taskhub_task_id", None),
        "taskhub_scheduled_for": getattr(request, "taskhub_scheduled_for", None),
        "taskhub_attempt": getattr(request, "taskhub_attempt", None),
        "args": list(args),
        "kwargs": kwargs,
        "queue": (request.delivery_info or {}).get("routing_key"),
        "taskhub_imported": any(name.split(".")[0] == "taskhub" for name in sys.modules),
        "celery": celery.__version__,
    }
    _records.rpush(CALLS, json.dumps(call))
    return str(request.id)
