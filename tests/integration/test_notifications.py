"""Notifications on SQLite and on PostgreSQL: the channels' API (create, list, show,
change, delete, test; refusals that name the field and store nothing; tenants kept
apart), the events the write-back and the claim record, and the notifier's grouping,
rate limit, lease and retries, delivering to a real SMTP server (aiosmtpd) and a real
webhook target on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from taskhub.core import notifications as rules
from taskhub.core import signing
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings
from taskhub.db import engines, metric_queries, notification_queries, schema, task_queries
from taskhub.db.models import notification_channels, notification_events, notifications
from taskhub.engine import discovery, notifier, writeback
from taskhub.service import notifications as service
from taskhub.service import signing_secrets, task_service
from tests.support.api import T0, Api, with_env
from tests.support.smtp import Inbox, running_smtp
from tests.support.target import Target

GATHERED = timedelta(seconds=rules.GATHER_S + 1)
WINDOW = timedelta(seconds=rules.WINDOW_S)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with running_smtp() as inbox:
        yield inbox


@pytest.fixture
def settings(inbox: Inbox) -> Settings:
    return with_env(
        TASKHUB_ALLOW_PRIVATE_TARGETS="1",
        TASKHUB_SMTP_URL=inbox.url,
        TASKHUB_SMTP_FROM="taskhub@ops.example.com",
    )


@pytest.fixture
def api(engine: Engine, settings: Settings) -> Api:
    return Api(engine, T0, settings)


def stored(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            table.name: [
                dict(r) for r in conn.execute(sa.select(table).order_by(*table.c)).mappings()
            ]
            for table in (notification_channels, notification_events, notifications)
        }


def webhook(api: Api, target: Target, name: str = "ops", **fields: Any) -> dict[str, Any]:
    response = api.a.post(
        "/v1/notification-channels",
        json={"name": name, "kind": "webhook", "url": target.url("/ok"), **fields},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the API --------------------------------------------------------------------------


def test_channels_are_created_listed_shown_changed_and_deleted(api: Api, target: Target) -> None:
    made = webhook(api, target, events=["late", "dead_letter"])
    assert (made["kind"], made["url"], made["to"], made["events"]) == (
        "webhook",
        target.url("/ok"),
        [],
        ["dead_letter", "late"],
    )
    assert made["last_message_at"] is None
    assert api.a.get(f"/v1/notification-channels/{made['id']}").json() == made
    assert api.a.get("/v1/notification-channels/ops").json() == made
    assert api.a.get("/v1/notification-channels").json() == {"items": [made]}

    changed = api.a.patch(f"/v1/notification-channels/{made['id']}", json={"events": ["recovered"]})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["events"], changed.json()["url"]) == (["recovered"], target.url("/ok"))
    to_email = api.a.patch(
        "/v1/notification-channels/ops", json={"kind": "email", "to": ["ops@example.com"]}
    ).json()
    assert (to_email["kind"], to_email["url"], to_email["to"]) == (
        "email",
        None,
        ["ops@example.com"],
    )
    renamed = api.a.patch("/v1/notification-channels/ops", json={"name": "ops-mail"}).json()
    assert (renamed["id"], renamed["name"], renamed["to"]) == (
        made["id"],
        "ops-mail",
        ["ops@example.com"],
    )

    assert api.a.delete(f"/v1/notification-channels/{made['id']}").status_code == 204
    Api.error(api.a.get(f"/v1/notification-channels/{made['id']}"), 404)
    assert api.a.get("/v1/notification-channels").json() == {"items": []}


def test_a_slack_url_is_stored_sealed_and_shown_masked(api: Api, engine: Engine) -> None:
    secret_path = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
    made = api.a.post(
        "/v1/notification-channels",
        json={"name": "chat", "kind": "slack", "url": f"https://hooks.slack.com{secret_path}"},
    ).json()
    assert made["url"] == "https://hooks.slack.com/\u2026"
    assert secret_path not in json.dumps(stored(engine), default=str)
    assert secret_path not in api.a.get("/v1/notification-channels").text
    # A change of its events keeps the URL it had.
    api.a.patch("/v1/notification-channels/chat", json={"events": ["late"]})
    with engine.connect() as conn:
        row = notification_queries.channel_named(conn, "acme", "chat")
        assert row is not None
        assert notifier.channel_url(row, api_settings(api)).endswith(secret_path)


def api_settings(api: Api) -> Settings:
    settings: Settings = api.a.app.state.taskhub.settings  # type: ignore[attr-defined]
    return settings


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "webhook", "url": "https://e.example/"}, "name"),
        ({"name": "x", "kind": "sms", "url": "https://e.example/"}, "kind"),
        ({"name": "x", "kind": "webhook"}, "url"),
        ({"name": "x", "kind": "webhook", "url": "http://169.254.169.254/"}, "url"),
        ({"name": "x", "kind": "email", "to": ["nobody"]}, "to[0]"),
        ({"name": "x", "kind": "email"}, "to"),
        ({"name": "x", "kind": "webhook", "url": "https://e.example/", "events": []}, "events"),
        (
            {"name": "x", "kind": "webhook", "url": "https://e.example/", "events": ["?"]},
            "events[0]",
        ),
        ({"name": "x", "kind": "webhook", "url": "https://e.example/", "extra": 1}, "extra"),
    ],
)
def test_a_bad_channel_is_a_422_naming_the_field_and_stores_nothing(
    engine: Engine, body: dict[str, Any], field: str
) -> None:
    api = Api(engine, T0, with_env(TASKHUB_SMTP_URL="smtp://127.0.0.1:1"))
    before = stored(engine)
    error = Api.error(api.a.post("/v1/notification-channels", json=body), 422)
    assert error["field"] == field
    assert stored(engine) == before


def test_an_email_channel_without_a_mail_server_is_refused(engine: Engine) -> None:
    api = Api(engine, T0, with_env())
    response = api.a.post(
        "/v1/notification-channels", json={"name": "m", "kind": "email", "to": ["a@example.com"]}
    )
    error = Api.error(response, 422)
    assert error["field"] == "kind" and "TASKHUB_SMTP_URL" in error["message"]


def test_a_bad_change_is_refused_and_changes_nothing(api: Api, target: Target) -> None:
    made = webhook(api, target)
    webhook(api, target, name="other")
    before = api.a.get("/v1/notification-channels").json()
    cases = [
        ({"url": "http://169.254.169.254/"}, 422, "url"),
        ({"kind": "email"}, 422, "to"),
        ({"to": ["a@example.com"]}, 422, "to"),
        ({"name": "other"}, 409, "name"),
        ({"colour": "red"}, 422, "colour"),
    ]
    for body, status, field in cases:
        error = Api.error(api.a.patch(f"/v1/notification-channels/{made['id']}", json=body), status)
        assert error["field"] == field, body
    assert api.a.get("/v1/notification-channels").json() == before


def test_names_are_unique_per_tenant_and_tenants_are_kept_apart(api: Api, target: Target) -> None:
    made = webhook(api, target)
    error = Api.error(
        api.a.post(
            "/v1/notification-channels",
            json={"name": "ops", "kind": "webhook", "url": target.url("/ok")},
        ),
        409,
    )
    assert error["field"] == "name"
    other = api.b.post(
        "/v1/notification-channels",
        json={"name": "ops", "kind": "webhook", "url": target.url("/ok")},
    )
    assert other.status_code == 201
    for call in (api.b.get, api.b.delete, api.b.post):
        suffix = "/test" if call == api.b.post else ""
        Api.error(call(f"/v1/notification-channels/{made['id']}{suffix}"), 404)
    Api.error(api.b.patch(f"/v1/notification-channels/{made['id']}", json={}), 404)
    assert [c["id"] for c in api.a.get("/v1/notification-channels").json()["items"]] == [made["id"]]
    Api.error(api.anonymous.get("/v1/notification-channels"), 401)


def test_a_test_message_is_a_signed_post_recorded_as_sent(
    api: Api, engine: Engine, target: Target, settings: Settings
) -> None:
    with engine.begin() as conn:
        secret, _ = signing_secrets.create_secret(conn, "acme", T0, settings)
    made = webhook(api, target)
    response = api.a.post(f"/v1/notification-channels/{made['id']}/test")
    assert response.status_code == 200, response.text
    sent = response.json()
    assert (sent["status"], sent["test"], sent["attempts"], sent["error"]) == (
        "sent",
        True,
        1,
        None,
    )
    [received] = target.snapshot()
    assert received.method == "POST"
    assert signing.verify(received.headers[signing.HEADER], received.body.encode(), [secret])
    assert json.loads(received.body)["type"] == "taskhub.notification.test"
    listed = api.a.get("/v1/notifications").json()
    assert [n["id"] for n in listed["items"]] == [sent["id"]]
    assert api.b.get("/v1/notifications").json()["items"] == []


def test_a_test_message_that_fails_says_why(api: Api, target: Target) -> None:
    made = webhook(api, target)
    api.a.patch(f"/v1/notification-channels/{made['id']}", json={"url": target.url("/missing")})
    sent = api.a.post("/v1/notification-channels/ops/test").json()
    assert (sent["status"], sent["error"]) == ("failed", "HTTP 404")
    assert api.a.get("/v1/notifications?status=failed").json()["items"][0]["id"] == sent["id"]
    assert api.a.get("/v1/notifications?status=sent").json()["items"] == []
    assert Api.error(api.a.get("/v1/notifications?status=lost"), 422)["field"] == "status"


def test_a_test_email_reaches_the_mail_server(api: Api, inbox: Inbox) -> None:
    api.a.post(
        "/v1/notification-channels",
        json={"name": "mail", "kind": "email", "to": ["ops@example.com", "dev@example.com"]},
    )
    sent = api.a.post("/v1/notification-channels/mail/test").json()
    assert sent["status"] == "sent", sent
    [mail] = inbox.snapshot()
    assert mail.sender == "taskhub@ops.example.com"
    assert mail.recipients == ["ops@example.com", "dev@example.com"]
    assert "mail" in mail.subject


def test_max_lag_seconds_is_a_task_field(api: Api) -> None:
    task = api.task("lagging", max_lag_seconds=90)
    assert task["max_lag_seconds"] == 90
    changed = api.a.patch(f"/v1/tasks/{task['id']}", json={"max_lag_seconds": None}).json()
    assert changed["max_lag_seconds"] is None
    error = Api.error(api.a.patch(f"/v1/tasks/{task['id']}", json={"max_lag_seconds": 0}), 422)
    assert error["field"] == "max_lag_seconds"


# --- events and the notifier ----------------------------------------------------------


def add_tasks(
    engine: Engine,
    settings: Settings,
    count: int,
    tenant: str = "acme",
    prefix: str = "nightly",
    **extra: Any,
) -> list[uuid.UUID]:
    """``count`` one-time tasks due at T0 + 1 s, one attempt each."""
    ids = []
    with engine.begin() as conn:
        for i in range(count):
            data = {
                "name": f"{prefix}-{i:02d}",
                "schedule": {"at": (T0 + timedelta(seconds=1)).isoformat()},
                "target": {"url": "http://target.test/hook"},
                "retry": {"max_attempts": 1},
                **extra,
            }
            definition = parse_definition(data, T0)
            ids.append(task_service.create_task(conn, definition, T0, settings, tenant))
    return ids


def fire(
    engine: Engine,
    settings: Settings,
    status: int,
    at: datetime = T0 + timedelta(seconds=1),
    started_after: timedelta = timedelta(0),
) -> list[TriggerRequest]:
    """Claim what is due at ``at`` and write back an outcome with ``status`` for each."""
    requests: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, requests.extend, lambda: at)
    outcomes = [
        TriggerOutcome(
            execution_id=r.execution_id,
            attempt=r.attempt,
            started_at=r.scheduled_for + started_after,
            duration_ms=5,
            http_status=status,
            error=None if status < 300 else f"HTTP {status}",
        )
        for r in requests
    ]
    writeback.record_outcomes(engine, outcomes, settings, at, lambda: 0.5)
    return requests


def events_of(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = sa.select(notification_events).order_by(notification_events.c.id)
        return [dict(r) for r in conn.execute(query).mappings()]


def channel(engine: Engine, settings: Settings, data: dict[str, Any]) -> dict[str, Any]:
    with engine.begin() as conn:
        return service.create_channel(conn, "acme", data, T0, settings)


def test_twenty_failing_tasks_make_one_email_naming_each(
    engine: Engine, settings: Settings, inbox: Inbox
) -> None:
    channel(engine, settings, {"name": "mail", "kind": "email", "to": ["ops@example.com"]})
    ids = add_tasks(engine, settings, 20)
    fire(engine, settings, 503)
    assert len(events_of(engine)) == 20
    now = T0 + timedelta(seconds=1)
    # Not before the first event has waited for the others.
    assert notifier.run_pass(engine, settings, lambda: now + timedelta(seconds=5)) == (0, 0)
    assert notifier.run_pass(engine, settings, lambda: now + GATHERED) == (1, 1)
    assert notifier.run_pass(engine, settings, lambda: now + 2 * WINDOW) == (0, 0)
    [mail] = inbox.snapshot()
    assert mail.recipients == ["ops@example.com"]
    assert mail.subject == "[taskhub] mail: 20 dead letters (20 tasks)"
    for i, task_id in enumerate(ids):
        assert f"nightly-{i:02d} ({task_id}): dead_letter" in mail.text
    with engine.connect() as conn:
        [sent] = service.list_notifications(conn, "acme")["items"]
    assert (sent["status"], sent["attempts"], sent["counts"], sent["task_count"]) == (
        "sent",
        1,
        {"dead_letter": 20},
        20,
    )
    assert sorted(sent["task_ids"]) == sorted(str(i) for i in ids)
    assert events_of(engine) == []  # the message took them out of the outbox


def test_a_tenant_without_a_channel_records_no_event(engine: Engine, settings: Settings) -> None:
    channel(engine, settings, {"name": "mail", "kind": "email", "to": ["ops@example.com"]})
    add_tasks(engine, settings, 3, tenant="other")
    fire(engine, settings, 503)
    assert events_of(engine) == []


def test_a_channel_hears_only_its_events(
    engine: Engine, settings: Settings, target: Target
) -> None:
    hook = channel(
        engine,
        settings,
        {"name": "ops", "kind": "webhook", "url": target.url("/ok"), "events": ["recovered"]},
    )
    add_tasks(engine, settings, 2)
    fire(engine, settings, 503)
    assert events_of(engine) == []
    with engine.begin() as conn:
        service.update_channel(conn, "acme", hook["id"], {"events": ["dead_letter"]}, T0, settings)
    add_tasks_named = add_tasks(engine, settings, 1, prefix="another")
    fire(engine, settings, 503)
    assert [(e["kind"], str(e["task_id"])) for e in events_of(engine)] == [
        ("dead_letter", str(add_tasks_named[0]))
    ]


def test_a_webhook_channel_receives_one_signed_post_per_window(
    engine: Engine, settings: Settings, target: Target
) -> None:
    with engine.begin() as conn:
        secret, _ = signing_secrets.create_secret(conn, "acme", T0, settings)
    channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/ok")})
    ids = add_tasks(engine, settings, 3)
    fire(engine, settings, 503)
    first = T0 + timedelta(seconds=1) + GATHERED
    assert notifier.run_pass(engine, settings, lambda: first) == (1, 1)
    [received] = target.snapshot()
    assert signing.verify(received.headers[signing.HEADER], received.body.encode(), [secret])
    assert not signing.verify(
        received.headers[signing.HEADER], received.body.encode() + b" ", [secret]
    )
    document = json.loads(received.body)
    assert document["type"] == "taskhub.notification"
    named = {t["id"]: t["name"] for t in document["tasks"]}
    assert named == {str(task_id): f"nightly-{i:02d}" for i, task_id in enumerate(ids)}
    assert received.headers["Idempotency-Key"] == f"taskhub-notification-{document['id']}"

    # More failures inside the window wait for it to pass: one message per window.
    later = add_tasks(engine, settings, 2, prefix="later")
    fire(engine, settings, 503, at=first)
    assert notifier.run_pass(engine, settings, lambda: first + GATHERED) == (0, 0)
    assert notifier.run_pass(engine, settings, lambda: first + WINDOW) == (1, 1)
    second = json.loads(target.snapshot()[1].body)
    assert sorted(t["id"] for t in second["tasks"]) == sorted(str(i) for i in later)
    assert len(target.snapshot()) == 2


def test_recovered_auto_paused_and_late_events_are_recorded(
    engine: Engine, settings: Settings, target: Target
) -> None:
    channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/ok")})
    with engine.begin() as conn:
        data = {
            "name": "every-minute",
            "schedule": {"interval_seconds": 60},
            "target": {"url": "http://target.test/hook"},
            "retry": {"max_attempts": 1},
            "auto_pause_after_failures": 3,
            "max_lag_seconds": 30,
        }
        task_id = task_service.create_task(conn, parse_definition(data, T0), T0, settings, "acme")
    minute = timedelta(minutes=1)
    late = timedelta(seconds=45)
    assert len(fire(engine, settings, 503, at=T0)) == 1  # a dead letter
    assert len(fire(engine, settings, 200, at=T0 + minute)) == 1  # recovered
    assert len(fire(engine, settings, 503, at=T0 + 2 * minute, started_after=late)) == 1
    assert len(fire(engine, settings, 503, at=T0 + 3 * minute)) == 1
    assert len(fire(engine, settings, 503, at=T0 + 4 * minute)) == 1  # 3 in a row: paused
    kinds = [(e["kind"], str(e["task_id"])) for e in events_of(engine)]
    assert kinds == [
        ("dead_letter", str(task_id)),
        ("recovered", str(task_id)),
        ("dead_letter", str(task_id)),
        ("late", str(task_id)),
        ("dead_letter", str(task_id)),
        ("dead_letter", str(task_id)),
        ("auto_paused", str(task_id)),
    ]
    assert "sent 45.0 s after its due time (max_lag_seconds: 30)" in events_of(engine)[3]["detail"]
    assert "3 failed executions in a row" in events_of(engine)[6]["detail"]


def test_occurrences_missed_by_the_misfire_policy_are_late(
    engine: Engine, settings: Settings, target: Target
) -> None:
    channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/ok")})
    with engine.begin() as conn:
        data = {
            "name": "hourly",
            "schedule": {"interval_seconds": 3600},
            "target": {"url": "http://target.test/hook"},
            "misfire_policy": "skip",
        }
        task_id = task_service.create_task(conn, parse_definition(data, T0), T0, settings, "acme")
    requests: list[TriggerRequest] = []
    down_until = T0 + timedelta(hours=5)  # the grace is an hour: four were missed
    discovery.run_tick(engine, settings, requests.extend, lambda: down_until)
    [event] = events_of(engine)
    assert (event["kind"], str(event["task_id"])) == ("late", str(task_id))
    assert "misfire_policy: skip" in event["detail"]


def test_two_notifiers_never_both_send_and_a_crash_repeats_one_message(
    engine: Engine, settings: Settings, target: Target
) -> None:
    channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/ok")})
    add_tasks(engine, settings, 2)
    fire(engine, settings, 503)
    now = T0 + timedelta(seconds=1) + GATHERED
    assert notifier.group_pending(engine, now) == 1
    assert notifier.group_pending(engine, now) == 0  # the window is taken
    with engine.connect() as conn:
        [row] = notification_queries.due_notifications(conn, now, 10)
    # Two notifiers read the same row; one sends it.
    assert notifier.send_one(engine, settings, lambda: now, row) is True
    assert notifier.send_one(engine, settings, lambda: now, row) is False
    assert len(target.snapshot()) == 1

    # A notifier leases the next message and dies before it is recorded.
    add_tasks(engine, settings, 1, prefix="next")
    fire(engine, settings, 503, at=now)
    later = now + WINDOW
    assert notifier.group_pending(engine, later) == 1
    with engine.begin() as conn:
        [row] = notification_queries.due_notifications(conn, later, 10)
        lease = later + timedelta(seconds=rules.LEASE_S)
        assert notification_queries.lease_notification(
            conn, row["id"], row["next_attempt_at"], lease
        )
    assert notifier.send_due(engine, settings, lambda: lease - timedelta(seconds=1)) == 0
    assert notifier.send_due(engine, settings, lambda: lease) == 1
    assert notifier.send_due(engine, settings, lambda: lease + WINDOW) == 0
    assert len(target.snapshot()) == 2
    with engine.connect() as conn:
        newest = service.list_notifications(conn, "acme")["items"][0]
    assert (newest["status"], newest["attempts"]) == ("sent", 2)


def test_a_failed_try_is_retried_and_then_given_up(
    engine: Engine, settings: Settings, target: Target
) -> None:
    channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/flaky/1")})
    add_tasks(engine, settings, 1)
    fire(engine, settings, 503)
    now = T0 + timedelta(seconds=1) + GATHERED
    retry = timedelta(seconds=rules.RETRY_AFTER_S)
    assert notifier.run_pass(engine, settings, lambda: now) == (1, 0)
    with engine.connect() as conn:
        [pending] = service.list_notifications(conn, "acme")["items"]
    assert (pending["status"], pending["attempts"], pending["error"]) == ("pending", 1, "HTTP 503")
    assert notifier.run_pass(engine, settings, lambda: now + retry) == (0, 1)
    with engine.connect() as conn:
        [sent] = service.list_notifications(conn, "acme")["items"]
    assert (sent["status"], sent["attempts"], sent["error"]) == ("sent", 2, None)

    with engine.begin() as conn:
        service.update_channel(conn, "acme", "ops", {"url": target.url("/missing")}, now, settings)
    add_tasks(engine, settings, 1, prefix="again")
    fire(engine, settings, 503, at=now + retry)
    start = now + retry + WINDOW
    for n in range(rules.MAX_SEND_ATTEMPTS + 1):
        notifier.run_pass(engine, settings, lambda n=n: start + n * retry)  # type: ignore[misc]
    with engine.connect() as conn:
        newest = service.list_notifications(conn, "acme")["items"][0]
    assert (newest["status"], newest["attempts"], newest["error"]) == (
        "failed",
        rules.MAX_SEND_ATTEMPTS,
        "HTTP 404",
    )
    assert sum(1 for r in target.snapshot() if r.path == "/missing") == rules.MAX_SEND_ATTEMPTS
    with engine.connect() as conn:
        counted = metric_queries.read_counters(conn)
    tries = {
        labels: value
        for (name, labels), value in counted.items()
        if name == "taskhub_notification_tries_total"
    }
    assert tries == {
        '{"result":"sent"}': 1,
        '{"result":"retrying"}': 1 + rules.MAX_SEND_ATTEMPTS - 1,
        '{"result":"failed"}': 1,
    }


def test_a_deleted_channel_drops_its_waiting_events_and_keeps_its_history(
    engine: Engine, settings: Settings, target: Target
) -> None:
    hook = channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/ok")})
    add_tasks(engine, settings, 1)
    fire(engine, settings, 503)
    service.send_test(engine, "acme", hook["id"], T0, settings)
    with engine.begin() as conn:
        service.delete_channel(conn, "acme", hook["id"])
    assert events_of(engine) == []
    with engine.connect() as conn:
        assert [n["test"] for n in service.list_notifications(conn, "acme")["items"]] == [True]
        for ref in ("ops", hook["id"]):  # by the name it had, or its id
            assert len(service.list_notifications(conn, "acme", channel=ref)["items"]) == 1
        assert service.list_notifications(conn, "acme", channel="nope")["items"] == []


def test_the_list_pages_newest_first(engine: Engine, settings: Settings, target: Target) -> None:
    hook = channel(engine, settings, {"name": "ops", "kind": "webhook", "url": target.url("/ok")})
    sent = [service.send_test(engine, "acme", hook["id"], T0, settings)["id"] for _ in range(5)]
    seen: list[int] = []
    cursor = None
    with engine.connect() as conn:
        while True:
            page = service.list_notifications(conn, "acme", limit=2, cursor=cursor, channel="ops")
            seen.extend(n["id"] for n in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(sent, reverse=True)
        assert service.get_notification(conn, "acme", sent[0])["payload"]["channel"] == "ops"


def test_migration_0018_downgrades_and_upgrades_again(database_url: str) -> None:
    schema.upgrade(database_url)
    engine = engines.create_engine(database_url)
    try:
        with engine.begin() as conn:
            data = {
                "name": "t",
                "schedule": {"interval_seconds": 60},
                "target": {"url": "https://e.example/"},
            }
            task_id = task_service.create_task(conn, parse_definition(data, T0), T0, with_env())
        command.downgrade(schema.alembic_config(database_url), "0015")
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            columns = {c["name"] for c in sa.inspect(conn).get_columns("scheduled_tasks")}
        assert not {"notification_channels", "notification_events", "notifications"} & tables
        assert "max_lag_seconds" not in columns
        schema.upgrade(database_url)
        schema.check(database_url)
        with engine.connect() as conn:
            row = task_queries.get_task(conn, task_id)
        assert row is not None and row["max_lag_seconds"] is None
    finally:
        engine.dispose()
