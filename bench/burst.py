"""N one-time tasks due at the same second, fired at a local target: lag and makespan.

    python bench/burst.py --tasks 2000 --layout split

Needs PostgreSQL and Redis as the tests do (TASKHUB_TEST_POSTGRES_URL,
TASKHUB_TEST_REDIS_URL; Redis db 12 is flushed). Creates a scratch database, loads the
tasks due a few seconds ahead, starts the chosen process layout with taskhub's launch
profiles and a one-second tick, waits until every execution has ended, and prints one
JSON object: fired / lost / doubled, lag (arrival at the target - due time) p50 / p95 /
p99 / max, makespan, and peak RSS per process.

Layouts: ``split`` = trigger worker (threads) + state worker (prefork) + beat, as in
production; ``all`` = one worker for every queue (what ``taskhub dev`` runs) + beat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis
import sqlalchemy as sa

from taskhub import db, schema, tasks
from taskhub.models import executions
from tests.processes import Stack, wait_until
from tests.target import running_target

POSTGRES_URL = os.environ.get("TASKHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
REDIS_URL = (
    os.environ.get("TASKHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/12").rsplit("/", 1)[0] + "/12"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process and its children (prefork), in MB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
        pids.extend(int(c) for c in children)
    return round(total / 1024, 1)


def run(count: int, layout: str, lead_s: float) -> dict[str, Any]:
    name = f"taskhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        schema.upgrade(url)
        engine = db.create_engine(url)
        redis.Redis.from_url(REDIS_URL).flushdb()
        with running_target() as target, tempfile.TemporaryDirectory() as scratch:
            due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_s)
            now = datetime.now(UTC)
            with engine.begin() as conn:
                for i in range(count):
                    definition = tasks.parse_definition(
                        {
                            "name": f"bench-{i}",
                            "schedule": {"at": due.isoformat()},
                            "target": {"url": target.url("/ok"), "method": "GET"},
                        },
                        now,
                    )
                    tasks.create_task(conn, definition, now)
            env = {
                **os.environ,
                "TASKHUB_DATABASE_URL": url,
                "TASKHUB_BROKER_URL": REDIS_URL,
                "TASKHUB_RESULT_BACKEND": REDIS_URL,
                "TASKHUB_ALLOW_PRIVATE_TARGETS": "1",
                "TASKHUB_TICK_SECONDS": "1",
                "TASKHUB_DATA_DIR": scratch,
                "TASKHUB_LOG_LEVEL": "WARNING",
            }
            stack = Stack(env, Path(scratch))
            try:
                if layout == "split":
                    stack.start("trigger", "trigger")
                    stack.start("state", "state")
                else:
                    stack.start("all", "all")
                stack.start("beat", "beat")

                def ended() -> bool:
                    with engine.connect() as conn:
                        return (
                            conn.execute(
                                sa.select(sa.func.count())
                                .select_from(executions)
                                .where(executions.c.status.in_(["succeeded", "failed", "dead"]))
                            ).scalar_one()
                            >= count
                        )

                finished = wait_until(ended, 300, every_s=0.5)
                rss = {n: peak_rss_mb(p.pid) for n, p in stack.processes.items()}
            finally:
                stack.stop_all()
            received = target.snapshot()
        first_arrival: dict[str, float] = {}
        for r in received:
            key = r.headers["Idempotency-Key"]
            first_arrival[key] = min(first_arrival.get(key, r.at), r.at)
        lags = [at - due.timestamp() for at in first_arrival.values()]
        engine.dispose()
        return {
            "tasks": count,
            "layout": layout,
            "finished": finished,
            "fired": len(first_arrival),
            "lost": count - len(first_arrival),
            "doubled": len(received) - len(first_arrival),
            "lag_s": {
                "p50": round(statistics.median(lags), 3),
                "p95": round(percentile(lags, 95), 3),
                "p99": round(percentile(lags, 99), 3),
                "max": round(max(lags), 3),
            }
            if lags
            else None,
            "makespan_s": round(max(lags), 3) if lags else None,
            "peak_rss_mb": rss,
            "tick_s": 1,
        }
    finally:
        db.dispose_after_fork()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--layout", choices=["split", "all"], default="split")
    parser.add_argument(
        "--lead-seconds",
        type=float,
        default=8.0,
        help="how far ahead the tasks are due (workers start meanwhile)",
    )
    args = parser.parse_args()
    print(json.dumps(run(args.tasks, args.layout, args.lead_seconds)))


if __name__ == "__main__":
    main()
