"""Celery targets from the API to the claimed request, on SQLite and on PostgreSQL: a task
created, read, listed and patched with a Celery target (switching kinds both ways),
every refusal naming its field and changing nothing, a claimed occurrence whose
trigger request carries the Celery task (no worker needed), and the migration that
made room for it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from taskhub.core.celery_calls import CeleryCall
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerRequest
from taskhub.db import engines, schema
from taskhub.db.models import scheduled_tasks
from taskhub.service import signing_secrets, task_service
from tests.support.api import T0, Api, dump, task_body, with_env
from tests.support.storage import NOW, SETTINGS, claim_all

#: Two brokers, one result backend; the passwords must never reach an answer.
BROKERS = {
    "TASKHUB_CELERY_BROKERS": "default=redis://:hunter2@127.0.0.1:6379/9, "
    "billing=amqp://guest:hunter2@mq.internal:5672//",
    "TASKHUB_CELERY_RESULT_BACKENDS": "default=redis://:hunter2@127.0.0.1:6379/9",
}
CALL: dict[str, Any] = {
    "task": "billing.tasks.nightly_report",
    "args": [1],
    "kwargs": {"region": "eu"},
    "queue": "reports",
    "broker": "billing",
    "track": False,
}
#: ``CALL`` as a task shows it: every field.
SHOWN = CALL | {"expires_seconds": None}


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0, with_env(**BROKERS))


def celery_task(name: str = "report", **call: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": {"interval_seconds": 3600},
        "target": {"celery": CALL | call},
    }


def stored(engine: Engine, task_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(scheduled_tasks).where(scheduled_tasks.c.id == uuid.UUID(task_id))
        ).mappings()
        return dict(row.one())


def shown_with_defaults(task: str) -> dict[str, Any]:
    """``target.celery`` as a task shows it when only ``task`` was given."""
    return {
        "task": task,
        "args": [],
        "kwargs": {},
        "queue": "celery",
        "broker": "default",
        "track": False,
        "expires_seconds": None,
    }


def test_a_celery_task_is_created_read_and_listed_with_every_field(api: Api) -> None:
    response = api.a.post("/v1/tasks", json=celery_task())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["target"] == {"celery": SHOWN, "timeout_seconds": 30.0}
    http = api.task("hook")
    assert set(created) == set(http)  # every other field as an HTTP task's
    assert api.a.get(f"/v1/tasks/{created['id']}").json() == created
    listed = {task["id"]: task for task in api.a.get("/v1/tasks").json()["items"]}
    assert listed == {created["id"]: created, http["id"]: http}
    row = stored(api.engine, created["id"])
    assert (row["url"], row["celery"], row["headers"], row["body"]) == (None, SHOWN, {}, None)
    assert row["sealed_headers"] is None
    # Defaults filled in; another tenant does not see it.
    minimal = api.a.post("/v1/tasks", json=celery_task("minimal") | {"target": {"celery": {}}})
    assert minimal.json()["error"]["field"] == "target.celery.task"
    plain = api.a.post(
        "/v1/tasks", json=celery_task("plain") | {"target": {"celery": {"task": "a.b"}}}
    )
    assert plain.json()["target"]["celery"] == shown_with_defaults("a.b")
    assert api.b.get(f"/v1/tasks/{created['id']}").status_code == 404


def test_a_patch_switches_the_target_kind_both_ways(api: Api) -> None:
    http = api.task(
        "hook",
        target={
            "url": "https://example.com/hook",
            "method": "PUT",
            "headers": {"Authorization": "Bearer abcdefgh12345678", "X-Team": "billing"},
            "body": "payload",
            "timeout_seconds": 10,
        },
    )
    assert stored(api.engine, http["id"])["sealed_headers"]
    path = f"/v1/tasks/{http['id']}"

    to_celery = api.a.patch(path, json={"target": {"celery": CALL}})
    assert to_celery.status_code == 200, to_celery.text
    assert to_celery.json()["target"] == {"celery": SHOWN, "timeout_seconds": 10.0}
    row = stored(api.engine, http["id"])
    assert (row["url"], row["headers"], row["body"], row["sealed_headers"]) == (
        None,
        {},
        None,
        None,
    )

    # Merged field by field: the timeout alone keeps the Celery task; celery is whole.
    timeout = api.a.patch(path, json={"target": {"timeout_seconds": 20}})
    assert timeout.json()["target"] == {"celery": SHOWN, "timeout_seconds": 20.0}
    other = api.a.patch(path, json={"target": {"celery": {"task": "ops.tasks.cleanup"}}})
    assert other.json()["target"]["celery"] == shown_with_defaults("ops.tasks.cleanup")

    back = api.a.patch(path, json={"target": {"url": "https://example.com/back"}})
    assert back.status_code == 200, back.text
    assert back.json()["target"] == {
        "url": "https://example.com/back",
        "method": "POST",
        "headers": {},
        "body": None,
        "timeout_seconds": 20.0,
    }
    assert stored(api.engine, http["id"])["celery"] is None
    assert api.a.get(path).json() == back.json()


#: (what is wrong, the target sent, the field named)
BAD_TARGETS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown broker", {"celery": CALL | {"broker": "elsewhere"}}, "target.celery.broker"),
    ("bad task name", {"celery": CALL | {"task": "billing/tasks"}}, "target.celery.task"),
    ("args not an array", {"celery": CALL | {"args": {"a": 1}}}, "target.celery.args"),
    ("kwargs not an object", {"celery": CALL | {"kwargs": [1]}}, "target.celery.kwargs"),
    ("bad queue", {"celery": CALL | {"queue": "re ports"}}, "target.celery.queue"),
    (
        "both url and celery",
        {"celery": CALL, "url": "https://example.com/hook"},
        "target.celery",
    ),
    ("method with celery", {"celery": CALL, "method": "GET"}, "target.method"),
    ("headers with celery", {"celery": CALL, "headers": {"X-A": "b"}}, "target.headers"),
    ("body with celery", {"celery": CALL, "body": "{}"}, "target.body"),
    ("track without a backend", {"celery": CALL | {"track": True}}, "target.celery.track"),
    (
        "expiry out of range",
        {"celery": CALL | {"expires_seconds": 0}},
        "target.celery.expires_seconds",
    ),
    ("unknown field", {"celery": CALL | {"countdown": 5}}, "target.celery.countdown"),
    ("celery not an object", {"celery": "billing.tasks.x"}, "target.celery"),
]


@pytest.mark.parametrize(
    ("target", "where"), [c[1:] for c in BAD_TARGETS], ids=[c[0] for c in BAD_TARGETS]
)
def test_every_refusal_is_422_naming_the_field_and_changes_nothing(
    api: Api, target: dict[str, Any], where: str
) -> None:
    celery = api.a.post("/v1/tasks", json=celery_task("victim")).json()
    http = api.task("hook")
    before = dump(api.engine)
    answers = [
        api.a.post("/v1/tasks", json=celery_task("new") | {"target": target}),
        api.a.patch(f"/v1/tasks/{celery['id']}", json={"target": target}),
        api.a.patch(f"/v1/tasks/{http['id']}", json={"target": target}),
    ]
    for response in answers:
        error = Api.error(response, 422)
        assert (error["code"], error["field"]) == ("invalid", where), error
        assert "hunter2" not in response.text and "mq.internal" not in response.text
    assert dump(api.engine) == before


def test_the_refusals_say_which_names_are_configured(api: Api) -> None:
    broker = api.a.post("/v1/tasks", json=celery_task(broker="elsewhere"))
    assert Api.error(broker, 422)["message"] == (
        "is not a configured broker (configured: default, billing)"
    )
    track = Api.error(api.a.post("/v1/tasks", json=celery_task(track=True)), 422)
    assert "billing" in track["message"]
    # The default broker has a result backend of its name: tracked, it is taken.
    tracked = api.a.post("/v1/tasks", json=celery_task(broker="default", track=True))
    assert tracked.status_code == 201 and tracked.json()["target"]["celery"]["track"] is True


def test_a_patch_of_http_fields_alone_to_a_celery_task_is_refused(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=celery_task()).json()
    before = dump(api.engine)
    for patch, where in [
        ({"method": "GET"}, "target.method"),
        ({"headers": {"X-A": "b"}}, "target.headers"),
        ({"body": "x"}, "target.body"),
        ({"celery": None}, "target.url"),
    ]:
        response = api.a.patch(f"/v1/tasks/{task['id']}", json={"target": patch})
        assert Api.error(response, 422)["field"] == where
    assert dump(api.engine) == before


def test_the_other_routes_take_a_celery_task_as_any_task(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=celery_task()).json()
    path = f"/v1/tasks/{task['id']}"
    preview = api.a.get(f"{path}/preview", params={"count": 2})
    assert preview.status_code == 200 and len(preview.json()["fire_times"]) == 2
    assert api.a.post(f"{path}/pause").json()["status"] == "paused"
    assert api.a.post(f"{path}/resume").json()["status"] == "active"
    run = api.a.post(f"{path}/run")
    assert run.status_code == 202 and run.json()["status"] == "queued"
    assert api.a.delete(path).status_code == 204


def test_the_url_target_still_needs_its_url(api: Api) -> None:
    response = api.a.post("/v1/tasks", json=task_body() | {"target": {"method": "GET"}})
    assert Api.error(response, 422) == {
        "code": "invalid",
        "message": "is required",
        "field": "target.url",
    }


# --- the claim --------------------------------------------------------------------------


def add(engine: Engine, name: str, target: dict[str, Any], tenant: str = "acme") -> uuid.UUID:
    created = NOW - timedelta(hours=1)
    data = {"name": name, "schedule": {"at": (NOW - timedelta(seconds=1)).isoformat()}}
    with engine.begin() as conn:
        definition = parse_definition(data | {"target": target}, created)
        return task_service.create_task(conn, definition, created, SETTINGS, tenant)


def test_a_claimed_celery_occurrence_yields_a_request_with_its_call(engine: Engine) -> None:
    with engine.begin() as conn:
        signing_secrets.create_secret(conn, "acme", NOW, SETTINGS)
    celery_id = add(
        engine, "report", {"celery": CALL | {"expires_seconds": 60}, "timeout_seconds": 9}
    )
    http_id = add(engine, "hook", {"url": "http://target.test/hook", "headers": {"X-A": "b"}})
    requests = {request.task_id: request for request in claim_all(engine, NOW)}
    celery, http = requests[str(celery_id)], requests[str(http_id)]

    call = CeleryCall(
        task="billing.tasks.nightly_report",
        args=(1,),
        kwargs={"region": "eu"},
        queue="reports",
        broker="billing",
        expires_seconds=60.0,
    )
    assert celery.celery == call
    assert (celery.url, celery.method, dict(celery.headers), celery.body) == ("", "", {}, None)
    assert (celery.sealed_headers, celery.sealed_signing_secrets) == (None, ())
    assert (celery.timeout_s, celery.tenant, celery.attempt) == (9.0, "acme", 1)
    assert TriggerRequest.from_message(celery.to_message()) == celery
    # The HTTP task's request beside it is as it always was.
    assert http.celery is None
    assert (http.url, http.method, dict(http.headers)) == (
        "http://target.test/hook",
        "POST",
        {"X-A": "b"},
    )
    assert len(http.sealed_signing_secrets) == 1

    # Sent again when its lease runs out: the same call, the same key.
    lease = SETTINGS.dispatch_lease_s + 9
    [again] = [r for r in claim_all(engine, NOW + timedelta(seconds=lease)) if r.celery]
    assert (again.celery, again.idempotency_key, again.url) == (call, celery.idempotency_key, "")


# --- the migration ----------------------------------------------------------------------


def test_migration_0011_keeps_http_tasks_and_holds_one_target_kind(database_url: str) -> None:
    schema.upgrade(database_url, "0010")
    engine = engines.create_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    http_id = uuid.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO scheduled_tasks (id, name, schedule_kind, interval_seconds,"
                    " url, headers, tags, created_at, updated_at)"
                    " VALUES (:id, 'hook', 'interval', 60, 'https://example.com/', '{}', '{}',"
                    " :at, :at)"
                ),
                {
                    "id": http_id.hex if sqlite else http_id,
                    "at": NOW.replace(tzinfo=None) if sqlite else NOW,
                },
            )
        schema.upgrade(database_url)
        schema.check(database_url)  # the models name what the migration made
        with engine.connect() as conn:
            row = conn.execute(sa.select(scheduled_tasks)).mappings().one()
        assert (row["id"], row["url"], row["celery"]) == (http_id, "https://example.com/", None)
        add(engine, "report", {"celery": CALL})
        for url, celery in [(None, None), ("https://example.com/", {"task": "a.b"})]:
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                conn.execute(
                    sa.update(scheduled_tasks)
                    .where(scheduled_tasks.c.id == http_id)
                    .values(url=url, celery=celery)
                )
        # Down again only once no task has a Celery target (the old schema has no room).
        with pytest.raises(RuntimeError, match="1 tasks have a Celery target"):
            command.downgrade(schema.alembic_config(database_url), "0010")
        with engine.begin() as conn:
            conn.execute(sa.delete(scheduled_tasks).where(scheduled_tasks.c.celery.is_not(None)))
        command.downgrade(schema.alembic_config(database_url), "0010")
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("scheduled_tasks")}
            assert "celery" not in columns
            assert conn.execute(sa.text("SELECT url FROM scheduled_tasks")).scalar_one()
        schema.upgrade(database_url)
    finally:
        engine.dispose()


def test_tracking_a_broker_whose_result_backend_taskhub_cannot_read_is_refused(
    engine: Engine,
) -> None:
    env = with_env(
        TASKHUB_CELERY_BROKERS="default=redis://127.0.0.1:6379/9",
        TASKHUB_CELERY_RESULT_BACKENDS="default=file:///srv/secret-results",
    )
    api = Api(engine, T0, env)
    answer = api.a.post("/v1/tasks", json=celery_task(broker="default", track=True))
    error = Api.error(answer, 422)
    assert error["field"] == "target.celery.track"
    assert "file:" in error["message"] and "secret" not in error["message"]
    untracked = api.a.post("/v1/tasks", json=celery_task(broker="default"))
    assert untracked.status_code == 201
