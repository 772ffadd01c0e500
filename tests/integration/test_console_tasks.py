"""The console's tasks: the list and its filters, a task's page, and what an operator
does from it, checked against what the REST API then shows, on both databases."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.api import T0, Api, dump, new_key
from tests.support.console import csrf_of, signed_in_client
from tests.support.engine import record_attempt

HOSTILE = "<img src=x onerror=alert(1)>"
TAIPEI_WEEKDAYS = {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"}


@dataclass
class Console:
    """Tenant A's and tenant B's API clients (``api``) and browsers signed in to the console."""

    api: Api
    a: TestClient
    b: TestClient


@pytest.fixture
def console(engine: Engine) -> Console:
    api = Api(engine, T0)
    app = api.a.app
    return Console(
        api,
        signed_in_client(app, new_key(engine, "acme")),
        signed_in_client(app, new_key(engine, "other")),
    )


def page(browser: TestClient, path: str, status: int = 200) -> str:
    response = browser.get(path, follow_redirects=False)
    assert response.status_code == status, response.text
    return response.text


def names_listed(text: str) -> list[str]:
    """The task names the list's rows link to, in order."""
    return [
        html.unescape(n) for n in re.findall(r'<a href="/ui/tasks/[0-9a-f-]{36}">([^<]*)</a>', text)
    ]


def next_page_of(text: str) -> str | None:
    found = re.search(r'<a href="([^"]*)" rel="next">Next page</a>', text)
    return html.unescape(found.group(1)) if found else None


def post(browser: TestClient, path: str, **form: str) -> Any:
    """A console form posted with the anti-forgery token of the page it is on."""
    token = csrf_of(page(browser, "/ui/tasks"))
    return browser.post(path, data={"csrf_token": token, **form}, follow_redirects=False)


# --- the list ---------------------------------------------------------------------------


def test_list_shows_each_task_with_its_schedule_in_words(console: Console) -> None:
    console.api.task("nightly", schedule=TAIPEI_WEEKDAYS)
    console.api.task("hourly")
    text = page(console.a, "/ui/tasks")
    assert names_listed(text) == ["nightly", "hourly"]
    assert "At 09:00, Monday through Friday (Asia/Taipei)" in text
    assert "Every hour" in text
    # The next run of "nightly": Monday 2030-01-07 09:00 in Taipei, shown in UTC.
    assert (
        '<time datetime="2030-01-07T01:00:00+00:00" data-local>2030-01-07 01:00 UTC</time>' in text
    )
    assert '<span class="status status-active">active</span>' in text
    assert 'href="/ui/tasks/new">New task</a>' in text


def test_list_filters_as_the_api_does(console: Console) -> None:
    api = console.api
    api.task("alpha-1", tags={"team": "pay", "env": "prod"})
    api.task("alpha-2", tags={"team": "pay"})
    api.task("alp_ha")  # an underscore is a character, not a wildcard
    paused = api.task("beta")
    assert api.a.post(f"/v1/tasks/{paused['id']}/pause").status_code == 200
    dead_task, _ = api.dead_letter()

    def listed(query: str) -> list[str]:
        return names_listed(page(console.a, f"/ui/tasks?{query}"))

    assert listed("search=alpha") == ["alpha-1", "alpha-2"]
    assert listed("search=alp_") == ["alp_ha"]
    assert listed("status=paused") == ["beta"]
    assert listed("tag=team%3Apay") == ["alpha-1", "alpha-2"]
    assert listed("tag=team%3Apay&tag=env%3Aprod") == ["alpha-1"]
    assert listed("last_status=dead") == [dead_task["name"]]
    assert listed("search=alpha&status=paused") == []
    assert listed("search=zzz") == []


def test_a_bad_filter_is_named_beside_its_field(console: Console) -> None:
    text = page(console.a, "/ui/tasks?tag=no-colon", 422)
    assert 'id="tag-error"' in text
    assert 'aria-invalid="true" aria-describedby="tag-error"' in text
    text = page(console.a, "/ui/tasks?cursor=not-ours", 422)
    assert '<p class="error" role="alert">cursor: ' in text


