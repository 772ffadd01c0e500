"""The peer the benchmark compares with: celery-redbeat, one beat entry per schedule.

Each entry sends one Celery task that makes one HTTP GET (urllib3, one pool per worker
process) to the same local target, with the entry's name as ``Idempotency-Key``. The
worker runs with taskhub's worker settings (acks late, prefetch 1).

    celery -A bench.redbeat_app beat -S redbeat.RedBeatScheduler
    celery -A bench.redbeat_app worker -P threads -c 16
"""

from __future__ import annotations

import os
from typing import Any

import urllib3
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDBEAT_REDIS_URL", "redis://127.0.0.1:6379/12")

app = Celery("redbeat_bench")
app.conf.update(
    broker_url=REDIS_URL,
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    timezone="UTC",
    enable_utc=True,
    redbeat_redis_url=REDIS_URL,
    redbeat_key_prefix="bench-redbeat:",
    beat_max_loop_interval=1,
    # redbeat's lock lives 5 loop intervals by default (5 s here): a tick that sends
    # thousands of tasks outlives it and beat dies with LockNotOwnedError after sending.
    redbeat_lock_timeout=60,
    task_default_queue="redbeat-bench",
)

_pool = urllib3.PoolManager(maxsize=256, block=False, retries=False)


@app.task(name="bench.fire")
def fire(url: str, key: str) -> int:
    response: Any = _pool.request(
        "GET", url, headers={"Idempotency-Key": key}, timeout=urllib3.Timeout(5, 30)
    )
    return int(response.status)
