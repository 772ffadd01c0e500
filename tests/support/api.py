"""The REST API under test: FastAPI's TestClient over ``create_app`` on a clock the test sets,
with keys made as ``taskhub apikey create`` makes them."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from taskhub.api.app import create_app
from taskhub.core.settings import Settings, load
from taskhub.db.models import attempts, executions, scheduled_tasks
from taskhub.service import apikeys
from tests.support.engine import make_dead

#: Where the API tests' clock starts: a Monday, 08:00 in Taipei.
T0 = datetime(2030, 1, 7, tzinfo=UTC)


class Clock:
    """The app's clock: set by the test, one microsecond later at every reading, so that
    two requests never share a moment (run-now keys an occurrence by its time)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(microseconds=1)
            return self.now


def new_key(engine: Engine, tenant: str) -> str:
    with engine.begin() as conn:
        key, _record = apikeys.create_key(conn, tenant, datetime.now(UTC))
    return key


def client(app: Any, key: str | None) -> TestClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return TestClient(app, headers=headers)


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every stored task, execution and attempt: what a refused request must not change."""
    with engine.connect() as conn:
        return {
            table.name: [
                dict(row)
                for row in conn.execute(sa.select(table).order_by(*table.primary_key)).mappings()
            ]
            for table in (scheduled_tasks, executions, attempts)
        }


def task_body(
    name: str = "hook",
    url: str = "https://example.com/hook",
    *,
    schedule: dict[str, Any] | None = None,
    **target: Any,
) -> dict[str, Any]:
    """A small valid task: hourly unless ``schedule`` says otherwise; ``target`` adds to
    the target's URL."""
    return {
        "name": name,
        "schedule": schedule or {"interval_seconds": 3600},
        "target": {"url": url, **target},
    }


class Api:
    """One app over ``engine`` whose clock starts at ``start`` (on ``settings``, else the
    environment's), with a client per tenant ("acme" and "other") and one without a key;
    ``ticks`` records each tick the API asks for."""

    def __init__(self, engine: Engine, start: datetime, settings: Settings | None = None) -> None:
        self.engine = engine
        self.clock = Clock(start)
        self.ticks: list[str] = []
        app = create_app(
            settings=settings,
            engine=engine,
            clock=self.clock,
            request_tick=lambda: self.ticks.append("tick"),
        )
        self.a: TestClient = client(app, new_key(engine, "acme"))
        self.b: TestClient = client(app, new_key(engine, "other"))
        self.anonymous: TestClient = client(app, None)

    def create(self, name: str, schedule: dict[str, Any] | None = None) -> httpx2.Response:
        """Tenant A creates a small task, whatever the answer."""
        response: httpx2.Response = self.a.post(
            "/v1/tasks", json=task_body(name, schedule=schedule)
        )
        return response

    def task(self, name: str = "t", **fields: Any) -> dict[str, Any]:
        """Tenant A creates a small task with ``fields`` replacing its own; it must work."""
        response = self.a.post("/v1/tasks", json=task_body(name) | fields)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    def dead_letter(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A task of tenant A with one dead execution (a 503 on its only attempt)."""
        task = self.task(f"flaky-{uuid.uuid4().hex[:6]}", retry={"max_attempts": 1})
        execution = self.a.post(f"/v1/tasks/{task['id']}/run").json()
        make_dead(self.engine, execution["id"])
        return task, self.a.get(f"/v1/executions/{execution['id']}").json()

    @staticmethod
    def error(response: httpx2.Response, status: int) -> dict[str, Any]:
        """The refusal's one error shape, with ``status``: its ``error`` object."""
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
        error: dict[str, Any] = body["error"]
        return error


def with_env(**env: str) -> Settings:
    """This run's settings (its encryption key) with ``env`` on top, built once, as a
    process builds its own."""
    return load({**os.environ, **env})
