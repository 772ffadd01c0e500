"""Creating and editing a task through the console's form, on both backends: the form
becomes the API's JSON and is refused by the same code, beside the field at fault."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from taskhub.service import task_views
from tests.support.api import T0, Api, dump, new_key
from tests.support.console import csrf_of, form_of, signed_in_client

SECRET = "Bearer s3cr3t-token-abcdefghijklmnop"


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


@pytest.fixture
def browser(api: Api, engine: Engine) -> TestClient:
    return signed_in_client(api.a.app, new_key(engine, "acme"))


def new_form(browser: TestClient, **typed: str) -> dict[str, str]:
    """The new task form's values (with its csrf token) and what the test types."""
    page = browser.get("/ui/tasks/new")
    assert page.status_code == 200, page.text
    return form_of(page.text).values | typed


def created_id(response: Any) -> str:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/ui/tasks/([0-9a-f-]{36})\?notice=created", response.headers["location"])
    assert found is not None, response.headers["location"]
    return found.group(1)


FULL_JSON: dict[str, Any] = {
    "schedule": {"cron": "0 9 * * MON-FRI", "timezone": "Asia/Taipei"},
    "target": {
        "url": "https://hooks.example.com/report",
        "method": "PUT",
        "headers": {"Authorization": SECRET, "X-Team": "ops"},
        "body": '{"report": "sales"}',
        "timeout_seconds": 45,
    },
    "retry": {"max_attempts": 5, "backoff_seconds": 30, "max_backoff_seconds": 900},
    "start_at": "2030-01-08T00:00:00+00:00",
    "end_at": "2030-12-31T00:00:00+00:00",
    "max_executions": 100,
    "tags": {"team": "ops", "env": "prod"},
    "misfire_policy": "skip",
    "auto_pause_after_failures": 10,
    "rate_limit": {"max_in_flight": 2, "per_second": 5},
    "spread_seconds": 30,
}
FULL_FORM = {
    "schedule": "cron",
    "cron": "0 9 * * MON-FRI",
    "timezone": "Asia/Taipei",
    "url": "https://hooks.example.com/report",
    "method": "PUT",
    "headers": f"Authorization: {SECRET}\r\nX-Team: ops\r\n",
    "body": '{"report": "sales"}',
    "timeout_seconds": "45",
    "max_attempts": "5",
    "backoff_seconds": "30",
    "max_backoff_seconds": "900",
    "start_at": "2030-01-08T00:00:00+00:00",
    "end_at": "2030-12-31T00:00:00+00:00",
    "max_executions": "100",
    "tags": "team=ops\r\nenv=prod",
    "misfire_policy": "skip",
    "auto_pause_after_failures": "10",
    "max_in_flight": "2",
    "per_second": "5",
    "spread_seconds": "30",
}
_STATE = ("id", "name", "created_at", "updated_at")


def test_a_task_created_through_the_form_is_the_task_a_json_create_makes(
    api: Api, browser: TestClient
) -> None:
    response = browser.post(
        "/ui/tasks/new", data=new_form(browser, name="by-form", **FULL_FORM), follow_redirects=False
    )
    task_id = created_id(response)
    by_form = api.a.get(f"/v1/tasks/{task_id}").json()
    by_json = api.task("by-json", **FULL_JSON)
    assert {k: v for k, v in by_form.items() if k not in _STATE} == {
        k: v for k, v in by_json.items() if k not in _STATE
    }
    assert by_form["name"] == "by-form"
    assert SECRET not in browser.get(f"/ui/tasks/{task_id}/edit").text


def test_a_new_task_left_at_the_forms_defaults_is_a_minimal_json_create(
    api: Api, browser: TestClient
) -> None:
    typed = {"name": "small", "url": "https://example.com/hook", "cron": "*/5 * * * *"}
    task_id = created_id(
        browser.post("/ui/tasks/new", data=new_form(browser, **typed), follow_redirects=False)
    )
    by_json = api.task("json", schedule={"cron": "*/5 * * * *"})
    by_form = api.a.get(f"/v1/tasks/{task_id}").json()
    assert {k: v for k, v in by_form.items() if k not in _STATE} == {
        k: v for k, v in by_json.items() if k not in _STATE
    }


