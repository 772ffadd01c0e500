"""Standard Webhooks on PostgreSQL and SQLite: signing secrets with a scheme through the
API and the CLI, migration 0014 both ways, real attempts at a loopback target verified by
the spec's reference library (``standardwebhooks``) before, during and after a rotation,
and a target answering 410 Gone pausing its task (``paused_by: target_gone``)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from taskhub.core import signing
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings, load
from taskhub.db import engines, metric_queries, schema
from taskhub.db.models import executions
from taskhub.db.models import signing_secrets as signing_table
from taskhub.engine import discovery, firing, writeback
from taskhub.service import signing_secrets, task_service, task_views
from tests.support.api import T0, Api, task_body, with_env
from tests.support.cli import Cli
from tests.support.engine import all_ended
from tests.support.processes import Stack, wait_until
from tests.support.storage import outcome
from tests.support.target import Received, Target, running_target

STANDARD = "standard-webhooks"


def executions_of(conn: sa.Connection, task_id: str) -> list[Any]:
    query = sa.select(executions).where(executions.c.task_id == uuid.UUID(task_id))
    return list(conn.execute(query).mappings())


def stored_secrets(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(signing_table)).mappings()]


# --- the API ------------------------------------------------------------------------------


def test_signing_secrets_with_a_scheme_through_the_api(engine: Engine) -> None:
    api = Api(engine, T0)
    created = api.a.post("/v1/signing-secrets", json={"scheme": STANDARD})
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["scheme"] == STANDARD and first["active"] is True
    secret = first["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert first["hint"] == f"whsec_…{secret[-4:]}"
    Webhook(secret)  # the reference library takes it as it is

    # Without a body, or with the scheme named: taskhub, as before.
    plain = api.a.post("/v1/signing-secrets").json()
    named = api.a.post("/v1/signing-secrets", json={"scheme": "taskhub"}).json()
    assert plain["scheme"] == named["scheme"] == "taskhub"
    # Two of each scheme may be active (a rotation of each); a third is a conflict.
    second = api.a.post("/v1/signing-secrets", json={"scheme": STANDARD}).json()
    third = api.a.post("/v1/signing-secrets", json={"scheme": STANDARD})
    assert third.status_code == 409
    assert f"2 active {STANDARD}" in third.json()["error"]["message"]
    assert api.a.post("/v1/signing-secrets").status_code == 409

    listed = api.a.get("/v1/signing-secrets").json()["items"]
    assert [(s["id"], s["scheme"]) for s in listed] == [
        (second["id"], STANDARD),
        (named["id"], "taskhub"),
        (plain["id"], "taskhub"),
        (first["id"], STANDARD),
    ]
    text = json.dumps(listed)
    assert secret not in text and second["secret"] not in text
    assert api.b.get("/v1/signing-secrets").json() == {"items": []}

    # Revoking one makes room for one of its scheme.
    assert api.a.delete(f"/v1/signing-secrets/{first['id']}").status_code == 204
    [revoked] = [s for s in api.a.get("/v1/signing-secrets").json()["items"] if not s["active"]]
    assert (revoked["id"], revoked["scheme"]) == (first["id"], STANDARD)
    assert api.a.post("/v1/signing-secrets", json={"scheme": STANDARD}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheme": "hmac-md5"}, "scheme"),
        ({"scheme": "Standard-Webhooks"}, "scheme"),
        ({"scheme": None}, "scheme"),
        ({"scheme": ["taskhub"]}, "scheme"),
        ({"scheme": STANDARD, "name": "x"}, "name"),
        (["standard-webhooks"], "body"),
    ],
)
def test_a_bad_create_is_a_422_naming_the_field_and_stores_nothing(
    engine: Engine, body: Any, field: str
) -> None:
    api = Api(engine, T0)
    refused = api.a.post("/v1/signing-secrets", json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    if field == "scheme":
        assert "taskhub, standard-webhooks" in error["message"]
    assert stored_secrets(engine) == []


def test_the_openapi_document_names_the_scheme(engine: Engine) -> None:
    document = Api(engine, T0).a.get("/openapi.json").json()
    create = document["paths"]["/v1/signing-secrets"]["post"]
    assert create["requestBody"]["required"] is False
    schemas = document["components"]["schemas"]
    assert schemas["SigningSecretCreate"]["properties"]["scheme"]["default"] == "taskhub"
    assert set(schemas["Scheme"]["enum"]) == {"taskhub", STANDARD}
    assert "scheme" in schemas["SigningSecret"]["required"]
    assert "target_gone" in schemas["PausedBy"]["enum"]


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[Cli]:
    """The ``taskhub`` command over this test's database (SQLite or PostgreSQL)."""
    cli = Cli(tmp_path)
    cli.url = cli.env["TASKHUB_DATABASE_URL"] = database_url
    cli("db", "upgrade")
    yield cli
    engines.dispose_after_fork()


