"""A pause stops what the minute's tick already staged: real worker and beat processes at
the shipped 60 s tick, PostgreSQL, Redis and an HTTP target on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.settings import load
from taskhub.db.models import executions
from taskhub.service import task_service
from tests.support.engine import add_tasks
from tests.support.processes import Stack, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow


def staged(engine: Engine, minute: datetime) -> set[str]:
    """The tasks whose occurrence at ``minute`` is written down, not yet sent."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(executions.c.task_id).where(
                executions.c.scheduled_for == minute, executions.c.status == "queued"
            )
        )
        return {str(task_id) for task_id in rows.scalars()}


def test_a_minutely_task_paused_mid_minute_does_not_fire_at_the_next_minute(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    now = datetime.now(UTC)
    if now.second > 40:  # leave the processes time to start and the tick to stage
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
    paused, control = (
        str(t) for t in add_tasks(pg_engine, 2, target.url("/ok"), {"cron": "* * * * *"})
    )
    next_minute = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    stack.env["TASKHUB_TICK_SECONDS"] = "60"
    stack.start("worker", "all")
    stack.start("beat", "beat")  # ticks at once: stages the next minute's occurrences
    assert wait_until(lambda: staged(pg_engine, next_minute) == {paused, control}, 40), stack.logs()
    with pg_engine.begin() as conn:
        task_service.pause_task(conn, "default", paused, datetime.now(UTC), load())
    assert datetime.now(UTC) < next_minute - timedelta(seconds=1), "paused too late to tell"
    assert wait_until(lambda: len(target.snapshot()) >= 1, 90), stack.logs()
    time.sleep(3)  # what else would come at the minute
    fired = {
        (r.headers["X-Taskhub-Task-Id"], r.headers["X-Taskhub-Scheduled-For"])
        for r in target.snapshot()
    }
    assert fired == {(control, next_minute.replace(tzinfo=None).isoformat() + "Z")}
    with pg_engine.connect() as conn:
        count = sa.select(sa.func.count()).where(executions.c.task_id == paused)
        assert conn.execute(count).scalar_one() == 0
