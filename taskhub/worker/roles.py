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

Pools, concurrencies, the log level and Flower's address come from the process's
``Settings`` (``LaunchSettings``), which name the variables that change them.
  It sees the workers through Celery events, which exist on Redis, not on SQS.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Final

from taskhub.core.settings import LaunchSettings, Settings
from taskhub.worker.queues import DISCOVERY_QUEUE, STATE_QUEUE, TRIGGER_QUEUE

ROLES = ("trigger", "state", "beat", "all", "flower")


@dataclass(frozen=True)
class _Worker:
    """A worker role's command line: which queues (all when None), and which of the
    launch settings give its pool and its concurrency."""

    queues: tuple[str, ...] | None
    pool: Callable[[LaunchSettings], str]
    concurrency: Callable[[LaunchSettings], int]


_WORKERS: Final = {
    "trigger": _Worker(
        (TRIGGER_QUEUE,), attrgetter("trigger_pool"), attrgetter("trigger_concurrency")
    ),
    "state": _Worker(
        (DISCOVERY_QUEUE, STATE_QUEUE), attrgetter("state_pool"), attrgetter("state_concurrency")
    ),
    "all": _Worker(None, lambda _launch: "threads", attrgetter("worker_concurrency")),
}


def celery_argv(role: str, settings: Settings) -> list[str]:
    """The command line of ``role`` under ``settings`` (the process's, built once)."""
    launch = settings.launch
    loglevel = settings.log_level
    # This interpreter's celery, so an unactivated virtualenv still runs its own. Worker
    # and beat run celery's own commands without the umbrella's plugins (worker.command).
    base = [sys.executable, "-m", "taskhub.worker.command"]
    worker = _WORKERS.get(role)
    if worker is not None:
        queues = [] if worker.queues is None else ["-Q", ",".join(worker.queues)]
        pool = worker.pool(launch)
        concurrency = str(worker.concurrency(launch))
        name = f"{role}@%h"
        return [*base, "worker", *queues, "-P", pool, "-c", concurrency, "-n", name,
                "--loglevel", loglevel]  # fmt: skip
    if role == "beat":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        schedule = str(settings.data_dir / "celerybeat-schedule")
        return [*base, "beat", "--schedule", schedule, "--loglevel", loglevel]
    if role == "flower":
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "taskhub",
            "flower",
            f"--address={launch.flower_address}",
            f"--port={launch.flower_port}",
        ]
    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