@pytest.mark.parametrize(
    ("field", "typed"),
    [
        ("cron", "61 * * * *"),
        ("url", "ftp://example.com/x"),
        ("timezone", "Mars/Olympus_Mons"),
        ("headers", "Host: evil.example"),
        ("tags", "no equals sign"),
        ("max_backoff_seconds", "1"),
    ],
)
def test_a_refused_field_is_shown_beside_it_as_typed_and_nothing_is_stored(
    api: Api, engine: Engine, browser: TestClient, field: str, typed: str
) -> None:
    before = dump(engine)
    values = new_form(browser, name="bad", url="https://example.com/hook", cron="0 9 * * *")
    response = browser.post("/ui/tasks/new", data=values | {field: typed}, follow_redirects=False)
    assert response.status_code == 422
    page = form_of(response.text)
    assert page.attrs[field]["aria-invalid"] == "true"
    assert page.attrs[field]["aria-describedby"] == f"{field}-error"
    assert f'id="{field}-error" class="field-error"' in response.text
    assert page.values[field].replace("\r\n", "\n").strip() == typed
    assert page.values["name"] == "bad"
    assert dump(engine) == before


def test_a_taken_name_is_shown_beside_the_name(api: Api, browser: TestClient) -> None:
    api.task("taken")
    values = new_form(browser, name="taken", url="https://example.com/hook", cron="0 9 * * *")
    response = browser.post("/ui/tasks/new", data=values, follow_redirects=False)
    assert response.status_code == 409
    assert form_of(response.text).attrs["name"]["aria-describedby"] == "name-error"