def test_list_pages_by_cursor_keeping_its_filters(console: Console) -> None:
    for n in range(53):
        if n % 40 == 0:  # the tenant's requests_per_second
            console.api.clock.now += timedelta(seconds=1)
        console.api.task(f"job-{n:02d}")
    console.api.task("other")
    first = page(console.a, "/ui/tasks?search=job-")
    names = names_listed(first)
    assert len(names) == 50
    following = next_page_of(first)
    assert following is not None and "search=job-" in following
    second = page(console.a, following)
    assert names + names_listed(second) == [f"job-{n:02d}" for n in range(53)]
    assert next_page_of(second) is None


def test_a_name_with_html_is_shown_as_text(console: Console) -> None:
    task = console.api.task(HOSTILE)
    for text in (page(console.a, "/ui/tasks"), page(console.a, f"/ui/tasks/{task['id']}")):
        assert HOSTILE not in text
        assert html.escape(HOSTILE, quote=False) in text


# --- a task's page ----------------------------------------------------------------------


def test_task_page_masks_credentials_and_shows_ten_fire_times(console: Console) -> None:
    secret = "Bearer s3cret-token-value-123"
    task = console.api.task(
        "billing",
        schedule=TAIPEI_WEEKDAYS,
        target={"url": "https://example.com/bill", "headers": {"Authorization": secret}},
    )
    text = page(console.a, f"/ui/tasks/{task['id']}")
    assert "s3cret-token-value" not in text
    masked = console.api.a.get(f"/v1/tasks/{task['id']}").json()["target"]["headers"]
    assert html.escape(f"Authorization: {masked['Authorization']}", quote=False) in text
    fires = re.findall(r'<tr><td>([^<]*)</td><td><time datetime="([^"]*)" data-local>', text)
    # Monday 2030-01-07 to Friday, then the next week's Monday to Friday, 09:00 in Taipei.
    days = [7, 8, 9, 10, 11, 14, 15, 16, 17, 18]
    assert fires == [
        (f"2030-01-{d:02d} 09:00 Asia/Taipei", f"2030-01-{d:02d}T01:00:00+00:00") for d in days
    ]


def test_task_page_lists_executions_newest_first_escaped_and_paged(
    console: Console, engine: Engine
) -> None:
    api = console.api
    task = api.task("flaky", retry={"max_attempts": 1})
    ran = [api.a.post(f"/v1/tasks/{task['id']}/run").json()["id"] for _ in range(21)]
    record_attempt(engine, ran[-1], 503, "<script>alert(1)</script>", duration_ms=42)
    record_attempt(engine, ran[-2], 200, "ok", duration_ms=42)
    text = page(console.a, f"/ui/tasks/{task['id']}")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    rows = re.findall(r'<span class="status status-(\w+)">\w+</span></td>\s*<td>(\d+)</td>', text)
    assert rows[:3] == [("dead", "1"), ("succeeded", "1"), ("queued", "0")]
    assert len(rows) == 20
    assert "<td>503</td>" in text and "HTTP 503" in text and "<td>42 ms</td>" in text
    older = next_page_of(text)
    assert older is not None
    rest = re.findall(
        r'<span class="status status-(\w+)">\w+</span></td>\s*<td>(\d+)</td>',
        page(console.a, older),
    )
    assert rest == [("queued", "0")]


# --- what an operator does --------------------------------------------------------------


def test_pause_with_reason_resume_run_now_and_delete(console: Console) -> None:
    api = console.api
    task = api.task("report")
    path = f"/ui/tasks/{task['id']}"

    answer = post(console.a, f"{path}/pause", reason="vendor down <b>")
    assert answer.status_code == 303 and answer.headers["location"] == f"{path}?notice=paused"
    shown = api.a.get(f"/v1/tasks/{task['id']}").json()
    assert (shown["status"], shown["paused_reason"]) == ("paused", "vendor down <b>")
    text = page(console.a, f"{path}?notice=paused")
    assert "Task paused." in text and "vendor down &lt;b&gt;" in text
    assert ">Resume</button>" in text and ">Pause</button>" not in text

    answer = post(console.a, f"{path}/resume")
    assert answer.headers["location"] == f"{path}?notice=resumed"
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["status"] == "active"

    answer = post(console.a, f"{path}/run")
    assert answer.headers["location"] == f"{path}?notice=run"
    runs = api.a.get(f"/v1/tasks/{task['id']}/executions").json()["items"]
    assert [run["status"] for run in runs] == ["queued"]
    assert api.ticks == ["tick"]

    confirm = page(console.a, f"{path}/delete")
    assert f'action="{path}/delete"' in confirm and ">Delete</button>" in confirm
    assert api.a.get(f"/v1/tasks/{task['id']}").status_code == 200  # asking deletes nothing
    answer = post(console.a, f"{path}/delete")
    assert answer.headers["location"] == "/ui/tasks?notice=deleted"
    assert api.a.get(f"/v1/tasks/{task['id']}").status_code == 404
    assert "Task deleted." in page(console.a, "/ui/tasks?notice=deleted")


