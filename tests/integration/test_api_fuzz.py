"""A property-based fuzz of the API from its own OpenAPI document (schemathesis).

Every operation gets valid and invalid requests generated from the schema, with a valid
key, against a SQLite database that holds a task, an execution and a dead letter. The
API must never answer 5xx, and every answer, errors included, must match the document:
its status code, content type and body schema. Bounded in examples so the whole fuzz
takes well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine

from taskhub.api.app import create_app
from taskhub.core.messages import TriggerOutcome
from taskhub.core.settings import load
from taskhub.db import engines, schema
from taskhub.db.models import executions
from taskhub.engine import writeback
from taskhub.service import apikeys, quotas, task_service

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _seed(engine: Engine) -> None:
    """Something to find: a task with a queued execution and a dead letter."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        task = task_service.add_task(
            conn,
            "fuzz",
            {
                "name": "seeded",
                "schedule": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"},
                "target": {"url": "https://example.com/hook"},
                "retry": {"max_attempts": 1},
                "tags": {"team": "fuzz"},
            },
            now,
            load(),
        )
        dead = task_service.run_task_now(conn, "fuzz", task["id"], now)
        conn.execute(
            sa.update(executions).where(executions.c.id == dead["id"]).values(status="running")
        )
    outcome = TriggerOutcome(
        execution_id=dead["id"],
        attempt=1,
        started_at=now,
        duration_ms=3,
        http_status=500,
        error_kind=None,
        error="HTTP 500",
        retry_after_s=None,
        response_excerpt=None,
    )
    writeback.record_outcomes(engine, [outcome], load({}), now, lambda: 0.5)
    with engine.begin() as conn:
        task_service.run_task_now(conn, "fuzz", task["id"], datetime.now(UTC))


@dataclass(frozen=True)
class Target:
    app: FastAPI
    key: str


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One database for every operation, so what one creates the next may find."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    schema.upgrade(url)
    engine = engines.create_engine(url)
    _seed(engine)
    with engine.begin() as conn:
        key, _ = apikeys.create_key(conn, "fuzz", datetime.now(UTC))
        # As fast as it can: a rate limit would answer for most operations (test_quotas).
        quotas.set_limits(
            conn,
            "fuzz",
            {"requests_per_second": 0, "runs_per_minute": 0},
            datetime.now(UTC),
            load(),
        )
    yield Target(create_app(engine=engine, request_tick=lambda: None), key)
    engine.dispose()


# The document is read from an app whose engine never connects (loading it touches no
# database); the requests go to the fixture's app. (``schemathesis.pytest.from_fixture``
# would say this more directly, but does not run on pytest 9.)
api = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(engine=engines.create_engine("sqlite://"), request_tick=lambda: None),
)


@pytest.mark.slow
@api.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_5xx_and_every_response_matches_the_schema(case: Case[Any], fuzz_target: Target) -> None:
    case.call_and_validate(
        app=fuzz_target.app,
        headers={"Authorization": f"Bearer {fuzz_target.key}"},
        checks=CHECKS,
    )