def test_editing_changes_the_schedule_and_the_next_run(api: Api, browser: TestClient) -> None:
    task = api.task("hourly")
    page = browser.get(f"/ui/tasks/{task['id']}/edit")
    assert page.status_code == 200 and ">Save</button>" in page.text
    values = form_of(page.text).values
    assert values["schedule"] == "interval" and values["interval_seconds"] == "3600"
    values |= {"schedule": "cron", "cron": "30 9 * * *", "timezone": "Asia/Taipei"}
    response = browser.post(f"/ui/tasks/{task['id']}/edit", data=values, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/tasks/{task['id']}?notice=saved"
    changed = api.a.get(f"/v1/tasks/{task['id']}").json()
    assert changed["schedule"] == {"cron": "30 9 * * *", "timezone": "Asia/Taipei"}
    assert changed["next_execution_time"] == "2030-01-07T01:30:00+00:00"


def test_a_refused_edit_changes_nothing(api: Api, engine: Engine, browser: TestClient) -> None:
    task = api.task("hourly")
    before = dump(engine)
    values = form_of(browser.get(f"/ui/tasks/{task['id']}/edit").text).values
    response = browser.post(
        f"/ui/tasks/{task['id']}/edit",
        data=values | {"schedule": "cron", "cron": "0 0 30 2 *", "name": "renamed"},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert form_of(response.text).attrs["cron"]["aria-describedby"] == "cron-error"
    assert dump(engine) == before


def test_a_masked_credential_sent_back_keeps_the_stored_secret(
    api: Api, engine: Engine, browser: TestClient
) -> None:
    task = api.task(
        "secret", target={"url": "https://example.com/hook", "headers": {"Authorization": SECRET}}
    )
    page = browser.get(f"/ui/tasks/{task['id']}/edit").text
    assert SECRET not in page and "s3cr3t" not in page
    values = form_of(page).values
    assert values["headers"].startswith("Authorization: Bearer ****")
    values |= {"body": "changed", "headers": values["headers"] + "\nX-More: 1"}
    response = browser.post(f"/ui/tasks/{task['id']}/edit", data=values, follow_redirects=False)
    assert response.status_code == 303, response.text
    settings = cast(FastAPI, api.a.app).state.taskhub.settings
    with engine.connect() as conn:
        row = task_views.task_row(conn, "acme", task["id"])
        assert task_views.stored_secrets(row, settings) == {"Authorization": SECRET}
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["target"]["body"] == "changed"


CALL = {
    "task": "billing.tasks.nightly_report",
    "args": [1],
    "kwargs": {"region": "eu"},
    "queue": "reports",
    "broker": "default",
    "track": False,
    "expires_seconds": 3600.0,
}
CALL_FORM = {
    "target": "celery",
    "celery_task": "billing.tasks.nightly_report",
    "celery_args": "[1]",
    "celery_kwargs": '{"region": "eu"}',
    "celery_queue": "reports",
    "celery_broker": "default",
    "celery_expires_seconds": "3600",
}


def test_a_celery_target_through_the_form_is_the_one_json_gives(
    api: Api, browser: TestClient
) -> None:
    typed = {"name": "by-form", "cron": "0 9 * * *", "url": "", **CALL_FORM}
    task_id = created_id(
        browser.post("/ui/tasks/new", data=new_form(browser, **typed), follow_redirects=False)
    )
    by_form = api.a.get(f"/v1/tasks/{task_id}").json()
    assert by_form["target"] == {"celery": CALL, "timeout_seconds": 30.0}
    page = form_of(browser.get(f"/ui/tasks/{task_id}/edit").text)
    assert page.values["target"] == "celery" and page.values["celery_task"] == CALL["task"]


def test_an_edit_switches_the_kind_of_target_and_back(api: Api, browser: TestClient) -> None:
    task = api.task(
        "switch", target={"url": "https://example.com/hook", "headers": {"Authorization": SECRET}}
    )
    values = form_of(browser.get(f"/ui/tasks/{task['id']}/edit").text).values
    response = browser.post(
        f"/ui/tasks/{task['id']}/edit", data=values | CALL_FORM, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["target"] == {
        "celery": CALL,
        "timeout_seconds": 30.0,
    }
    values = form_of(browser.get(f"/ui/tasks/{task['id']}/edit").text).values
    assert values["url"] == "" and values["headers"] == ""
    values |= {"target": "http", "url": "https://example.com/other", "headers": "X-A: 1"}
    response = browser.post(f"/ui/tasks/{task['id']}/edit", data=values, follow_redirects=False)
    assert response.status_code == 303, response.text
    target = api.a.get(f"/v1/tasks/{task['id']}").json()["target"]
    assert target == {
        "url": "https://example.com/other",
        "method": "POST",
        "headers": {"X-A": "1"},
        "body": None,
        "timeout_seconds": 30.0,
    }


@pytest.mark.parametrize(
    ("field", "typed"),
    [("celery_broker", "nowhere"), ("celery_args", "[1,"), ("celery_task", "not a name")],
)
def test_a_refused_celery_field_is_shown_beside_it(
    engine: Engine, browser: TestClient, field: str, typed: str
) -> None:
    before = dump(engine)
    values = new_form(browser, name="bad", cron="0 9 * * *", **CALL_FORM)
    response = browser.post("/ui/tasks/new", data=values | {field: typed}, follow_redirects=False)
    assert response.status_code == 422
    assert form_of(response.text).attrs[field]["aria-describedby"] == f"{field}-error"
    assert form_of(response.text).values[field] == typed
    assert dump(engine) == before


def preview(browser: TestClient, **typed: str) -> str:
    values = new_form(browser, **typed)
    token = values.pop("csrf_token")
    response = browser.post("/ui/schedules/preview", data=values, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    return response.text


def test_the_preview_shows_the_next_fire_times_of_each_kind_of_schedule(
    browser: TestClient,
) -> None:
    cron = preview(browser, schedule="cron", cron="0 9 * * MON-FRI", timezone="Asia/Taipei")
    times = re.findall(r'<time datetime="([^"]+)">', cron)
    assert len(times) == 10 and times[0] == "2030-01-07T01:00:00+00:00"
    assert "Mon 2030-01-07 09:00:00</time>" in cron and "(Mon 2030-01-07 01:00:00 UTC)" in cron
    interval = preview(
        browser, schedule="interval", interval_seconds="3600", start_at="2030-01-07T00:30:00Z"
    )
    assert re.findall(r'<time datetime="([^"]+)">', interval)[:2] == [
        "2030-01-07T00:30:00+00:00",
        "2030-01-07T01:30:00+00:00",
    ]
    once = preview(browser, schedule="once", at="2030-02-01T12:00:00Z")
    assert re.findall(r'<time datetime="([^"]+)">', once) == ["2030-02-01T12:00:00+00:00"]


@pytest.mark.parametrize(
    ("typed", "named"),
    [
        ({"schedule": "cron", "cron": "61 * * * *"}, "Cron:"),
        ({"schedule": "cron", "cron": "* * * * *", "timezone": "Nowhere/City"}, "Time zone:"),
        ({"schedule": "once", "at": "2020-01-01T00:00:00Z"}, "At:"),
        ({"schedule": "interval", "interval_seconds": "often"}, "Interval (seconds):"),
    ],
)
def test_the_preview_names_the_field_it_refuses(
    browser: TestClient, typed: dict[str, str], named: str
) -> None:
    fragment = preview(browser, **typed)
    assert "<time" not in fragment
    assert f'<p class="field-error">{named}' in fragment


def test_a_saved_intervals_preview_counts_from_its_creation(api: Api, browser: TestClient) -> None:
    task = api.task("hourly")
    api.clock.now += timedelta(minutes=20)
    page = browser.get(f"/ui/tasks/{task['id']}/edit").text
    shown = re.findall(r'<time datetime="([^"]+)">', page)
    created = datetime.fromisoformat(task["created_at"])
    assert shown[:2] == [(created + timedelta(hours=h)).isoformat() for h in (1, 2)]
    values = form_of(page).values
    token = values.pop("csrf_token")
    again = browser.post("/ui/schedules/preview", data=values, headers={"X-CSRF-Token": token})
    assert re.findall(r'<time datetime="([^"]+)">', again.text) == shown


def test_the_form_has_a_live_preview_region(browser: TestClient) -> None:
    page = browser.get("/ui/tasks/new").text
    assert "Type a schedule to see its next fire times." in page
    assert 'data-preview="schedule-preview" data-preview-url="/ui/schedules/preview"' in page
    assert '<div id="schedule-preview" aria-live="polite">' in page


def test_a_change_without_the_csrf_token_is_refused(
    api: Api, engine: Engine, browser: TestClient
) -> None:
    task = api.task("kept")
    before = dump(engine)
    values = new_form(browser, name="forged", url="https://example.com/hook", cron="0 9 * * *")
    del values["csrf_token"]
    assert browser.post("/ui/tasks/new", data=values, follow_redirects=False).status_code == 403
    edited = form_of(browser.get(f"/ui/tasks/{task['id']}/edit").text).values
    edited |= {"name": "forged", "csrf_token": "not-the-token"}
    assert (
        browser.post(
            f"/ui/tasks/{task['id']}/edit", data=edited, follow_redirects=False
        ).status_code
        == 403
    )
    assert (
        browser.post(
            "/ui/schedules/preview", data={"schedule": "cron", "cron": "* * * * *"}
        ).status_code
        == 403
    )
    assert dump(engine) == before


def test_another_tenants_task_cannot_be_edited(
    api: Api, engine: Engine, browser: TestClient
) -> None:
    theirs = api.b.post(
        "/v1/tasks",
        json={
            "name": "theirs",
            "schedule": {"interval_seconds": 3600},
            "target": {"url": "https://example.com/"},
        },
    ).json()
    assert browser.get(f"/ui/tasks/{theirs['id']}/edit").status_code == 404
    token = csrf_of(browser.get("/ui/tasks/new").text)
    before = dump(engine)
    response = browser.post(
        f"/ui/tasks/{theirs['id']}/edit", data={"csrf_token": token, "name": "mine"}
    )
    assert response.status_code == 404
    assert dump(engine) == before


def test_signed_out_the_form_sends_to_sign_in(api: Api) -> None:
    response = TestClient(api.a.app).get("/ui/tasks/new", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/sign-in")