def test_a_pause_reason_over_the_limit_changes_nothing(console: Console, engine: Engine) -> None:
    task = console.api.task("report")
    before = dump(engine)
    answer = post(console.a, f"/ui/tasks/{task['id']}/pause", reason="x" * 5000)
    assert answer.status_code == 422
    assert "reason" in answer.text
    assert dump(engine) == before


@pytest.mark.parametrize("action", ["pause", "resume", "run", "delete"])
def test_a_change_without_the_csrf_token_is_refused(
    console: Console, engine: Engine, action: str
) -> None:
    task = console.api.task("report")
    path = f"/ui/tasks/{task['id']}/{action}"
    before = dump(engine)
    for form in ({}, {"csrf_token": "forged"}):
        answer = console.a.post(path, data=form, follow_redirects=False)
        assert answer.status_code == 403
    assert dump(engine) == before
    assert console.api.ticks == []


def test_another_tenants_task_is_not_found(console: Console, engine: Engine) -> None:
    task = console.api.task("acme-only")
    path = f"/ui/tasks/{task['id']}"
    assert "acme-only" not in page(console.b, "/ui/tasks")
    assert "acme-only" not in page(console.b, path, 404)
    assert "acme-only" not in page(console.b, f"{path}/delete", 404)
    before = dump(engine)
    for action in ("pause", "resume", "run", "delete"):
        assert post(console.b, f"{path}/{action}").status_code == 404
    assert dump(engine) == before
    assert page(console.a, "/ui/tasks/00000000-0000-0000-0000-000000000000", 404)
    # A path no route takes is a page too, not the API's JSON.
    for path in ("/ui/tasks/not-an-id", "/ui/nowhere"):
        answer = console.a.get(path, follow_redirects=False)
        assert answer.status_code == 404 and "text/html" in answer.headers["content-type"]
        assert "There is no such page." in answer.text


def test_pages_ask_a_visitor_to_sign_in(console: Console) -> None:
    task = console.api.task("report")
    for path in ("/ui/tasks", f"/ui/tasks/{task['id']}"):
        answer = TestClient(console.a.app).get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/sign-in?next=")


def test_backfill_from_the_task_page_fires_once_and_refuses_naming_the_field(
    console: Console, engine: Engine
) -> None:
    api = console.api
    task = api.task("hourly", schedule={"cron": "0 * * * *"})
    path = f"/ui/tasks/{task['id']}"
    text = page(console.a, path)
    assert f'action="{path}/backfill"' in text and ">Backfill</button>" in text
    assert '<label for="backfill-start">Start</label>' in text
    assert '<label for="backfill-end">End</label>' in text
    api.clock.now = T0 + timedelta(hours=5)
    start, end = T0.isoformat(), (T0 + timedelta(hours=3)).isoformat()

    before = dump(engine)
    refused = post(console.a, f"{path}/backfill", start=end, end=start)
    assert refused.status_code == 422
    assert 'id="backfill-end" name="end"' in refused.text and "End must be after start" in (
        refused.text
    )
    assert f'value="{end}"' in refused.text  # what was sent is shown again
    assert dump(engine) == before

    answer = post(console.a, f"{path}/backfill", start=start, end=end)
    assert answer.headers["location"] == f"{path}?notice=backfilled"
    assert "Backfill queued" in page(console.a, f"{path}?notice=backfilled")
    ran = api.a.get(f"/v1/tasks/{task['id']}/executions").json()["items"]
    assert len(ran) == 4 and {run["status"] for run in ran} == {"queued"}
    assert api.ticks == ["tick"]
    again = post(console.a, f"{path}/backfill", start=start, end=end)
    assert again.headers["location"] == f"{path}?notice=backfilled-none"
    assert len(api.a.get(f"/v1/tasks/{task['id']}/executions").json()["items"]) == 4
    # Another tenant's task is not theirs to backfill.
    assert post(console.b, f"{path}/backfill", start=start, end=end).status_code == 404
