"""The REST API through FastAPI's TestClient, on SQLite and on PostgreSQL.

The app runs on a controllable clock, so fire times can be asserted exactly; keys are
made with ``apikeys.create_key`` as ``taskhub apikey create`` makes them.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from taskhub.api.app import create_app
from taskhub.api.deps import MAX_REQUEST_BYTES
from taskhub.core.limits import MAX_EXECUTIONS
from taskhub.core.settings import load
from taskhub.db import engines, task_queries
from taskhub.db.models import executions, scheduled_tasks
from taskhub.service import apikeys, quotas, task_service
from taskhub.service import executions as executions_service
from tests.support.api import T0, Api, Clock, client, dump, new_key
from tests.support.engine import make_dead
from tests.support.example import example_task

TASK_FIELDS = {
    *example_task(),
    "id",
    "status",
    "next_execution_time",
    "last_execution_time",
    "last_status",
    "execution_count",
    "consecutive_failures",
    "misfire_policy",
    "auto_pause_after_failures",
    "rate_limit",
    "spread_seconds",
    "exclude_calendars",
    "overlap",
    "retention_days",
    "callback",
    "max_lag_seconds",
    "paused_by",
    "paused_reason",
    "paused_at",
    "created_at",
    "updated_at",
}
EXECUTION_FIELDS = {
    "id",
    "task_id",
    "scheduled_for",
    "status",
    "attempts",
    "http_status",
    "duration_ms",
    "error",
    "started_at",
    "finished_at",
}


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- every endpoint ---------------------------------------------------------------------


def test_create_returns_201_with_the_definition_and_every_task_field(api: Api) -> None:
    response = api.a.post("/v1/tasks", json=example_task())
    assert response.status_code == 201
    task = response.json()
    assert set(task) >= TASK_FIELDS
    assert response.headers["location"] == f"/v1/tasks/{task['id']}"
    uuid.UUID(task["id"])
    for key, value in example_task().items():
        assert task[key] == value, key
    assert task["status"] == "active"
    # Monday 08:00 in Taipei: the next weekday 09:00 there is in an hour.
    assert task["next_execution_time"] == "2030-01-07T01:00:00+00:00"
    assert task["last_execution_time"] is None and task["last_status"] is None
    assert (task["execution_count"], task["consecutive_failures"]) == (0, 0)
    for key in ("created_at", "updated_at"):
        assert at(task[key]).utcoffset() is not None
    assert api.a.get(f"/v1/tasks/{task['id']}").json() == task


def test_a_minimal_task_gets_the_documented_defaults(api: Api) -> None:
    task = api.a.post(
        "/v1/tasks",
        json={"name": "m", "schedule": {"cron": "*/5 * * * *"}, "target": {"url": "http://x.io"}},
    ).json()
    assert task["schedule"] == {"cron": "*/5 * * * *", "timezone": "UTC"}
    assert task["target"] == {
        "url": "http://x.io",
        "method": "POST",
        "headers": {},
        "body": None,
        "timeout_seconds": 30,
    }
    assert task["retry"] == {"max_attempts": 3, "backoff_seconds": 10, "max_backoff_seconds": 600}
    assert task["tags"] == {} and task["max_executions"] is None
    assert (task["misfire_policy"], task["auto_pause_after_failures"]) == ("fire_once", None)
    assert (task["paused_by"], task["paused_reason"], task["paused_at"]) == (None, None, None)


def test_misfire_policy_and_auto_pause_are_set_returned_and_patched(api: Api) -> None:
    task = api.task("policies", misfire_policy="skip", auto_pause_after_failures=5)
    assert (task["misfire_policy"], task["auto_pause_after_failures"]) == ("skip", 5)
    patched = api.a.patch(f"/v1/tasks/{task['id']}", json={"misfire_policy": "fire_each"}).json()
    assert (patched["misfire_policy"], patched["auto_pause_after_failures"]) == ("fire_each", 5)
    assert patched["next_execution_time"] == task["next_execution_time"]
    patched = api.a.patch(
        f"/v1/tasks/{task['id']}", json={"auto_pause_after_failures": None}
    ).json()
    assert (patched["misfire_policy"], patched["auto_pause_after_failures"]) == ("fire_each", None)
    assert api.a.get(f"/v1/tasks/{task['id']}").json() == patched


def test_rate_limit_and_spread_are_set_returned_patched_and_refused(api: Api) -> None:
    task = api.task("limited", rate_limit={"max_in_flight": 5, "per_second": 20})
    assert task["rate_limit"] == {"max_in_flight": 5, "per_second": 20}
    assert task["spread_seconds"] == 0
    patched = api.a.patch(
        f"/v1/tasks/{task['id']}", json={"rate_limit": {"per_second": 2}, "spread_seconds": 30}
    ).json()
    assert patched["rate_limit"] == {"max_in_flight": None, "per_second": 2}
    assert patched["spread_seconds"] == 30
    assert api.a.get(f"/v1/tasks/{task['id']}").json() == patched
    refused = api.a.patch(f"/v1/tasks/{task['id']}", json={"rate_limit": {"max_in_flight": 0}})
    assert refused.status_code == 422
    assert "rate_limit.max_in_flight" in refused.text
    assert api.a.get(f"/v1/tasks/{task['id']}").json() == patched  # nothing changed
    cleared = api.a.patch(f"/v1/tasks/{task['id']}", json={"rate_limit": None}).json()
    assert cleared["rate_limit"] is None


def names(page: dict[str, Any]) -> list[str]:
    return [task["name"] for task in page["items"]]


def test_list_filters(api: Api) -> None:
    api.task("alpha-1", tags={"team": "billing", "env": "prod"})
    api.task("alpha-2", tags={"team": "billing", "env": "dev"})
    paused = api.task("beta", tags={"team": "search"})
    api.a.post(f"/v1/tasks/{paused['id']}/pause")
    later = api.task("gamma", schedule={"at": "2031-01-01T00:00:00Z"})
    with api.engine.begin() as conn:
        conn.execute(
            sa.update(scheduled_tasks)
            .where(scheduled_tasks.c.id == uuid.UUID(later["id"]))
            .values(last_status="failed")
        )

    def listed(**query: Any) -> list[str]:
        response = api.a.get("/v1/tasks", params=query)
        assert response.status_code == 200, response.text
        return names(response.json())

    assert listed() == ["alpha-1", "alpha-2", "beta", "gamma"]
    assert listed(status="paused") == ["beta"]
    assert listed(status="active") == ["alpha-1", "alpha-2", "gamma"]
    assert listed(status="finished") == []
    assert listed(tag="team:billing") == ["alpha-1", "alpha-2"]
    assert listed(tag=["team:billing", "env:dev"]) == ["alpha-2"]
    assert listed(tag="team:nobody") == []
    assert listed(name="beta") == ["beta"]
    assert listed(name="alpha") == []
    assert listed(name_prefix="alpha-") == ["alpha-1", "alpha-2"]
    assert listed(name_prefix="%") == []  # a prefix, not a pattern
    assert listed(last_status="failed") == ["gamma"]
    assert listed(last_status="succeeded") == []
    assert listed(next_after="2030-06-01T00:00:00Z") == ["gamma"]
    assert listed(next_before="2030-06-01T00:00:00+00:00") == ["alpha-1", "alpha-2", "beta"]
    assert listed(next_before="2030-06-01T08:00:00+08:00", next_after="2029-01-01T00:00:00Z") == [
        "alpha-1",
        "alpha-2",
        "beta",
    ]

    first = api.a.get("/v1/tasks", params={"limit": 3}).json()
    assert names(first) == ["alpha-1", "alpha-2", "beta"] and first["next_cursor"]
    rest = api.a.get("/v1/tasks", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert names(rest) == ["gamma"] and rest["next_cursor"] is None


def test_patch_recomputes_the_next_run_only_when_the_schedule_changes(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=example_task()).json()
    api.clock.now = T0 + timedelta(minutes=30)
    retargeted = api.a.patch(
        f"/v1/tasks/{task['id']}", json={"target": {"url": "https://example.com/v2"}}
    ).json()
    assert retargeted["target"]["url"] == "https://example.com/v2"
    assert retargeted["target"]["headers"] == {"X-Team": "billing"}  # merged, not replaced
    assert retargeted["next_execution_time"] == task["next_execution_time"]
    assert at(retargeted["updated_at"]) > at(task["updated_at"])

    rescheduled = api.a.patch(
        f"/v1/tasks/{task['id']}", json={"schedule": {"cron": "0 20 * * *"}, "tags": {}}
    ).json()
    assert rescheduled["schedule"] == {"cron": "0 20 * * *", "timezone": "UTC"}
    assert rescheduled["next_execution_time"] == "2030-01-07T20:00:00+00:00"
    assert rescheduled["tags"] == {}
    assert rescheduled["name"] == "nightly-report"
    assert api.a.get(f"/v1/tasks/{task['id']}").json() == rescheduled

    interval = api.a.patch(f"/v1/tasks/{task['id']}", json={"schedule": {"interval_seconds": 3600}})
    # An interval counts from the task's creation, so its fire times never drift.
    assert at(interval.json()["next_execution_time"]) == at(task["created_at"]) + timedelta(hours=1)


def test_delete_is_204_then_404(api: Api) -> None:
    task = api.task()
    api.a.post(f"/v1/tasks/{task['id']}/run")
    response = api.a.delete(f"/v1/tasks/{task['id']}")
    assert response.status_code == 204 and response.content == b""
    assert api.a.get(f"/v1/tasks/{task['id']}").status_code == 404
    assert api.a.delete(f"/v1/tasks/{task['id']}").status_code == 404
    assert api.a.get("/v1/executions").json()["items"] == []


def test_pause_resume_and_run_now(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=example_task()).json()
    paused = api.a.post(f"/v1/tasks/{task['id']}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused.json()["paused_by"] == "user" and paused.json()["paused_reason"] is None
    assert at(paused.json()["paused_at"]) - T0 < timedelta(seconds=1)
    # Resumed two days later: what fell due meanwhile is skipped.
    api.clock.now = T0 + timedelta(days=2)
    resumed = api.a.post(f"/v1/tasks/{task['id']}/resume").json()
    assert resumed["status"] == "active"
    assert resumed["next_execution_time"] == "2030-01-09T01:00:00+00:00"

    run = api.a.post(f"/v1/tasks/{task['id']}/run")
    assert run.status_code == 202
    execution = run.json()
    assert set(execution) >= EXECUTION_FIELDS
    assert execution["task_id"] == task["id"] and execution["status"] == "queued"
    assert execution["attempts"] == 0 and execution["idempotency_key"]
    assert at(execution["scheduled_for"]) - T0 < timedelta(days=2, seconds=1)
    assert api.ticks == ["tick"]  # asked for a tick, so it goes out at once
    assert (
        api.a.get(f"/v1/tasks/{task['id']}").json()["next_execution_time"]
        == (resumed["next_execution_time"])
    )  # an extra occurrence: the schedule is untouched

    with api.engine.begin() as conn:
        task_queries.update_task(
            conn, uuid.UUID(task["id"]), {"is_finished": True, "next_execution_time": None}
        )
    for action in ("pause", "resume"):
        refused = api.a.post(f"/v1/tasks/{task['id']}/{action}")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"


def test_executions_newest_first_with_filters_and_paging(api: Api) -> None:
    task = api.task(retry={"max_attempts": 1})
    other = api.task("other")
    ran = [api.a.post(f"/v1/tasks/{task['id']}/run").json() for _ in range(3)]
    elsewhere = api.a.post(f"/v1/tasks/{other['id']}/run").json()
    make_dead(api.engine, ran[0]["id"])
    ids = [e["id"] for e in reversed(ran)]

    own = api.a.get(f"/v1/tasks/{task['id']}/executions").json()
    assert [e["id"] for e in own["items"]] == ids and own["next_cursor"] is None
    assert api.a.get(f"/v1/executions/{ran[1]['id']}").json() == own["items"][1]

    everything = api.a.get("/v1/executions").json()
    assert [e["id"] for e in everything["items"]] == [elsewhere["id"], *ids]
    assert [
        e["id"]
        for e in api.a.get("/v1/executions", params={"task_id": other["id"]}).json()["items"]
    ] == [elsewhere["id"]]

    def listed(**query: Any) -> list[int]:
        response = api.a.get(f"/v1/tasks/{task['id']}/executions", params=query)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert listed(status="dead") == [ran[0]["id"]]
    assert listed(status="queued") == ids[:2]
    assert listed(since=ran[1]["scheduled_for"]) == ids[:2]
    assert listed(until=ran[1]["scheduled_for"]) == [ran[0]["id"]]
    assert listed(since=ran[1]["scheduled_for"], until=ran[2]["scheduled_for"]) == [ran[1]["id"]]

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = api.a.get(f"/v1/tasks/{task['id']}/executions", params=params).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_preview_in_utc_and_the_tasks_zone(api: Api) -> None:
    # New York springs forward on 2030-03-10: 09:00 local moves from 14:00 to 13:00 UTC.
    api.clock.now = datetime(2030, 3, 8, 15, tzinfo=UTC)
    task = api.task(schedule={"cron": "0 9 * * *", "timezone": "America/New_York"})
    preview = api.a.get(f"/v1/tasks/{task['id']}/preview", params={"count": 3}).json()
    assert preview == {
        "timezone": "America/New_York",
        "fire_times": [
            {
                "utc": "2030-03-09T14:00:00+00:00",
                "local": "2030-03-09T09:00:00-05:00",
                "skipped": False,
                "reason": None,
            },
            {
                "utc": "2030-03-10T13:00:00+00:00",
                "local": "2030-03-10T09:00:00-04:00",
                "skipped": False,
                "reason": None,
            },
            {
                "utc": "2030-03-11T13:00:00+00:00",
                "local": "2030-03-11T09:00:00-04:00",
                "skipped": False,
                "reason": None,
            },
        ],
    }
    assert len(api.a.get(f"/v1/tasks/{task['id']}/preview").json()["fire_times"]) == 10
    for count in (0, 101, "x"):
        refused = api.a.get(f"/v1/tasks/{task['id']}/preview", params={"count": count})
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "count"


def test_preview_of_an_unsaved_schedule(api: Api) -> None:
    api.clock.now = datetime(2027, 1, 1, tzinfo=UTC)
    # 02:30 does not exist in New York on 2027-03-14: it fires when the clock jumps.
    response = api.a.post(
        "/v1/schedules/preview",
        params={"count": 2},
        json={"schedule": {"cron": "30 2 14 3 *", "timezone": "America/New_York"}},
    )
    assert response.status_code == 200
    assert response.json()["fire_times"][0] == {
        "utc": "2027-03-14T07:00:00+00:00",
        "local": "2027-03-14T03:00:00-04:00",
        "skipped": False,
        "reason": None,
    }
    limited = api.a.post(
        "/v1/schedules/preview",
        params={"count": 5},
        json={
            "schedule": {"cron": "0 * * * *"},
            "start_at": "2027-02-01T00:00:00Z",
            "end_at": "2027-02-01T05:00:00Z",
            "max_executions": 2,
        },
    ).json()
    assert [t["utc"] for t in limited["fire_times"]] == [
        "2027-02-01T00:00:00+00:00",
        "2027-02-01T01:00:00+00:00",
    ]
    for body, where in [
        ({"schedule": {"cron": "0 9 * * *"}, "colour": 1}, "colour"),
        ({}, "schedule"),
        ({"schedule": {"cron": "0 9 * *"}}, "schedule.cron"),
        ([], None),
    ]:
        refused = api.a.post("/v1/schedules/preview", json=body)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == where
    assert api.a.get("/v1/tasks").json()["items"] == []


def test_preview_bounds_max_executions_as_a_task_does(api: Api) -> None:
    """The same values refused with the same error, the upper bound included."""
    api.clock.now = datetime(2027, 1, 1, tzinfo=UTC)
    schedule = {"cron": "0 * * * *"}
    highest = api.a.post(
        "/v1/schedules/preview",
        params={"count": 1},
        json={"schedule": schedule, "max_executions": MAX_EXECUTIONS},
    )
    assert highest.status_code == 200 and len(highest.json()["fire_times"]) == 1
    for value in (MAX_EXECUTIONS + 1, 2**63, 0, -1, True, 1.5, "3"):
        preview = api.a.post(
            "/v1/schedules/preview", json={"schedule": schedule, "max_executions": value}
        )
        task = {"name": "bounded", "schedule": schedule, "target": {"url": "https://example.com"}}
        created = api.a.post("/v1/tasks", json=task | {"max_executions": value})
        assert preview.status_code == created.status_code == 422, value
        assert preview.json() == created.json(), value
        assert preview.json()["error"]["field"] == "max_executions"


def test_unsaved_interval_preview_matches_the_saved_task(api: Api) -> None:
    schedule = {"schedule": {"interval_seconds": 60}, "start_at": "2030-02-01T00:00:00Z"}
    saved = api.task("interval", **schedule)
    stored = api.a.get(f"/v1/tasks/{saved['id']}/preview", params={"count": 2}).json()
    assert stored["fire_times"][0]["utc"] == "2030-02-01T00:00:00+00:00"
    unsaved = api.a.post("/v1/schedules/preview", params={"count": 2}, json=schedule).json()
    assert unsaved == stored


def test_cron_macros_and_day_tokens_are_saved_and_previewed(api: Api) -> None:
    """``@daily`` and ``0 9 L * *`` (the last day of the month) are accepted as written,
    by the task and by the preview alike; a misplaced token is refused naming the field,
    and nothing is stored."""
    api.clock.now = datetime(2028, 1, 30, 12, tzinfo=UTC)
    daily = api.task("daily", schedule={"cron": "@daily"})
    assert daily["schedule"]["cron"] == "@daily"
    assert daily["next_execution_time"] == "2028-01-31T00:00:00+00:00"
    last = {"cron": "0 9 L * *", "timezone": "Asia/Taipei"}
    saved = api.task("month-end", schedule=last)
    assert saved["schedule"] == last
    assert saved["next_execution_time"] == "2028-01-31T01:00:00+00:00"
    unsaved = api.a.post("/v1/schedules/preview", params={"count": 3}, json={"schedule": last})
    assert unsaved.status_code == 200, unsaved.text
    assert unsaved.json() == {
        "timezone": "Asia/Taipei",
        "fire_times": [  # 31 days, a leap February, 31 days
            {
                "utc": "2028-01-31T01:00:00+00:00",
                "local": "2028-01-31T09:00:00+08:00",
                "skipped": False,
                "reason": None,
            },
            {
                "utc": "2028-02-29T01:00:00+00:00",
                "local": "2028-02-29T09:00:00+08:00",
                "skipped": False,
                "reason": None,
            },
            {
                "utc": "2028-03-31T01:00:00+00:00",
                "local": "2028-03-31T09:00:00+08:00",
                "skipped": False,
                "reason": None,
            },
        ],
    }
    stored = api.a.get(f"/v1/tasks/{saved['id']}/preview", params={"count": 3}).json()
    assert stored == unsaved.json()
    midnights = api.a.post(
        "/v1/schedules/preview", params={"count": 2}, json={"schedule": {"cron": "@daily"}}
    ).json()
    assert [t["utc"] for t in midnights["fire_times"]] == [
        "2028-01-31T00:00:00+00:00",
        "2028-02-01T00:00:00+00:00",
    ]
    before = dump(api.engine)
    for cron in ("0 9 * * L", "@reboot", "0 9 L-31 * *"):
        refused = api.create("refused", schedule={"cron": cron})
        assert Api.error(refused, 422)["field"] == "schedule.cron", cron
        preview = api.a.post("/v1/schedules/preview", json={"schedule": {"cron": cron}})
        assert preview.json() == refused.json(), cron
    assert dump(api.engine) == before


def test_dead_letters_are_listed_and_redriven_with_their_key(api: Api) -> None:
    task, dead = api.dead_letter()
    other, _ = api.dead_letter()
    assert dead["status"] == "dead" and dead["error"] == "HTTP 503"
    # The task's last_status uses the execution's own word, and filters by it.
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["last_status"] == "dead"
    by_last = api.a.get("/v1/tasks", params={"last_status": "dead"}).json()["items"]
    assert [t["id"] for t in by_last] == [task["id"], other["id"]]
    assert api.a.get("/v1/tasks", params={"last_status": "failed"}).json()["items"] == []
    letters = api.a.get("/v1/dead-letters").json()
    assert len(letters["items"]) == 2 and {e["status"] for e in letters["items"]} == {"dead"}
    mine = api.a.get("/v1/dead-letters", params={"task_id": task["id"]}).json()["items"]
    assert [e["id"] for e in mine] == [dead["id"]]
    assert api.a.get("/v1/dead-letters", params={"until": "2000-01-01T00:00:00Z"}).json() == {
        "items": [],
        "next_cursor": None,
    }

    api.ticks.clear()
    response = api.a.post(f"/v1/dead-letters/{dead['id']}/redrive")
    assert response.status_code == 200
    redriven = response.json()
    assert redriven["status"] == "queued"
    assert redriven["idempotency_key"] == dead["idempotency_key"]
    assert redriven["id"] == dead["id"] and redriven["next_attempt_at"] is not None
    assert api.ticks == ["tick"]
    assert [e["task_id"] for e in api.a.get("/v1/dead-letters").json()["items"]] == [other["id"]]
    again = api.a.post(f"/v1/dead-letters/{dead['id']}/redrive")
    assert again.status_code == 409 and again.json()["error"]["field"] == "status"
    assert api.a.post("/v1/dead-letters/999999/redrive").status_code == 404


def test_an_auto_pause_and_a_user_pause_say_who_and_why(api: Api) -> None:
    task = api.task("fragile", retry={"max_attempts": 1}, auto_pause_after_failures=1)
    execution = api.a.post(f"/v1/tasks/{task['id']}/run").json()
    make_dead(api.engine, execution["id"])
    paused = api.a.get(f"/v1/tasks/{task['id']}").json()
    assert (paused["status"], paused["paused_by"]) == ("paused", "auto_pause")
    assert paused["paused_reason"] == (
        "auto-paused after 1 consecutive failure (auto_pause_after_failures: 1; last: HTTP 503)"
    )
    assert paused["paused_at"] is not None
    listed = api.a.get("/v1/tasks", params={"status": "paused"}).json()["items"]
    assert [t["paused_reason"] for t in listed] == [paused["paused_reason"]]
    # Pausing it again keeps who paused it first, and why.
    assert api.a.post(f"/v1/tasks/{task['id']}/pause", json={"reason": "x"}).json() == paused

    other = api.task("maintenance")
    before = dump(api.engine)
    for body, where in [({"why": "x"}, "why"), ({"reason": 5}, "reason"), ([1], None)]:
        refused = api.a.post(f"/v1/tasks/{other['id']}/pause", json=body)
        assert (refused.status_code, refused.json()["error"]["field"]) == (422, where)
    assert dump(api.engine) == before
    by_user = api.a.post(
        f"/v1/tasks/{other['id']}/pause", json={"reason": "target under maintenance"}
    ).json()
    assert (by_user["paused_by"], by_user["paused_reason"]) == ("user", "target under maintenance")

    values = metric_values(api.anonymous.get("/metrics").text)
    assert values[("taskhub_tasks_paused", (("paused_by", "auto_pause"),))] == 1
    assert values[("taskhub_tasks_paused", (("paused_by", "user"),))] == 1

    resumed = api.a.post(f"/v1/tasks/{task['id']}/resume").json()
    assert resumed["status"] == "active" and resumed["consecutive_failures"] == 1
    assert (resumed["paused_by"], resumed["paused_reason"], resumed["paused_at"]) == (
        None,
        None,
        None,
    )
    values = metric_values(api.anonymous.get("/metrics").text)
    assert values[("taskhub_tasks_paused", (("paused_by", "auto_pause"),))] == 0


def test_dead_letters_carry_their_last_error_and_filter_by_tag(api: Api) -> None:
    task, dead = api.dead_letter()
    api.a.patch(f"/v1/tasks/{task['id']}", json={"tags": {"team": "billing"}})
    api.dead_letter()
    [item] = api.a.get("/v1/dead-letters", params={"tag": "team:billing"}).json()["items"]
    assert item["id"] == dead["id"]
    assert (item["error"], item["http_status"], item["response_excerpt"]) == (
        "HTTP 503",
        503,
        "down",
    )
    assert api.a.get("/v1/dead-letters", params={"tag": "team:other"}).json()["items"] == []
    both = api.a.get("/v1/dead-letters", params={"tag": ["team:billing", "x:y"]}).json()
    assert both["items"] == []


def test_bulk_redrive_by_filter_only_touches_the_tenants_own(api: Api) -> None:
    billing, first = api.dead_letter()
    api.a.patch(f"/v1/tasks/{billing['id']}", json={"tags": {"team": "billing"}})
    second = api.a.post(f"/v1/tasks/{billing['id']}/run").json()
    make_dead(api.engine, second["id"])
    _, unrelated = api.dead_letter()
    theirs = api.b.post("/v1/tasks", json=VALID | {"retry": {"max_attempts": 1}}).json()
    foreign = api.b.post(f"/v1/tasks/{theirs['id']}/run").json()
    make_dead(api.engine, foreign["id"])

    before = dump(api.engine)
    for body, where in [
        ({}, None),  # the request as a whole: no field, null as in every other error
        ({"tags": {}, "since": None}, None),
        ({"all": False}, "all"),
        ({"all": True, "task_id": billing["id"]}, "all"),
        ({"colour": "red"}, "colour"),
        ({"tags": {"bad key": "v"}}, "tags"),
        ({"since": "soon"}, "since"),
        ({"task_id": 7}, "task_id"),
    ]:
        refused = api.a.post("/v1/dead-letters/redrive", json=body)
        assert (refused.status_code, refused.json()["error"]["field"]) == (422, where), body
    # Another tenant's task is not found, exactly like a missing one; so is its dead letter.
    assert api.a.post("/v1/dead-letters/redrive", json={"task_id": theirs["id"]}).status_code == (
        404
    )
    assert api.a.post(f"/v1/dead-letters/{foreign['id']}/redrive").status_code == 404
    assert dump(api.engine) == before

    api.ticks.clear()
    done = api.a.post("/v1/dead-letters/redrive", json={"tags": {"team": "billing"}})
    assert (done.status_code, done.json()) == (200, {"redriven": 2})
    assert api.ticks == ["tick"]
    for original in (first, second):
        redriven = api.a.get(f"/v1/executions/{original['id']}").json()
        assert redriven["status"] == "queued"
        assert redriven["idempotency_key"] == original["idempotency_key"]
    with api.engine.connect() as conn:
        offsets = conn.execute(
            sa.select(executions.c.attempt_offset).where(
                executions.c.id.in_([first["id"], second["id"]])
            )
        ).scalars()
        assert list(offsets) == [1, 1]  # a fresh budget, as a single redrive gives
    assert [e["id"] for e in api.a.get("/v1/dead-letters").json()["items"]] == [unrelated["id"]]
    # Everything, explicitly: the tenant's remaining one, never the other tenant's.
    assert api.a.post("/v1/dead-letters/redrive", json={"all": True}).json() == {"redriven": 1}
    assert api.a.post("/v1/dead-letters/redrive", json={"all": True}).json() == {"redriven": 0}
    assert [e["id"] for e in api.b.get("/v1/dead-letters").json()["items"]] == [foreign["id"]]


def test_bulk_redrive_goes_in_batches_to_the_end(api: Api) -> None:
    dead = [api.dead_letter()[1]["id"] for _ in range(5)]
    with api.engine.begin() as conn:
        conn.execute(sa.update(executions).values(scheduled_for=T0 + timedelta(days=1)))
    early = api.a.post(
        "/v1/dead-letters/redrive", json={"until": (T0 + timedelta(days=1)).isoformat()}
    )
    assert early.json() == {"redriven": 0}
    result = executions_service.redrive_matching(
        api.engine, "acme", {"since": T0.isoformat()}, api.clock(), batch_size=2
    )
    assert result == {"redriven": 5}
    assert api.a.get("/v1/dead-letters").json()["items"] == []
    assert {api.a.get(f"/v1/executions/{i}").json()["status"] for i in dead} == {"queued"}


# --- bad input ----------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "name": "valid",
    "schedule": {"cron": "0 9 * * *"},
    "target": {"url": "https://example.com/hook"},
}


def target(**fields: Any) -> dict[str, Any]:
    return {"target": {"url": "https://example.com/hook", **fields}}


BAD_TASKS: list[tuple[str, Any, int, str]] = [
    ("invalid cron", {"schedule": {"cron": "61 * * * *"}}, 422, "schedule.cron"),
    ("cron of four fields", {"schedule": {"cron": "* * * *"}}, 422, "schedule.cron"),
    (
        "unknown time zone",
        {"schedule": {"cron": "0 9 * * *", "timezone": "Mars/Base"}},
        422,
        "schedule.timezone",
    ),
    (
        "two schedule kinds",
        {"schedule": {"cron": "0 9 * * *", "interval_seconds": 60}},
        422,
        "schedule",
    ),
    ("no schedule kind", {"schedule": {}}, 422, "schedule"),
    ("non-http URL", target(url="ftp://example.com/x"), 422, "target.url"),
    ("URL too long", target(url="https://example.com/" + "a" * 2100), 422, "target.url"),
    ("bad method", target(method="FETCH"), 422, "target.method"),
    (
        "too many headers",
        target(headers={f"X-H{i}": "v" for i in range(51)}),
        422,
        "target.headers",
    ),
    ("too large a header", target(headers={"X-Big": "v" * 9000}), 422, "target.headers.X-Big"),
    (
        "too large headers in all",
        target(headers={f"X-H{i}": "v" * 8000 for i in range(5)}),
        422,
        "target.headers",
    ),
    (
        "taskhub's Idempotency-Key",
        target(headers={"idempotency-key": "k"}),
        422,
        "target.headers.idempotency-key",
    ),
    (
        "taskhub's X-Taskhub-*",
        target(headers={"X-Taskhub-Attempt": "9"}),
        422,
        "target.headers.X-Taskhub-Attempt",
    ),
    (
        "hop-by-hop header",
        target(headers={"Connection": "close"}),
        422,
        "target.headers.Connection",
    ),
    (
        "hop-by-hop Transfer-Encoding",
        target(headers={"Transfer-Encoding": "chunked"}),
        422,
        "target.headers.Transfer-Encoding",
    ),
    ("body over the cap", target(body="x" * (64 * 1024 + 1)), 422, "target.body"),
    ("timeout too short", target(timeout_seconds=0.5), 422, "target.timeout_seconds"),
    ("timeout too long", target(timeout_seconds=301), 422, "target.timeout_seconds"),
    ("timeout not a number", target(timeout_seconds="30"), 422, "target.timeout_seconds"),
    ("at in the past", {"schedule": {"at": "2029-12-31T23:59:59Z"}}, 422, "schedule.at"),
    ("at without offset", {"schedule": {"at": "2031-01-01T00:00:00"}}, 422, "schedule.at"),
    (
        "interval below minimum",
        {"schedule": {"interval_seconds": 0}},
        422,
        "schedule.interval_seconds",
    ),
    (
        "interval not integer",
        {"schedule": {"interval_seconds": 1.5}},
        422,
        "schedule.interval_seconds",
    ),
    ("unknown field", {"colour": "red"}, 422, "colour"),
    ("unknown target field", target(verb="GET"), 422, "target.verb"),
    ("unknown retry field", {"retry": {"tries": 3}}, 422, "retry.tries"),
    (
        "unknown schedule field",
        {"schedule": {"cron": "0 9 * * *", "every": "day"}},
        422,
        "schedule.every",
    ),
    ("no name", {"name": None}, 422, "name"),
    ("no URL", {"target": {"method": "GET"}}, 422, "target.url"),
    ("retry of no attempts", {"retry": {"max_attempts": 0}}, 422, "retry.max_attempts"),
    ("bad tag key", {"tags": {"bad key": "v"}}, 422, "tags"),
    (
        "end before start",
        {"start_at": "2031-01-02T00:00:00Z", "end_at": "2031-01-01T00:00:00Z"},
        422,
        "end_at",
    ),
    ("max_executions of 0", {"max_executions": 0}, 422, "max_executions"),
    ("unknown misfire policy", {"misfire_policy": "sometimes"}, 422, "misfire_policy"),
    ("misfire policy not a string", {"misfire_policy": 1}, 422, "misfire_policy"),
    ("auto-pause of 0", {"auto_pause_after_failures": 0}, 422, "auto_pause_after_failures"),
    ("auto-pause over 1000", {"auto_pause_after_failures": 1001}, 422, "auto_pause_after_failures"),
    ("auto-pause as text", {"auto_pause_after_failures": "5"}, 422, "auto_pause_after_failures"),
    ("auto-pause as bool", {"auto_pause_after_failures": True}, 422, "auto_pause_after_failures"),
    ("duplicate name", {"name": "taken"}, 409, "name"),
]


@pytest.mark.parametrize(
    ("change", "status", "where"), [c[1:] for c in BAD_TASKS], ids=[c[0] for c in BAD_TASKS]
)
def test_bad_tasks_are_refused_naming_the_field_and_change_nothing(
    api: Api, change: dict[str, Any], status: int, where: str
) -> None:
    api.task("taken")
    victim = api.task("victim")
    api.a.post(f"/v1/tasks/{victim['id']}/run")
    before = dump(api.engine)
    body = {key: value for key, value in (VALID | change).items() if value is not None}
    response = api.a.post("/v1/tasks", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == where
    assert error["code"] == ("conflict" if status == 409 else "invalid")
    assert error["message"]
    # The same change as a PATCH of the existing task: refused the same way.
    if where not in ("name", "target.url"):
        patch = api.a.patch(f"/v1/tasks/{victim['id']}", json=change)
        assert (patch.status_code, patch.json()["error"]["field"]) == (status, where)
    assert dump(api.engine) == before


def test_a_null_at_is_refused_naming_it(api: Api) -> None:
    response = api.a.post("/v1/tasks", json=VALID | {"schedule": {"at": None}})
    assert (response.status_code, response.json()["error"]["field"]) == (422, "schedule.at")


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"{not json", "body"),
        (b"", "body"),
        (b"[1, 2]", None),
        (b'"a string"', None),
        (b"null", None),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b"\xff\xfe\x00garbage", "body"),
    ],
    ids=["malformed", "empty", "array", "string", "null", "deeply nested", "not UTF-8"],
)
def test_a_body_that_is_not_a_json_object_is_422(
    api: Api, content: bytes, where: str | None
) -> None:
    task = api.task()
    before = dump(api.engine)
    for response in (
        api.a.post("/v1/tasks", content=content),
        api.a.patch(f"/v1/tasks/{task['id']}", content=content),
        api.a.post("/v1/schedules/preview", content=content),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["error"] == response.json()["error"] | {
            "code": "invalid",
            "field": where,
        }
    assert dump(api.engine) == before


def test_a_huge_body_is_413_without_being_stored(api: Api) -> None:
    before = dump(api.engine)
    response = api.a.post("/v1/tasks", content=b" " * (MAX_REQUEST_BYTES + 1))
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert dump(api.engine) == before


def test_patch_refusals_specific_to_patch(api: Api) -> None:
    task = api.task("a")
    api.task("b")
    before = dump(api.engine)
    for patch, status, where in [
        ({"name": "b"}, 409, "name"),
        ({"id": str(uuid.uuid4())}, 422, "id"),
        ({"status": "paused"}, 422, "status"),
        ({"target": None}, 422, "target"),
        ({"target": {"method": "BREW"}}, 422, "target.method"),
    ]:
        response = api.a.patch(f"/v1/tasks/{task['id']}", json=patch)
        assert (response.status_code, response.json()["error"]["field"]) == (status, where)
    assert dump(api.engine) == before


def cursor_of(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(str(key).replace("'", '"').encode()).decode()


@pytest.mark.parametrize(
    ("path", "query", "where"),
    [
        ("/v1/tasks", {"limit": "abc"}, "limit"),
        ("/v1/tasks", {"limit": 0}, "limit"),
        ("/v1/tasks", {"limit": 501}, "limit"),
        ("/v1/tasks", {"status": "sleeping"}, "status"),
        ("/v1/tasks", {"last_status": "queued"}, "last_status"),
        ("/v1/tasks", {"tag": "no-colon"}, "tag"),
        ("/v1/tasks", {"next_before": "yesterday"}, "next_before"),
        ("/v1/tasks", {"next_after": "2030-01-01T00:00:00"}, "next_after"),
        ("/v1/tasks", {"cursor": "garbage!"}, "cursor"),
        ("/v1/tasks", {"cursor": cursor_of([1])}, "cursor"),
        ("/v1/tasks", {"cursor": cursor_of(["2030-01-01T00:00:00Z", "not-a-uuid"])}, "cursor"),
        ("/v1/executions", {"status": "sleeping"}, "status"),
        ("/v1/executions", {"since": "soon"}, "since"),
        ("/v1/executions", {"until": "2030-13-01T00:00:00Z"}, "until"),
        ("/v1/executions", {"cursor": cursor_of(["x"])}, "cursor"),
        ("/v1/executions", {"limit": -1}, "limit"),
        ("/v1/dead-letters", {"limit": "many"}, "limit"),
        ("/v1/dead-letters", {"since": "2030"}, "since"),
        ("/v1/dead-letters", {"tag": "no-colon"}, "tag"),
    ],
)
def test_bad_query_parameters_are_422_naming_them(
    api: Api, path: str, query: dict[str, Any], where: str
) -> None:
    response = api.a.get(path, params=query)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == where


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tasks?next_before=0001-01-01T00:00:00%2B01:00",
        "/v1/executions?since=9999-12-31T23:59:59-01:00",
        f"/v1/executions?cursor={cursor_of([10**30])}",
        f"/v1/tasks?cursor={cursor_of(['0001-01-01T00:00:00+01:00', str(uuid.uuid4())])}",
        "/v1/tasks?limit=100000000000000000000000000000",
        "/v1/executions/100000000000000000000000000000",
        "/v1/executions/-1",
        "/v1/executions/%C3%A9",
        "/v1/tasks/not-a-uuid",
        "/v1/tasks/%00",
    ],
)
def test_odd_values_are_refused_never_a_500(api: Api, path: str) -> None:
    response = api.a.get(path)
    assert response.status_code in (404, 422), response.text
    assert set(response.json()["error"]) == {"code", "message", "field"}


def test_nul_characters_are_never_a_500(api: Api) -> None:
    # PostgreSQL cannot store or compare NUL in text; SQLite can. Either way no 500.
    for response in (
        api.a.post("/v1/tasks", json=VALID | target(body="a\u0000b")),
        api.a.post("/v1/tasks", json=VALID | {"name": "tagged", "tags": {"k": "\u0000"}}),
        api.a.get("/v1/tasks", params={"name": "a\u0000b"}),
        api.a.get("/v1/tasks", params={"name_prefix": "\u0000"}),
        api.a.get("/v1/tasks", params={"tag": "k:\u0000"}),
    ):
        assert response.status_code in (200, 201, 422), response.text
        if response.status_code == 422:
            assert response.json()["error"]["code"] == "invalid"


# --- keys and tenants -------------------------------------------------------------------

ROUTES: list[tuple[str, str]] = [
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/{task}"),
    ("PATCH", "/v1/tasks/{task}"),
    ("DELETE", "/v1/tasks/{task}"),
    ("POST", "/v1/tasks/{task}/pause"),
    ("POST", "/v1/tasks/{task}/resume"),
    ("POST", "/v1/tasks/{task}/run"),
    ("POST", "/v1/tasks/{task}/backfill"),
    ("GET", "/v1/tasks/{task}/executions"),
    ("GET", "/v1/tasks/{task}/preview"),
    ("POST", "/v1/schedules/preview"),
    ("GET", "/v1/executions"),
    ("GET", "/v1/executions/{execution}"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/{execution}/redrive"),
    ("POST", "/v1/dead-letters/redrive"),
    ("POST", "/v1/tasks/{task}/skip"),
    ("POST", "/v1/tasks/{task}/unskip"),
    ("POST", "/v1/calendars"),
    ("GET", "/v1/calendars"),
]


def test_every_v1_route_needs_a_valid_key(api: Api) -> None:
    task, dead = api.dead_letter()
    revoked_key = new_key(api.engine, "revoked")
    with api.engine.begin() as conn:
        assert apikeys.revoke_key(conn, revoked_key, datetime.now(UTC)) is not None
    before = dump(api.engine)
    app = api.a.app
    callers = {
        "no header": client(app, None),
        "unknown key": client(app, "thk_not_a_real_key"),
        "revoked key": client(app, revoked_key),
        "empty bearer": TestClient(app, headers={"Authorization": "Bearer "}),
        "basic auth": TestClient(app, headers={"Authorization": "Basic YWxhZGRpbjpzZXNhbWU="}),
        "key without scheme": TestClient(
            app, headers={"Authorization": str(api.a.headers["authorization"]).split()[1]}
        ),
    }
    for method, template in ROUTES:
        path = template.format(task=task["id"], execution=dead["id"])
        for why, caller in callers.items():
            # Even a malformed body is not looked at without a key.
            response = caller.request(method, path, content=b"{not json")
            assert response.status_code == 401, (method, path, why, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
    assert dump(api.engine) == before


def test_tenants_never_see_or_change_each_others_objects(api: Api) -> None:
    task, dead = api.dead_letter()
    queued = api.a.post(f"/v1/tasks/{task['id']}/run").json()
    before = dump(api.engine)
    for method, template in ROUTES:
        if "{" not in template:
            continue
        for execution in (dead, queued):
            path = template.format(task=task["id"], execution=execution["id"])
            response = api.b.request(
                method, path, json={"name": "stolen", "target": {"url": "https://evil.example"}}
            )
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"
    for path in ("/v1/executions", "/v1/dead-letters"):
        response = api.b.get(path, params={"task_id": task["id"]})
        assert response.status_code == 404, path
    assert dump(api.engine) == before
    for path in ("/v1/tasks", "/v1/executions", "/v1/dead-letters"):
        assert api.b.get(path).json() == {"items": [], "next_cursor": None}, path
    # Names are per tenant: B may use A's.
    assert api.b.post("/v1/tasks", json=VALID | {"name": task["name"]}).status_code == 201
    assert len(api.a.get("/v1/tasks").json()["items"]) == 1


def test_keys_never_reach_logs_or_responses(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    key = str(api.a.headers["authorization"]).split()[1]
    caplog.set_level(logging.DEBUG)
    texts = [
        api.a.post("/v1/tasks", json=VALID).text,
        api.a.get("/v1/tasks").text,
        api.a.post("/v1/tasks", json={"name": 1}).text,
        client(api.a.app, key + "x").get("/v1/tasks").text,
        api.a.get("/metrics").text,
    ]
    assert not any(key in text for text in texts)
    assert key not in caplog.text and "https://example.com/hook" not in caplog.text


# --- paging under concurrent changes ----------------------------------------------------


class Churn(threading.Thread):
    """Creates and deletes other tasks of the same tenant while a test pages."""

    def __init__(self, engine: Engine, clock: Clock, doomed: list[str]) -> None:
        super().__init__(daemon=True)
        self.engine, self.clock, self.doomed = engine, clock, doomed
        self.stop = threading.Event()
        self.changes = 0
        self.limit = len(doomed)
        self.error: BaseException | None = None
        #: Two changes per page read (``page_through`` releases it): the changes land
        #: between the pages however fast or slow either side runs.
        self.turns = threading.Semaphore(2)

    def run(self) -> None:
        try:
            # Bounded, and paced by the pages, so the pages interleave with the changes
            # and the last page is ever reached (new tasks sort last).
            while not self.stop.is_set() and self.changes < self.limit:
                if not self.turns.acquire(timeout=0.1):
                    continue
                with self.engine.begin() as conn:
                    new = task_service.add_task(
                        conn,
                        "acme",
                        VALID | {"name": f"churn-{uuid.uuid4().hex}"},
                        self.clock(),
                        load(),
                    )
                    if self.doomed:
                        task_service.delete_task(conn, "acme", self.doomed.pop(0))
                    task_service.run_task_now(conn, "acme", new["id"], self.clock())
                self.changes += 1
        except BaseException as error:
            self.error = error


def page_through(api: Api, path: str, limit: int, churn: Churn) -> tuple[list[Any], list[int]]:
    """Every id a paged listing returns, and how far the churn had got at each page."""
    seen: list[Any] = []
    progress: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = api.a.get(path, params=params)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        progress.append(churn.changes)
        churn.turns.release(2)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return seen, progress


def test_paging_neither_skips_nor_repeats_while_tasks_come_and_go(api: Api) -> None:
    with api.engine.begin() as conn:  # 60 creates and the paging at one instant of the clock
        quotas.set_limits(conn, "acme", {"requests_per_second": 0}, T0, load())
    stable: list[str] = []
    doomed: list[str] = []
    for i in range(30):
        stable.append(api.task(f"stable-{i:02}")["id"])
        doomed.append(api.task(f"doomed-{i:02}")["id"])
    runs = [api.a.post(f"/v1/tasks/{task_id}/run").json()["id"] for task_id in stable]
    churn = Churn(api.engine, api.clock, doomed)
    churn.start()
    try:
        task_ids, progress = page_through(api, "/v1/tasks", 4, churn)
        execution_ids, more_progress = page_through(api, "/v1/executions", 3, churn)
    finally:
        churn.stop.set()
        churn.join(timeout=30)
    assert churn.error is None
    progress += more_progress
    assert len(set(progress)) > 2, f"the churn must overlap the paging: {progress}"
    assert len(task_ids) == len(set(task_ids))
    assert [t for t in task_ids if t in set(stable)] == stable
    assert len(execution_ids) == len(set(execution_ids))
    assert execution_ids == sorted(execution_ids, reverse=True)  # newest first
    assert set(runs) <= set(execution_ids)


# --- operations and the document --------------------------------------------------------


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_and_metrics_need_no_key(api: Api) -> None:
    assert api.anonymous.get("/healthz").json() == {"status": "ok"}
    due = api.task("due")  # an interval task is due at once
    api.task("later", schedule={"at": "2031-01-01T00:00:00Z"})
    paused = api.task("paused")
    api.a.post(f"/v1/tasks/{paused['id']}/pause")
    api.dead_letter()
    api.a.post(f"/v1/tasks/{due['id']}/run")
    api.clock.now += timedelta(seconds=90)

    response = api.anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = metric_values(response.text)
    assert values[("taskhub_database_up", ())] == 1
    assert values[("taskhub_tasks", (("status", "active"),))] == 3
    assert values[("taskhub_tasks", (("status", "paused"),))] == 1
    assert values[("taskhub_tasks", (("status", "finished"),))] == 0
    assert values[("taskhub_executions", (("status", "queued"),))] == 1
    assert values[("taskhub_executions", (("status", "dead"),))] == 1
    assert values[("taskhub_executions", (("status", "succeeded"),))] == 0
    assert values[("taskhub_dead_letters", ())] == 1
    assert values[("taskhub_due_backlog", ())] == 2  # "due" and the flaky one
    assert 90 <= values[("taskhub_oldest_due_age_seconds", ())] < 91
    assert (
        values[
            (
                "taskhub_api_requests_total",
                (("method", "POST"), ("route", "/v1/tasks"), ("status", "201")),
            )
        ]
        == 4
    )
    assert any(
        name == "taskhub_api_request_duration_seconds_count"
        and dict(labels) == {"method": "GET", "route": "/v1/executions/{execution_id}"}
        for name, labels in values
    )
    assert "tasks/" + due["id"] not in response.text  # route templates, never raw paths


def test_a_database_outage_is_503_not_500() -> None:
    down = engines.create_engine("postgresql://nobody@127.0.0.1:9/none", pool_pre_ping=False)
    app = create_app(engine=down, request_tick=lambda: None)
    caller = client(app, "thk_any")
    health = caller.get("/healthz")
    assert health.status_code == 503 and health.json()["error"]["code"] == "unavailable"
    assert caller.get("/v1/tasks").status_code == 503
    assert metric_values(caller.get("/metrics").text)[("taskhub_database_up", ())] == 0
    down.dispose()


def test_unknown_routes_and_methods_have_the_one_error_shape(api: Api) -> None:
    missing = api.a.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert api.anonymous.get("/").status_code == 404
    wrong = api.a.put("/v1/tasks")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_document_describes_every_route_and_error(api: Api) -> None:
    assert api.anonymous.get("/docs").status_code == 200
    document = api.anonymous.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"Task", "Execution", "TaskPage", "ExecutionPage", "Preview", "Error"} <= set(schemas)
    assert {"TaskCreate", "TaskPatch", "SchedulePreviewRequest"} <= set(schemas)
    assert schemas["TaskCreate"]["additionalProperties"] is False
    assert set(schemas["Task"]["properties"]) == TASK_FIELDS
    assert set(schemas["Execution"]["properties"]) >= EXECUTION_FIELDS
    error_ref = {"$ref": "#/components/schemas/Error"}
    for method, template in ROUTES:
        path = template.replace("{task}", "{task_id}").replace("{execution}", "{execution_id}")
        operation = document["paths"][path][method.lower()]
        for status in ("401", "422"):
            assert operation["responses"][status]["content"]["application/json"]["schema"] == (
                error_ref
            ), (method, path, status)
        if "{" in path:
            assert "404" in operation["responses"], (method, path)
        assert operation["security"] == [{"HTTPBearer": []}]
    create = document["paths"]["/v1/tasks"]["post"]
    assert "201" in create["responses"] and "409" in create["responses"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskCreate"
    }
    assert "204" in document["paths"]["/v1/tasks/{task_id}"]["delete"]["responses"]
    assert "202" in document["paths"]["/v1/tasks/{task_id}/run"]["post"]["responses"]
    backfill = document["paths"]["/v1/tasks/{task_id}/backfill"]["post"]
    assert "202" in backfill["responses"] and "404" in backfill["responses"]
    assert backfill["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BackfillRequest"
    }
    assert set(schemas["BackfillRequest"]["required"]) == {"start", "end"}
    assert "HTTPValidationError" not in schemas  # one error shape, also in the document
