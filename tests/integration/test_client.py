"""``taskhub.client`` against the real API, served by uvicorn on a loopback port over
SQLite and PostgreSQL: every method, paging as iterators, and refusals as exceptions
that carry the API's code and field. No mocks: the client speaks HTTP to the API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from taskhub.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from tests.support.api import task_body
from tests.support.live_api import LiveApi, live_api


@pytest.fixture
def api(engine: Engine) -> Iterator[LiveApi]:
    with live_api(engine) as running:
        yield running


@pytest.fixture
def client(api: LiveApi) -> Iterator[Client]:
    with Client(api.url, api.new_key("acme")) as c:
        yield c


def test_create_get_update_pause_resume_run_delete(client: Client) -> None:
    task = client.create(task_body("hook") | {"tags": {"team": "a"}})
    assert task["name"] == "hook" and task["status"] == "active"
    assert client.get(task["id"]) == task
    changed = client.update(task["id"], {"target": {"url": "https://example.com/other"}})
    assert changed["target"]["url"] == "https://example.com/other"
    paused = client.pause(task["id"], reason="maintenance")
    assert paused["status"] == "paused" and paused["paused_reason"] == "maintenance"
    assert client.resume(task["id"])["status"] == "active"
    execution = client.run(task["id"])
    assert execution["task_id"] == task["id"] and execution["status"] == "queued"
    assert [e["id"] for e in client.executions(task["id"])] == [execution["id"]]
    client.delete(task["id"])
    with pytest.raises(NotFound) as refused:
        client.get(task["id"])
    assert refused.value.status == 404 and refused.value.code == "not_found"


def test_list_and_executions_are_iterators_over_every_page(client: Client) -> None:
    client.batch([task_body(f"t{i:02}") for i in range(7)] + [task_body("other")])
    names = [t["name"] for t in client.list(page_size=2, name_prefix="t")]
    assert names == [f"t{i:02}" for i in range(7)]
    assert [t["name"] for t in client.list(name="other")] == ["other"]
    client.create(task_body("tagged") | {"tags": {"team": "a", "tier": "1"}})
    assert [t["name"] for t in client.list(tags={"team": "a", "tier": "1"})] == ["tagged"]
    assert list(client.list(tags={"team": "b"})) == []
    task = next(client.list(name="t03"))
    runs = [client.run(task["id"])["id"] for _ in range(5)]
    assert [e["id"] for e in client.executions(task["id"], page_size=2)] == runs[::-1]
    assert list(client.executions(task["id"], status="succeeded")) == []


def test_refusals_carry_the_api_code_and_field(api: LiveApi, client: Client) -> None:
    with pytest.raises(InvalidInput) as invalid:
        client.create(task_body("bad", schedule={"cron": "61 * * * *"}))
    assert invalid.value.code == "invalid" and invalid.value.status == 422
    assert invalid.value.field is not None and invalid.value.field.startswith("schedule")
    client.create(task_body("taken"))
    with pytest.raises(Conflict) as taken:
        client.create(task_body("taken"))
    assert taken.value.code == "conflict" and taken.value.field == "name"
    with Client(api.url, "not-a-key") as stranger, pytest.raises(Unauthorized) as denied:
        stranger.get("whatever")
    assert denied.value.code == "unauthorized"
    assert isinstance(denied.value, ApiError)


def test_batch_returns_the_result_per_item(client: Client) -> None:
    result = client.batch([task_body("a"), {"name": "b"}], atomic=True)
    assert not result["stored"]
    assert [r["status"] for r in result["results"]] == ["created", "error"]
    error = result["results"][1]["error"]
    assert error is not None and error["field"] == "schedule"
    result = client.batch([task_body("a")], dry_run=True)
    assert result["dry_run"] and result["counts"]["created"] == 1
    assert list(client.list()) == []
    result = client.batch([task_body("a")])
    assert result["stored"] and result["tenant"] == "acme"
    assert client.batch(delete=["a"])["deletions"][0]["status"] == "deleted"


def test_the_key_and_address_come_from_the_environment(
    api: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKHUB_API_URL", api.url)
    monkeypatch.setenv("TASKHUB_API_KEY", api.new_key("acme"))
    with Client() as c:
        assert list(c.list()) == []
    monkeypatch.delenv("TASKHUB_API_KEY")
    with pytest.raises(ValueError, match="TASKHUB_API_KEY"):
        Client()


def test_the_async_client_does_the_same(api: LiveApi) -> None:
    key = api.new_key("acme")

    async def scenario() -> dict[str, Any]:
        async with AsyncClient(api.url, key) as c:
            await c.batch([task_body(f"t{i}") for i in range(5)])
            names = [t["name"] async for t in c.list(page_size=2)]
            task = await c.get((await c.create(task_body("one")))["id"])
            await c.pause(task["id"])
            await c.resume(task["id"])
            run = await c.run(task["id"])
            executions = [e["id"] async for e in c.executions(task["id"], page_size=1)]
            updated = await c.update(task["id"], {"tags": {"k": "v"}})
            await c.delete(task["id"])
            try:
                await c.get(task["id"])
            except NotFound as error:
                missing = error.code
            return {
                "names": names,
                "run": run["id"],
                "executions": executions,
                "tags": updated["tags"],
                "missing": missing,
            }

    seen = asyncio.run(scenario())
    assert seen["names"] == [f"t{i}" for i in range(5)]
    assert seen["executions"] == [seen["run"]]
    assert seen["tags"] == {"k": "v"} and seen["missing"] == "not_found"