def test_signing_secrets_with_a_scheme_through_the_cli(cli: Cli) -> None:
    created = cli("signing-secret", "create", "--tenant", "acme", "--scheme", STANDARD)
    secret = created.stdout.strip()
    assert created.stdout == secret + "\n"
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert STANDARD in created.stderr and secret not in created.stderr
    plain = cli("signing-secret", "create", "--tenant", "acme").stdout.strip()

    items = cli.json("signing-secret", "list", "--tenant", "acme")["items"]
    assert [i["scheme"] for i in items] == ["taskhub", STANDARD]
    table = cli("signing-secret", "list").stdout
    header, *rows = table.splitlines()
    assert "SCHEME" in header.split() and len(rows) == 2
    assert any(STANDARD in row.split() for row in rows)
    assert secret not in table and plain not in table

    refused = cli("signing-secret", "create", "--tenant", "acme", "--scheme", "md5", expect=2)
    assert "--scheme" in refused.stderr and refused.stdout == ""
    assert len(cli.json("signing-secret", "list")["items"]) == 2  # nothing stored
    help_text = cli("signing-secret", "create", "--help").stdout
    assert "--scheme [taskhub|standard-webhooks]" in help_text

    standard_id = next(i["id"] for i in items if i["scheme"] == STANDARD)
    assert "revoked" in cli("signing-secret", "revoke", standard_id).stdout
    [revoked] = [i for i in cli.json("signing-secret", "list")["items"] if not i["active"]]
    assert revoked["scheme"] == STANDARD


# --- migration 0014 -----------------------------------------------------------------------


def test_migration_0014_adds_the_scheme_and_goes_back(database_url: str) -> None:
    schema.upgrade(database_url, "0013")
    engine = engines.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO signing_secrets (id, tenant, sealed_secret, hint, created_at)"
                    " VALUES (:id, 'acme', 'sealed', 'whsec_…abcd', :at)"
                ),
                {
                    "id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                    "at": T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0,
                },
            )
        schema.upgrade(database_url)
        schema.check(database_url)  # the models name what the migration made
        [existing] = stored_secrets(engine)
        assert existing["scheme"] == "taskhub"  # a secret from before signs as it did
        # Only the two schemes can be stored.
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.update(signing_table).values(scheme="hmac-md5"))

        # A downgrade refuses while a standard-webhooks secret is active...
        settings = with_env()
        with engine.begin() as conn:
            _, standard = signing_secrets.create_secret(conn, "acme", T0, settings, STANDARD)
        config = schema.alembic_config(database_url)
        with pytest.raises(RuntimeError, match="revoke them"):
            command.downgrade(config, "0013")
        assert {s["scheme"] for s in stored_secrets(engine)} == {"taskhub", STANDARD}
        # ...and goes back once it is revoked.
        with engine.begin() as conn:
            signing_secrets.revoke_secret(conn, standard.id, T0)
        command.downgrade(config, "0013")
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("signing_secrets")}
            kept = conn.execute(sa.text("SELECT count(*) FROM signing_secrets")).scalar_one()
        assert "scheme" not in columns and kept == 2
        schema.upgrade(database_url)
        assert {s["scheme"] for s in stored_secrets(engine)} == {"taskhub"}
    finally:
        engine.dispose()


