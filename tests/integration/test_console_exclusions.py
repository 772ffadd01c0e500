"""The console and exclusions, on both databases: a task's page names its exclusion
calendars and shows its skipped fire times with the reason; the form sets
``exclude_calendars`` and a refusal names it and changes nothing."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.api import T0, Api, dump, new_key
from tests.support.console import form_of, signed_in_client

DAILY = {"cron": "0 9 * * *", "timezone": "UTC"}


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


@pytest.fixture
def browser(api: Api, engine: Engine) -> TestClient:
    return signed_in_client(api.a.app, new_key(engine, "acme"))


def test_the_task_page_shows_calendars_and_skipped_fire_times(
    api: Api, browser: TestClient
) -> None:
    api.a.post(
        "/v1/calendars", json={"name": "holidays", "timezone": "UTC", "dates": ["2030-01-07"]}
    )
    task = api.task("daily", schedule=DAILY, exclude_calendars=["holidays"])
    api.a.post(f"/v1/tasks/{task['id']}/skip", json={"scheduled_for": "2030-01-09T09:00:00Z"})
    text = browser.get(f"/ui/tasks/{task['id']}").text
    assert "<dt>Exclusion calendars</dt><dd><code>holidays</code>" in text
    rows = re.findall(r"<tr><td>([^<]*)(?: <span[^>]*>([^<]*)</span>)?</td>", text)
    assert rows[:4] == [
        ("2030-01-07 09:00 UTC", "skipped (calendar:holidays)"),
        ("2030-01-08 09:00 UTC", ""),
        ("2030-01-09 09:00 UTC", "skipped (skip)"),
        ("2030-01-10 09:00 UTC", ""),
    ]


def test_the_form_sets_exclude_calendars_and_refuses_an_unknown_one(
    api: Api, engine: Engine, browser: TestClient
) -> None:
    api.a.post(
        "/v1/calendars", json={"name": "holidays", "timezone": "UTC", "dates": ["2030-01-07"]}
    )
    task = api.task("daily", schedule=DAILY)
    edit = f"/ui/tasks/{task['id']}/edit"
    values = form_of(browser.get(edit).text).values
    assert values["exclude_calendars"] == ""
    before = dump(engine)
    refused = browser.post(
        edit, data=values | {"exclude_calendars": "nope"}, follow_redirects=False
    )
    assert refused.status_code == 422
    assert form_of(refused.text).attrs["exclude_calendars"]["aria-describedby"] == (
        "exclude_calendars-error"
    )
    assert dump(engine) == before
    saved = browser.post(
        edit, data=values | {"exclude_calendars": "holidays"}, follow_redirects=False
    )
    assert saved.status_code == 303
    changed = api.a.get(f"/v1/tasks/{task['id']}").json()
    assert changed["exclude_calendars"] == ["holidays"]
    assert changed["next_execution_time"] == "2030-01-08T09:00:00+00:00"
    assert form_of(browser.get(edit).text).values["exclude_calendars"] == "holidays"
