"""Helpers shared by the tests that run the whole engine as real processes.

``tests/integration/test_engine.py`` and ``tests/e2e/test_faults.py`` both start
worker and beat processes on one fresh PostgreSQL database and the test Redis db, add
tasks straight through the service layer, and read executions back from the database.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerOutcome
from taskhub.core.settings import load
from taskhub.db.models import executions
from taskhub.engine import writeback
from taskhub.service import task_service
from tests.support.processes import Stack, wait_until

TERMINAL = ("succeeded", "failed", "dead")

Occurrence = tuple[uuid.UUID, datetime]


def stack_env(
    database_url: str, redis_url: str, data_dir: Path, **overrides: str
) -> dict[str, str]:
    """The environment of every process of a test stack: one-second ticks and a short
    dispatch lease, so that what a lost message costs is seconds, not minutes."""
    return {
        **os.environ,
        "TASKHUB_DATABASE_URL": database_url,
        "TASKHUB_BROKER_URL": redis_url,
        "TASKHUB_RESULT_BACKEND": redis_url,
        "TASKHUB_ALLOW_PRIVATE_TARGETS": "1",
        "TASKHUB_TICK_SECONDS": "1",
        "TASKHUB_DISPATCH_LEASE_SECONDS": "5",
        "TASKHUB_DATA_DIR": str(data_dir),
        "TASKHUB_LOG_LEVEL": "INFO",
        **overrides,
    }


@contextmanager
def running_stack(
    database_url: str, redis_url: str, tmp_path: Path, **overrides: str
) -> Iterator[Stack]:
    """A :class:`Stack` on an empty Redis db; every process is stopped on exit."""
    redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(stack_env(database_url, redis_url, tmp_path / "data", **overrides), tmp_path)
    try:
        yield stack
    finally:
        stack.stop_all()


def add_tasks(
    engine: Engine,
    count: int,
    url: str,
    schedule: Mapping[str, Any],
    timeout_s: int = 2,
    **extra: Any,
) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    ids = []
    with engine.begin() as conn:
        for i in range(count):
            data = {
                "name": f"task-{uuid.uuid4().hex[:8]}-{i}",
                "schedule": dict(schedule),
                "target": {"url": url, "timeout_seconds": timeout_s},
                **extra,
            }
            ids.append(task_service.create_task(conn, parse_definition(data, now), now, load()))
    return ids


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(executions.c.status, sa.func.count()).group_by(executions.c.status)
        )
        return Counter({status: count for status, count in rows})


def all_ended(engine: Engine, expected: int) -> bool:
    counts = statuses(engine)
    return sum(counts[s] for s in TERMINAL) >= expected and counts.total() == sum(
        counts[s] for s in TERMINAL
    )


def soon(seconds: float = 2.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def unsuccessful(engine: Engine) -> list[dict[str, Any]]:
    """Executions that did not succeed, with what their attempts say (for failure messages)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                executions.c.id,
                executions.c.status,
                executions.c.attempts,
                executions.c.http_status,
                executions.c.error,
                executions.c.publish_count,
            ).where(executions.c.status != "succeeded")
        ).mappings()
        return [dict(row) for row in rows]


def record_attempt(
    engine: Engine, execution_id: int, http_status: int, excerpt: str, duration_ms: int = 5
) -> None:
    """Send an execution, then record its first attempt answering ``http_status`` with
    ``excerpt``, as a trigger worker's outcome is written back."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(executions).where(executions.c.id == execution_id).values(status="running")
        )
    outcome = TriggerOutcome(
        execution_id=execution_id,
        attempt=1,
        started_at=datetime.now(UTC),
        duration_ms=duration_ms,
        http_status=http_status,
        error_kind=None,
        error=None if http_status < 400 else f"HTTP {http_status}",
        retry_after_s=None,
        response_excerpt=excerpt,
    )
    writeback.record_outcomes(engine, [outcome], load({}), datetime.now(UTC), lambda: 0.5)


def make_dead(engine: Engine, execution_id: int) -> None:
    """An execution whose only attempt failed with a 503: with ``max_attempts`` 1 it
    becomes a dead letter."""
    record_attempt(engine, execution_id, 503, "down")


def at_second(seconds_from_now: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).replace(microsecond=0)


def one_time(ids: Iterable[uuid.UUID], at: datetime) -> set[Occurrence]:
    return {(task_id, at) for task_id in ids}


def interval(
    ids: Iterable[uuid.UUID], start: datetime, every_s: int, end: datetime
) -> set[Occurrence]:
    """start + k * every_s for k >= 0, up to end inclusive (the interval rule, counted by hand)."""
    due = set()
    for task_id in ids:
        when = start
        while when <= end:
            due.add((task_id, when))
            when += timedelta(seconds=every_s)
    return due


def wait_log(stack: Stack, name: str, needle: str, timeout_s: float = 60) -> None:
    path = stack.log_dir / f"{name}.log"
    ok = wait_until(lambda: path.exists() and needle in path.read_text(errors="replace"), timeout_s)
    assert ok, f"{name} never logged {needle!r}\n{stack.logs()}"


def start_ready(stack: Stack, name: str, role: str, *extra: str) -> None:
    """Start a process and wait until it is ready (a beat: until it sent its first tick)."""
    stack.start(name, role, *extra)
    wait_log(stack, name, "Scheduler: Sending" if role == "beat" else " ready.")


def execution_rows(engine: Engine) -> list[RowMapping]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(executions)).mappings())