# --- real attempts, verified by the reference library --------------------------------------


_moments = iter(range(1, 10_000))


def publish(engine: Engine, settings: Settings, target: Target, path: str) -> TriggerRequest:
    """Create (once) a task of tenant acme at ``path``, run it now, tick: the one request
    the tick publishes."""
    now = T0 + timedelta(minutes=next(_moments))
    name = path.strip("/")
    with engine.begin() as conn:
        found = task_views.list_tasks(conn, "acme", settings, name=name)["items"]
        if found:
            task_id = found[0]["id"]
        else:
            body = task_body(name, target.url(path), method="POST", body='{"n": 1}')
            body["schedule"] = {"cron": "0 0 1 1 *"}  # nothing of its own falls due
            body["retry"] = {"max_attempts": 3}
            task_id = task_service.add_task(conn, "acme", body, now, settings)["id"]
        task_service.run_task_now(conn, "acme", task_id, now)
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, published.extend, lambda: now)
    [request] = published
    return request


def send(engine: Engine, settings: Settings, target: Target, path: str = "/ok") -> Received:
    request = publish(engine, settings, target, path)
    count = len(target.snapshot())
    [answer] = firing.fire([request], settings)
    assert answer.http_status == 200, answer.error
    # Written back, as the chord callback does: the execution is not sent again.
    report = writeback.record_outcomes(engine, [answer], settings, answer.started_at, lambda: 0.5)
    assert report.applied == 1
    received = target.wait_for(count + 1, 5)[-1]
    assert received.headers["webhook-id"] == request.idempotency_key
    return received


