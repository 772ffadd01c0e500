"""Flower in the dev stack: it watches a live Redis worker and lists taskhub's trigger
tasks through its HTTP API, as a user would see them on its pages."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine

from tests.support.engine import add_tasks, all_ended, soon
from tests.support.processes import Stack, free_port, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow

AUTH = ("taskhub", "flower-test")


@pytest.fixture
def flower_stack(stack: Stack) -> Stack:
    stack.env.update({"TASKHUB_FLOWER_PORT": str(free_port()), "FLOWER_BASIC_AUTH": ":".join(AUTH)})
    return stack


def flower_get(stack: Stack, path: str) -> Any:
    port = stack.env["TASKHUB_FLOWER_PORT"]
    response = requests.get(f"http://127.0.0.1:{port}{path}", auth=AUTH, timeout=5)
    response.raise_for_status()
    return response.json()


def flower_answers(stack: Stack) -> bool:
    try:
        flower_get(stack, "/api/workers?refresh=1")
    except requests.RequestException:
        return False
    return True


def test_flower_lists_the_trigger_tasks_of_a_live_worker(
    flower_stack: Stack, pg_engine: Engine, target: Target
) -> None:
    stack = flower_stack
    stack.start("flower", "flower")
    assert wait_until(lambda: flower_answers(stack), 60), stack.logs()
    stack.start("worker", "all")
    add_tasks(pg_engine, 30, target.url("/ok"), {"at": soon(3)})
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 30), 90), stack.logs()

    def fired() -> dict[str, Any]:
        tasks: dict[str, Any] = flower_get(stack, "/api/tasks?taskname=taskhub.fire_triggers")
        return {k: v for k, v in tasks.items() if v.get("state") == "SUCCESS"}

    assert wait_until(lambda: bool(fired()), 30), stack.logs()
    succeeded = fired()
    assert all(task["name"] == "taskhub.fire_triggers" for task in succeeded.values())
    # Flower also sees the tick and the chord callback that wrote the chunk's state.
    names = {t["name"] for t in flower_get(stack, "/api/tasks").values()}
    assert {"taskhub.tick", "taskhub.record_chunk"} <= names
    workers = flower_get(stack, "/api/workers?refresh=1")
    assert any(name.startswith("worker@") for name in workers), workers
    # The API is not open to anyone: no credentials, no answer.
    port = stack.env["TASKHUB_FLOWER_PORT"]
    assert requests.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).status_code == 401
