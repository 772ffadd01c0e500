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
from pathlib import Path

ROLES = ("trigger", "state", "beat", "all", "flower")


def celery_argv(role: str, env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    data_dir = Path(env.get("TASKHUB_DATA_DIR") or ".taskhub")
    loglevel = env.get("TASKHUB_LOG_LEVEL") or "INFO"
    # This interpreter's celery, so an unactivated virtualenv still runs its own. Worker
    # and beat run celery's own commands without the umbrella's plugins (celery_command).
    base = [sys.executable, "-m", "taskhub.worker.command"]
    if role == "trigger":
        concurrency = env.get("TASKHUB_TRIGGER_CONCURRENCY") or "128"
        return [
            *base,
            "worker",
            "-Q",
            "taskhub.triggers",
            "-P",
            env.get("TASKHUB_TRIGGER_POOL") or "threads",
            "-c",
            concurrency,
            "-n",
            "trigger@%h",
            "--loglevel",
            loglevel,
        ]
    if role == "state":
        concurrency = env.get("TASKHUB_STATE_CONCURRENCY") or "4"
        return [
            *base,
            "worker",
            "-Q",
            "taskhub.discovery,taskhub.state",
            "-P",
            env.get("TASKHUB_STATE_POOL") or "threads",
            "-c",
            concurrency,
            "-n",
            "state@%h",
            "--loglevel",
            loglevel,
        ]
    if role == "beat":
        data_dir.mkdir(parents=True, exist_ok=True)
        return [
            *base,
            "beat",
            "--schedule",
            str(data_dir / "celerybeat-schedule"),
            "--loglevel",
            loglevel,
        ]
    if role == "all":
        concurrency = env.get("TASKHUB_WORKER_CONCURRENCY") or "16"
        return [
            *base,
            "worker",
            "-P",
            "threads",
            "-c",
            concurrency,
            "-n",
            "all@%h",
            "--loglevel",
            loglevel,
        ]
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
