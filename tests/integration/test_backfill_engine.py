"""A backfill sent by the whole engine with real processes: worker and beat on PostgreSQL
and Redis, firing at a real HTTP target on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from taskhub.core.occurrences import idempotency_key
from tests.support.api import Api, with_env
from tests.support.engine import all_ended, running_stack, statuses
from tests.support.processes import Stack, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow

MINUTE = timedelta(minutes=1)
OCCURRENCES = 1000


def test_a_backfill_of_1000_occurrences_fires_each_once_and_a_repeat_none(
    postgres_url: str, redis_url: str, pg_engine: Engine, tmp_path: Path, target: Target
) -> None:
    # Flow control holds the burst as it holds any: never more than 10 at once at the host.
    limits = {"TASKHUB_HOST_LIMITS": "127.0.0.1=10", "TASKHUB_DISPATCH_LEASE_SECONDS": "120"}
    with running_stack(postgres_url, redis_url, tmp_path, **limits) as stack:
        _backfill_twice(stack, pg_engine, target)


def _backfill_twice(stack: Stack, pg_engine: Engine, target: Target) -> None:
    api = Api(pg_engine, datetime.now(UTC), with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1"))
    created = api.a.post(
        "/v1/tasks",
        json={
            "name": "minutely",
            "schedule": {"cron": "* * * * *"},
            "target": {"url": target.url("/slow/0.05"), "timeout_seconds": 5},
        },
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    # Paused, so the schedule itself fires nothing: every request the target sees is the
    # backfill's (a paused task is backfilled like an active one).
    assert api.a.post(f"/v1/tasks/{task_id}/pause").status_code == 200
    end = datetime.now(UTC).replace(second=0, microsecond=0) - 10 * MINUTE
    start = end - (OCCURRENCES - 1) * MINUTE
    body = {"start": start.isoformat(), "end": end.isoformat()}

    stack.start("state", "state")
    stack.start("trigger", "trigger")
    stack.start("beat", "beat")
    answer = api.a.post(f"/v1/tasks/{task_id}/backfill", json=body)
    assert answer.status_code == 202 and answer.json() == {"count": OCCURRENCES}

    assert wait_until(lambda: all_ended(pg_engine, OCCURRENCES), 240), stack.logs()
    assert statuses(pg_engine) == {"succeeded": OCCURRENCES}
    expected = {idempotency_key(task_id, start + k * MINUTE) for k in range(OCCURRENCES)}
    keys = target.keys()
    assert set(keys) == expected and set(keys.values()) == {1}
    assert 2 <= target.peak["127.0.0.1"] <= 10

    again = api.a.post(f"/v1/tasks/{task_id}/backfill", json=body)
    assert again.status_code == 202 and again.json() == {"count": 0}
    time.sleep(5)  # several staging loops and a tick: nothing more goes out
    assert target.keys() == keys
    assert statuses(pg_engine) == {"succeeded": OCCURRENCES}
