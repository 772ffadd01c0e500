"""A real worker of the user's own Celery app (``tests.userapp``), and what it recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.support.processes import wait_until
from tests.userapp import CALLS

#: The repository's root: ``celery -A tests.userapp`` finds the app from there, as a
#: user's ``celery -A`` finds theirs from the current directory.
ROOT = Path(__file__).resolve().parents[2]


class UserWorker:
    """One ``celery -A tests.userapp worker -Q <queues>`` process and its records."""

    def __init__(self, process: subprocess.Popen[bytes], records_url: str, log: Path) -> None:
        self.process = process
        self.records = redis.Redis.from_url(records_url)
        self.log = log

    def calls(self) -> list[dict[str, Any]]:
        """Every call the user's task ran, in the order it ran them."""
        return [json.loads(raw) for raw in self.records.lrange(CALLS, 0, -1)]

    def wait_for_calls(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """At least ``count`` calls (fails with the worker's log if they do not come)."""
        assert wait_until(lambda: self.records.llen(CALLS) >= count, timeout_s), self.logs()
        return self.calls()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def user_worker(
    broker_url: str,
    records_url: str,
    log_dir: Path,
    queues: str = "celery",
    env: Mapping[str, str] | None = None,
) -> Iterator[UserWorker]:
    """A plain Celery worker of the user's app consuming ``queues`` (comma-separated) on
    ``broker_url``, started as a user starts theirs; stopped (killed if need be) after.
    Its records (``records_url``) start empty."""
    records = redis.Redis.from_url(records_url)
    records.delete(CALLS)
    # The test run's environment without taskhub's settings: the user's worker has none.
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
    worker_env.update(
        {"USERAPP_BROKER_URL": broker_url, "USERAPP_RECORD_URL": records_url, **(env or {})}
    )
    name = f"userapp-{queues.replace(',', '-')}"
    log = log_dir / f"{name}.log"
    argv = [
        *(sys.executable, "-m", "celery", "-A", "tests.userapp", "worker", "-Q", queues),
        *("--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"),
        *("--loglevel", "INFO", "-n", f"{name}@%h"),
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=worker_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = UserWorker(process, records_url, log)
    try:
        ready = wait_until(lambda: " ready." in log.read_text(errors="replace"), 60)
        assert ready and process.poll() is None, worker.logs()
        yield worker
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        records.close()