def test_attempts_verify_with_the_reference_library_through_a_rotation(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with engine.begin() as conn:
        old, old_stored = signing_secrets.create_secret(conn, "acme", T0, settings, STANDARD)
    with running_target() as target:
        received = send(engine, settings, target)
        body = received.body.encode()
        assert body == b'{"n": 1}'
        assert Webhook(old).verify(body, received.headers) == {"n": 1}
        assert len(received.headers["webhook-signature"].split(" ")) == 1
        # Only the scheme the tenant has: no X-Taskhub-Signature.
        assert signing.HEADER not in received.headers

        # Rotation: the new secret beside the old; a receiver holding either verifies.
        with engine.begin() as conn:
            new, _ = signing_secrets.create_secret(conn, "acme", T0, settings, STANDARD)
        received = send(engine, settings, target)
        assert len(received.headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(received.body, received.headers)
        Webhook(new).verify(received.body, received.headers)

        # The old one revoked: the next attempt carries only the new one.
        with engine.begin() as conn:
            signing_secrets.revoke_secret(conn, old_stored.id, T0, "acme")
        received = send(engine, settings, target)
        Webhook(new).verify(received.body, received.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(received.body, received.headers)
        # A tampered body, another tenant's secret: refused.
        with pytest.raises(WebhookVerificationError):
            Webhook(new).verify(received.body.replace("1", "2"), received.headers)
        with engine.begin() as conn:
            theirs, _ = signing_secrets.create_secret(conn, "other", T0, settings, STANDARD)
        with pytest.raises(WebhookVerificationError):
            Webhook(theirs).verify(received.body, received.headers)

        # A taskhub-scheme secret as well: both headers, each verifying.
        with engine.begin() as conn:
            mine, _ = signing_secrets.create_secret(conn, "acme", T0, settings)
        received = send(engine, settings, target)
        assert signing.verify(received.headers[signing.HEADER], received.body.encode(), [mine])
        Webhook(new).verify(received.body, received.headers)
    # Nothing of the secrets is stored in plaintext.
    everything = json.dumps([{k: str(v) for k, v in r.items()} for r in stored_secrets(engine)])
    assert all(s[6:] not in everything for s in (old, new, theirs, mine))


def test_a_tenant_without_standard_secrets_sends_no_webhook_headers(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with engine.begin() as conn:
        signing_secrets.create_secret(conn, "acme", T0, settings)  # taskhub only
        signing_secrets.create_secret(conn, "other", T0, settings, STANDARD)  # not acme's
    with running_target() as target:
        request = publish(engine, settings, target, "/ok")
        assert request.sealed_webhook_secrets == () and len(request.sealed_signing_secrets) == 1
        firing.fire([request], settings)
        [received] = target.wait_for(1, 5)
        assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & {
            k.lower() for k in received.headers
        }
        assert signing.HEADER in received.headers


# --- 410 Gone -----------------------------------------------------------------------------


def withdrawn_for(engine: Engine, reason: str) -> float:
    with engine.connect() as conn:
        counted = metric_queries.read_counters(conn)
    return counted.get(("taskhub_occurrences_withdrawn_total", f'{{"reason":"{reason}"}}'), 0.0)


def test_a_target_answering_410_gone_pauses_its_task(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1", TASKHUB_TENANT_MIN_INTERVAL_SECONDS="10")
    with running_target() as target:
        with engine.begin() as conn:
            secret, _ = signing_secrets.create_secret(conn, "acme", T0, settings, STANDARD)
            body = task_body("gone", target.url("/gone"), method="POST", body='{"n": 1}')
            body["schedule"] = {"interval_seconds": 10}
            body["retry"] = {"max_attempts": 3}
            body["auto_pause_after_failures"] = 5
            task_id = task_service.add_task(conn, "acme", body, T0, settings)["id"]
        now = T0 + timedelta(seconds=10)
        published: list[TriggerRequest] = []
        discovery.run_tick(engine, settings, published.extend, lambda: now)
        assert published  # the first occurrences, sent now; more are staged
        with engine.connect() as conn:
            staged = conn.execute(
                sa.select(sa.func.count())
                .select_from(executions)
                .where(executions.c.status == "queued", executions.c.attempts == 0)
            ).scalar_one()
        first = published[0]
        answers = firing.fire(published, settings)
        assert {a.http_status for a in answers} == {410}
        received = target.wait_for(len(published), 5)
        assert len(received) == len(published)
        for each in received:  # signed like any attempt
            Webhook(secret).verify(each.body, each.headers)
        report = writeback.record_outcomes(engine, answers, settings, now, lambda: 0.5)
    assert (report.target_gone, report.auto_paused) == (1, 0)

    with engine.connect() as conn:
        task = task_views.get_task(conn, "acme", task_id, settings, now)
        execution = (
            conn.execute(sa.select(executions).where(executions.c.id == first.execution_id))
            .mappings()
            .one()
        )
    # Failed at once, no retry, though three attempts were allowed.
    assert (execution["status"], execution["attempts"], execution["http_status"]) == (
        "failed",
        1,
        410,
    )
    assert (task["status"], task["paused_by"], task["paused_at"]) == (
        "paused",
        "target_gone",
        now.isoformat(),
    )
    assert task["paused_reason"] is not None and "410 Gone" in task["paused_reason"]
    # What was staged and not sent is withdrawn, counted under its own reason.
    assert withdrawn_for(engine, "target_gone") == staged > 0
    later: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, later.extend, lambda: now + timedelta(hours=1))
    assert [r for r in later if r.task_id == task_id] == []
    # A person resumes it, as after any pause.
    with engine.begin() as conn:
        resumed = task_service.resume_task(conn, "acme", task_id, now, settings)
    assert (resumed["status"], resumed["paused_by"]) == ("active", None)


def test_a_410_wins_over_the_auto_pause_and_leaves_a_users_pause_alone(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with engine.begin() as conn:
        body = task_body("both", "https://example.com/gone")
        body["schedule"] = {"cron": "0 0 1 1 *"}
        body["retry"] = {"max_attempts": 1}
        body["auto_pause_after_failures"] = 1
        task_id = task_service.add_task(conn, "acme", body, T0, settings)["id"]
        task_service.run_task_now(conn, "acme", task_id, T0)
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, published.extend, lambda: T0)
    [request] = published
    report = writeback.record_outcomes(engine, [gone_outcome(request)], settings, T0, lambda: 0.5)
    assert (report.target_gone, report.auto_paused) == (1, 0)
    with engine.connect() as conn:
        assert task_views.get_task(conn, "acme", task_id, settings, T0)["paused_by"] == (
            "target_gone"
        )

    # Paused by a user, then a run-now answered 410: the user's pause is kept.
    with engine.begin() as conn:
        task_service.resume_task(conn, "acme", task_id, T0, settings)
        task_service.pause_task(conn, "acme", task_id, T0, settings, {"reason": "mine"})
        task_service.run_task_now(conn, "acme", task_id, T0 + timedelta(seconds=1))
    published.clear()
    discovery.run_tick(engine, settings, published.extend, lambda: T0 + timedelta(seconds=1))
    [request] = published
    report = writeback.record_outcomes(engine, [gone_outcome(request)], settings, T0, lambda: 0.5)
    assert report.target_gone == 0
    with engine.connect() as conn:
        task = task_views.get_task(conn, "acme", task_id, settings, T0)
    assert (task["paused_by"], task["paused_reason"]) == ("user", "mine")


def gone_outcome(request: TriggerRequest) -> TriggerOutcome:
    return outcome(request, 410)


# --- real worker and beat processes ---------------------------------------------------------


@pytest.mark.slow
def test_worker_processes_send_verifiable_attempts_and_a_410_pauses_the_task(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    """Real worker and beat processes: the attempts the target receives verify with the
    reference library under either secret of a rotation, and a target answering 410
    Gone has its task paused (``paused_by: target_gone``) after one attempt."""
    settings = load(stack.env)
    now = datetime.now(UTC)
    ok = task_body("ok", target.url("/ok"), method="POST", body='{"n": 1}')
    ok["schedule"] = {"at": (now + timedelta(seconds=2)).isoformat()}
    gone = task_body("gone", target.url("/gone"), method="POST", body='{"n": 2}')
    gone["schedule"] = {"interval_seconds": 60}
    gone["start_at"] = (now + timedelta(seconds=2)).isoformat()
    gone["retry"] = {"max_attempts": 3}
    with pg_engine.begin() as conn:
        old, _ = signing_secrets.create_secret(conn, "acme", now, settings, STANDARD)
        new, _ = signing_secrets.create_secret(conn, "acme", now, settings, STANDARD)
        task_service.add_task(conn, "acme", ok, now, settings)
        gone_id = task_service.add_task(conn, "acme", gone, now, settings)["id"]
    stack.start("worker", "all")
    stack.start("beat", "beat")

    def paused() -> bool:
        with pg_engine.connect() as conn:
            task = task_views.get_task(conn, "acme", gone_id, settings, datetime.now(UTC))
        return bool(task["paused_by"] == "target_gone")

    assert wait_until(lambda: all_ended(pg_engine, 2) and paused(), 60), stack.logs()
    received = {r.path: r for r in target.snapshot()}
    for path, payload in (("/ok", {"n": 1}), ("/gone", {"n": 2})):
        request = received[path]
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert Webhook(old).verify(request.body, request.headers) == payload
        assert Webhook(new).verify(request.body, request.headers) == payload
        with pytest.raises(WebhookVerificationError):
            Webhook(new).verify(request.body + " ", request.headers)
    with pg_engine.connect() as conn:
        [attempted] = executions_of(conn, gone_id)
    assert (attempted["status"], attempted["attempts"], attempted["http_status"]) == (
        "failed",
        1,
        410,
    )
    assert [r.path for r in target.snapshot()].count("/gone") == 1
