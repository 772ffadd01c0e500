"""``POST /v1/tasks:batch`` through the API, on SQLite and on PostgreSQL: a result per
item, upserts by name, deletes, dry runs, all-or-nothing, quotas, and nothing stored for
a refused item."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from taskhub.core import limits
from taskhub.core.settings import load
from taskhub.service import quotas
from tests.support.api import T0, Api, dump, task_body


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


def batch(api: Api, status: int = 200, **body: Any) -> dict[str, Any]:
    response = api.a.post("/v1/tasks:batch", json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def names(api: Api) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in api.a.get("/v1/tasks", params={"limit": 500}).json()["items"]}


def test_creates_many_and_each_is_as_one_create_makes_it(api: Api) -> None:
    single = api.task("single", tags={"team": "a"})
    result = batch(api, tasks=[task_body(f"t{i}") | {"tags": {"team": "a"}} for i in range(50)])
    assert result["stored"] and result["tenant"] == "acme"
    assert result["counts"] == dict(created=50, updated=0, unchanged=0, deleted=0, error=0)
    assert [r["index"] for r in result["results"]] == list(range(50))
    stored = names(api)
    own = {"id", "name", "created_at", "updated_at", "next_execution_time"}
    for r in result["results"]:
        assert r["status"] == "created" and r["error"] is None and r["changes"] == []
        assert r["task"] == stored[r["name"]]
        # the same fields, defaults and first run as a single create of the same definition
        assert {k: v for k, v in r["task"].items() if k not in own} == {
            k: v for k, v in single.items() if k not in own
        }
        assert r["task"]["next_execution_time"] == r["task"]["created_at"]  # an interval: now
    assert single["next_execution_time"] == single["created_at"]


def test_a_refused_item_names_its_field_and_stores_nothing_the_others_are_stored(
    api: Api,
) -> None:
    bad_cron = task_body("bad", schedule={"cron": "61 * * * *"})
    result = batch(
        api,
        tasks=[
            task_body("good1"),
            bad_cron,
            {"name": "no-target", "schedule": {"interval_seconds": 60}},
            task_body("good2"),
        ],
    )
    statuses = [r["status"] for r in result["results"]]
    assert statuses == ["created", "error", "error", "created"]
    assert result["results"][1]["error"]["field"].startswith("schedule")
    assert result["results"][1]["error"]["code"] == "invalid"
    assert result["results"][2]["error"]["field"] == "target"
    assert result["results"][1]["task"] is None
    assert result["stored"] and result["counts"]["error"] == 2
    assert set(names(api)) == {"good1", "good2"}


def test_atomic_batch_with_a_refused_item_stores_nothing(api: Api) -> None:
    api.task("kept")
    before = dump(api.engine)
    result = batch(
        api,
        atomic=True,
        tasks=[task_body("new"), task_body("kept", "https://example.com/changed"), {"name": 3}],
        delete=[],
    )
    assert not result["stored"]
    assert [r["status"] for r in result["results"]] == ["created", "updated", "error"]
    assert dump(api.engine) == before


def test_upsert_by_name_updated_or_unchanged_and_the_definition_is_replaced_whole(
    api: Api,
) -> None:
    first = api.task(
        "report",
        target={"url": "https://example.com/a", "headers": {"X-Team": "a"}, "body": "{}"},
        tags={"team": "a"},
    )
    same = {
        "name": "report",
        "schedule": {"interval_seconds": 3600},
        "target": {"url": "https://example.com/a", "headers": {"X-Team": "a"}, "body": "{}"},
        "tags": {"team": "a"},
    }
    result = batch(api, tasks=[same])
    assert result["results"][0]["status"] == "unchanged"
    assert result["results"][0]["task"]["updated_at"] == first["updated_at"]
    assert result["results"][0]["task"]["id"] == first["id"]

    # The file drops the headers, body and tags and changes the schedule: all replaced.
    changed = {
        "name": "report",
        "schedule": {"cron": "0 9 * * *", "timezone": "Asia/Taipei"},
        "target": {"url": "https://example.com/a"},
    }
    result = batch(api, tasks=[changed])
    item = result["results"][0]
    assert item["status"] == "updated"
    assert item["changes"] == ["schedule", "tags", "target.body", "target.headers"]
    task = api.a.get(f"/v1/tasks/{first['id']}").json()
    assert item["task"] == task
    assert task["target"]["headers"] == {} and task["target"]["body"] is None
    assert task["tags"] == {} and task["schedule"]["cron"] == "0 9 * * *"
    assert task["next_execution_time"] == "2030-01-07T01:00:00+00:00"  # 09:00 in Taipei
    assert batch(api, tasks=[changed])["results"][0]["status"] == "unchanged"


def test_a_credential_sent_again_is_unchanged_and_a_new_one_is_an_update(api: Api) -> None:
    secret = {"url": "https://example.com/a", "headers": {"Authorization": "Bearer s3cret-one"}}
    api.task("auth", target=secret)
    definition = task_body("auth") | {"target": secret}
    assert batch(api, tasks=[definition])["results"][0]["status"] == "unchanged"
    rotated = task_body("auth") | {
        "target": {**secret, "headers": {"Authorization": "Bearer s3cret-two"}}
    }
    item = batch(api, tasks=[rotated])["results"][0]
    assert item["status"] == "updated" and item["changes"] == ["target.headers"]
    assert "s3cret-two" not in str(item["task"])  # shown masked, as everywhere


def test_delete_by_name_and_a_missing_name_is_an_error(api: Api) -> None:
    api.task("old")
    result = batch(api, delete=["old", "never"])
    assert [d["status"] for d in result["deletions"]] == ["deleted", "error"]
    assert result["deletions"][1]["error"]["code"] == "not_found"
    assert "old" not in names(api)


def test_dry_run_gives_the_real_results_and_stores_nothing(api: Api) -> None:
    api.task("old")
    api.task("same")
    before = dump(api.engine)
    tasks = [task_body("new"), task_body("same"), task_body("old", "https://example.com/x")]
    dry = batch(api, dry_run=True, tasks=tasks)
    assert dump(api.engine) == before
    assert not dry["stored"] and dry["dry_run"]
    assert [r["status"] for r in dry["results"]] == ["created", "unchanged", "updated"]
    real = batch(api, tasks=tasks)
    assert [r["status"] for r in real["results"]] == ["created", "unchanged", "updated"]
    assert [r["changes"] for r in real["results"]] == [r["changes"] for r in dry["results"]]


def test_a_name_twice_in_a_batch_or_both_set_and_deleted_is_refused(api: Api) -> None:
    api.task("x")
    result = batch(api, tasks=[task_body("a"), task_body("a"), task_body("x")], delete=["x"])
    assert [r["status"] for r in result["results"]] == ["created", "error", "error"]
    assert result["results"][1]["error"]["field"] == "name"
    assert result["results"][2]["error"]["code"] == "conflict"
    assert result["deletions"][0]["status"] == "deleted"


def test_quotas_hold_for_each_item(api: Api) -> None:
    with api.engine.begin() as conn:
        quotas.set_limits(
            conn,
            "acme",
            {"max_tasks": 3, "min_interval_seconds": 60},
            T0,
            load(),
        )
    api.task("one")
    result = batch(
        api,
        tasks=[
            task_body("fast", schedule={"interval_seconds": 10}),
            task_body("two"),
            task_body("three"),
            task_body("four"),
        ],
    )
    assert [r["status"] for r in result["results"]] == ["error", "created", "created", "error"]
    assert result["results"][0]["error"]["field"] == "schedule.interval_seconds"
    assert result["results"][3]["error"]["code"] == "quota_exceeded"
    # a delete in the same batch frees its place
    result = batch(api, tasks=[task_body("four")], delete=["one"])
    assert result["results"][0]["status"] == "created"


def test_the_batch_as_a_whole_is_refused_with_the_one_error_shape(api: Api) -> None:
    before = dump(api.engine)
    too_many = [task_body(f"t{i}") for i in range(limits.MAX_BATCH_ITEMS + 1)]
    for body, field in (
        ({"tasks": too_many}, "tasks"),
        ({}, "tasks"),
        ({"tasks": "no"}, "tasks"),
        ({"tasks": [], "delete": [1]}, "delete.0"),
        ({"tasks": [task_body("a")], "atomic": "yes"}, "atomic"),
        ({"task": []}, "task"),
    ):
        error = Api.error(api.a.post("/v1/tasks:batch", json=body), 422)
        assert error["field"] == field, body
    assert dump(api.engine) == before


def test_a_thousand_items_in_one_batch(api: Api) -> None:
    result = batch(api, tasks=[task_body(f"t{i:04}") for i in range(limits.MAX_BATCH_ITEMS)])
    assert result["counts"]["created"] == limits.MAX_BATCH_ITEMS
    again = batch(api, tasks=[task_body(f"t{i:04}") for i in range(limits.MAX_BATCH_ITEMS)])
    assert again["counts"]["unchanged"] == limits.MAX_BATCH_ITEMS


def test_another_tenant_sees_none_of_the_batch(api: Api) -> None:
    batch(api, tasks=[task_body("mine")])
    other = api.b.post("/v1/tasks:batch", json={"tasks": [task_body("mine")]}).json()
    assert other["results"][0]["status"] == "created" and other["tenant"] == "other"
    assert api.b.post("/v1/tasks:batch", json={"delete": ["mine"]}).json()["counts"]["deleted"] == 1
    assert "mine" in names(api)


def test_an_update_refused_late_undoes_only_itself_and_a_pause_is_kept(api: Api) -> None:
    secret = {
        "url": "https://example.com/a",
        "headers": {"Authorization": "Bearer s3cret-value-1234"},
    }
    task = api.task("auth", target=secret)
    paused = api.task("paused")
    api.a.post(f"/v1/tasks/{paused['id']}/pause")
    masked = task["target"]["headers"]["Authorization"]
    moved = task_body("auth", "https://elsewhere.example.net/a") | {
        "target": {"url": "https://elsewhere.example.net/a", "headers": {"Authorization": masked}}
    }
    result = batch(
        api, tasks=[moved, task_body("paused", "https://example.com/new"), task_body("n")]
    )
    assert [r["status"] for r in result["results"]] == ["error", "updated", "created"]
    assert result["results"][0]["error"]["field"] == "target.headers"
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["target"]["url"] == "https://example.com/a"
    kept = api.a.get(f"/v1/tasks/{paused['id']}").json()
    assert kept["status"] == "paused" and kept["target"]["url"] == "https://example.com/new"
