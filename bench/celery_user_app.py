"""The user's own Celery app of the ``celery`` scenario: it imports nothing of taskhub.

Its one task records when its worker received each call, in a Redis list of the
benchmark's db: one string per call, ``"<unix time> <name> <Celery task id>
<taskhub_scheduled_for or ->"``, one ``RPUSH`` each. The same worker consumes what
taskhub sends and what celery-redbeat sends (queue ``bench-user``):

    celery -A bench.celery_user_app worker -Q bench-user -P threads -c 32   # two of them
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_USER_REDIS_URL", "redis://127.0.0.1:6379/12")
#: The queue the user's worker consumes, and the list its task records each call in.
QUEUE = "bench-user"
RECEIPTS = "bench-user:receipts"
TASK = "bench.user.record"

app = Celery("bench_user", broker=REDIS_URL)
app.conf.update(
    result_backend=None,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    enable_utc=True,
)
_records = redis.Redis.from_url(REDIS_URL)


@app.task(bind=True, name=TASK)
def record(self: Any, name: str) -> None:
    """Record this call's receipt: the time first, before anything else is read."""
    at = time.time()
    request = self.request
    scheduled_for = getattr(request, "taskhub_scheduled_for", None) or "-"
    _records.rpush(RECEIPTS, f"{at} {name} {request.id} {scheduled_for}")
