"""Credentials belong to their target: a PATCH that moves ``target.url`` to another
scheme, host or port cannot carry the stored credential headers there (the API, on
SQLite and PostgreSQL; real requests to two loopback targets)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings
from taskhub.engine import discovery, firing, writeback
from taskhub.service import task_service
from tests.support.api import T0, Api, dump, task_body, with_env
from tests.support.credentials import COOKIE, HEADERS, TOKEN, secrets_of
from tests.support.target import Target, running_target

SHOWN = {"X-Team": "billing", "Authorization": "Bearer ****WXYZ", "Cookie": "****okie"}


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


def test_a_move_that_would_keep_stored_credentials_is_refused(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=task_body(headers=HEADERS)).json()
    path = f"/v1/tasks/{task['id']}"
    shown = api.a.get(path).json()
    assert shown["target"]["headers"] == SHOWN
    before = dump(api.engine)
    for url in (
        "https://attacker.example/hook",  # another host
        "http://example.com/hook",  # another scheme
        "https://example.com:8443/hook",  # another port
        "https://example.com.evil.example/hook",
    ):
        for patch in (
            {"target": {"url": url}},  # headers not sent: the stored ones would stay
            {"target": {**shown["target"], "url": url}},  # sent back masked, as GET shows
            {"target": {"url": url, "headers": {"Cookie": "****okie"}}},
        ):
            refused = api.a.patch(path, json=patch)
            assert refused.status_code == 422, (url, refused.text)
            error = refused.json()["error"]
            assert error["field"] == "target.headers"
            assert "again in full" in error["message"]
            assert "sk_live" not in refused.text and "cookie" not in error["message"]
    # Only the credentials actually carried are named.
    half = {"url": "https://b.example/", "headers": {"Authorization": TOKEN, "Cookie": "****okie"}}
    message = api.a.patch(path, json={"target": half}).json()["error"]["message"]
    assert "Cookie" in message and "Authorization" not in message
    assert dump(api.engine) == before  # a refused PATCH changes nothing


def test_the_same_origin_keeps_them_and_a_move_needs_them_in_full_or_gone(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=task_body(headers=HEADERS)).json()
    path = f"/v1/tasks/{task['id']}"
    # Another path, query, spelling of the host or explicit default port: the same origin.
    for url in (
        "https://example.com/other?x=1",
        "https://EXAMPLE.com:443/hook",
        "https://example.com/hook",
    ):
        moved = api.a.patch(path, json={"target": {"url": url}})
        assert moved.status_code == 200, moved.text
        assert moved.json()["target"]["headers"] == SHOWN
        assert secrets_of(api.engine, task["id"]) == {"Authorization": TOKEN, "Cookie": COOKIE}

    # A new origin with the credentials left out: moved, and they are gone.
    gone = api.a.patch(
        path, json={"target": {"url": "https://b.example/", "headers": {"X-Team": "billing"}}}
    )
    assert gone.status_code == 200, gone.text
    assert gone.json()["target"]["headers"] == {"X-Team": "billing"}
    assert secrets_of(api.engine, task["id"]) == {}

    # Sent again in full (here, the very same value): moved with it.
    other = api.a.post("/v1/tasks", json=task_body("other", headers=HEADERS)).json()
    full = {"url": "https://c.example/", "headers": {"Authorization": TOKEN}}
    moved = api.a.patch(f"/v1/tasks/{other['id']}", json={"target": full})
    assert moved.status_code == 200, moved.text
    assert secrets_of(api.engine, other["id"]) == {"Authorization": TOKEN}

    # A task without credentials moves freely; so does one whose headers are plain.
    plain = api.a.post("/v1/tasks", json=task_body("plain", headers={"X-Team": "a"})).json()
    moved = api.a.patch(f"/v1/tasks/{plain['id']}", json={"target": {"url": "http://d.example"}})
    assert moved.status_code == 200, moved.text


def test_a_credential_named_by_setting_is_guarded_too(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_SECRET_HEADERS="X-Signature-Token"))
    body = task_body(headers={"X-Signature-Token": "abcdefghijklmnopqrstuvwxyz"})
    task = api.a.post("/v1/tasks", json=body).json()
    refused = api.a.patch(f"/v1/tasks/{task['id']}", json={"target": {"url": "https://x.example"}})
    assert (refused.status_code, refused.json()["error"]["field"]) == (422, "target.headers")
    assert "X-Signature-Token" in refused.json()["error"]["message"]


# --- what the hosts really receive -----------------------------------------------------

_moments = iter(range(1, 10_000))


def fire_now(engine: Engine, settings: Settings, task_id: str) -> TriggerOutcome:
    """Run the task now through a real tick and the real HTTP client; write it back."""
    now = T0 + timedelta(minutes=next(_moments))
    with engine.begin() as conn:
        task_service.run_task_now(conn, "acme", task_id, now)
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, published.extend, lambda: now)
    assert len(published) == 1
    [outcome] = firing.fire(published, settings)
    writeback.record_outcomes(engine, [outcome], settings, now, lambda: 0.5)
    return outcome


def received_authorizations(target: Target) -> list[str | None]:
    return [r.headers.get("Authorization") for r in target.snapshot()]


def test_the_new_host_never_receives_the_old_credential(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    api = Api(engine, T0, settings)
    with running_target() as old_host, running_target() as new_host:
        body: dict[str, Any] = task_body(url=old_host.url("/ok"), headers={"Authorization": TOKEN})
        body["schedule"] = {"cron": "0 0 1 1 *"}  # not due: only run-now fires
        task = api.a.post("/v1/tasks", json=body).json()
        path = f"/v1/tasks/{task['id']}"
        assert fire_now(api.engine, settings, task["id"]).http_status == 200
        assert received_authorizations(old_host) == [TOKEN]

        # The masked value sent back with the new URL (another port: another origin).
        shown = api.a.get(path).json()["target"]
        for patch in ({**shown, "url": new_host.url("/ok")}, {"url": new_host.url("/ok")}):
            assert api.a.patch(path, json={"target": patch}).status_code == 422
        assert fire_now(api.engine, settings, task["id"]).http_status == 200
        assert received_authorizations(old_host) == [TOKEN, TOKEN]  # still the old host's

        # Moved without it: the new host gets no Authorization at all.
        moved = api.a.patch(path, json={"target": {"url": new_host.url("/ok"), "headers": {}}})
        assert moved.status_code == 200, moved.text
        assert fire_now(api.engine, settings, task["id"]).http_status == 200
        # Given a credential of its own: the new host gets that one.
        new_token = "Bearer for-the-new-host-0123456789"
        given = api.a.patch(path, json={"target": {"headers": {"Authorization": new_token}}})
        assert given.status_code == 200, given.text
        assert fire_now(api.engine, settings, task["id"]).http_status == 200

        assert received_authorizations(new_host) == [None, new_token]
        assert all(TOKEN.split()[1] not in str(r) for r in new_host.snapshot())
        assert len(old_host.snapshot()) == 2
