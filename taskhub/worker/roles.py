"""Launch profiles: the command line of each process role.

One source for ``workers/*.sh``, ``taskhub dev`` and docker-compose, so that the
production split described in the README is the one that runs.

- ``trigger``: consumes only ``taskhub.triggers``. Threads pool: each thread hands its
  message's requests to the process's one asyncio HTTP client and waits, so a thread
  costs a few hundred KB instead of a ~50 MB prefork child, and a hung target holds one
  thread, not a process. Concurrency = messages in flight per process.
- ``state``: consumes ``taskhub.discovery`` and ``taskhub.state``: the tick and the
  chord callbacks, both short database transactions. Threads (-c 4) in a process of
  its own: the work waits on the database, and its JSON and SQL should not share a GIL
  with the HTTP client.
- ``beat``: the scheduler that sends the tick; running two is harmless (the claim is
  atomic), running none stops everything.
- ``all``: one worker for every queue (what ``celery -A taskhub worker`` does too);
  used by ``taskhub dev``.
- ``flower``: Celery's monitor, on ``TASKHUB_FLOWER_ADDRESS``:``TASKHUB_FLOWER_PORT``.
  It sees the workers through Celery events, which exist on Redis, not on SQS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taskhub.worker.queues import DISCOVERY_QUEUE, STATE_QUEUE, TRIGGER_QUEUE

ROLES = ("trigger", "state", "beat", "all", "flower")


@dataclass(frozen=True)
class _Worker:
    """A worker role's command line: which queues (all when None), which pool and how
    many threads, each with the variable that changes it."""

    queues: tuple[str, ...] | None
    pool_variable: str | None
    concurrency_variable: str
    default_concurrency: int


_WORKERS: Final = {
    "trigger": _Worker(
        (TRIGGER_QUEUE,), "TASKHUB_TRIGGER_POOL", "TASKHUB_TRIGGER_CONCURRENCY", 128
    ),
    "state": _Worker(
        (DISCOVERY_QUEUE, STATE_QUEUE), "TASKHUB_STATE_POOL", "TASKHUB_STATE_CONCURRENCY", 4
    ),
    "all": _Worker(None, None, "TASKHUB_WORKER_CONCURRENCY", 16),
}


def celery_argv(role: str, env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    loglevel = env.get("TASKHUB_LOG_LEVEL") or "INFO"
    # This interpreter's celery, so an unactivated virtualenv still runs its own. Worker
    # and beat run celery's own commands without the umbrella's plugins (worker.command).
    base = [sys.executable, "-m", "taskhub.worker.command"]
    worker = _WORKERS.get(role)
    if worker is not None:
        queues = [] if worker.queues is None else ["-Q", ",".join(worker.queues)]
        pool = (worker.pool_variable and env.get(worker.pool_variable)) or "threads"
        concurrency = env.get(worker.concurrency_variable) or str(worker.default_concurrency)
        name = f"{role}@%h"
        return [*base, "worker", *queues, "-P", pool, "-c", concurrency, "-n", name,
                "--loglevel", loglevel]  # fmt: skip
    if role == "beat":
        data_dir = Path(env.get("TASKHUB_DATA_DIR") or ".taskhub")
        data_dir.mkdir(parents=True, exist_ok=True)
        schedule = str(data_dir / "celerybeat-schedule")
        return [*base, "beat", "--schedule", schedule, "--loglevel", loglevel]
    if role == "flower":
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "taskhub",
            "flower",
            f"--address={env.get('TASKHUB_FLOWER_ADDRESS') or '127.0.0.1'}",
            f"--port={env.get('TASKHUB_FLOWER_PORT') or '5555'}",
        ]
    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
