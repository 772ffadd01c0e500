"""Security end to end: credential headers sealed at rest and masked everywhere, signed
requests (fired for real at a loopback target and verified as a receiver would), signing
secrets through the API and the CLI, and SSRF refusals at creation. On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core import signing
from taskhub.core.messages import TriggerRequest
from taskhub.core.settings import Settings, load
from taskhub.core.signing import verify
from taskhub.db.models import signing_secrets as signing_table
from taskhub.engine import discovery, firing, writeback
from taskhub.service import executions, signing_secrets, task_service, task_views
from tests.support.api import T0, Api, dump, task_body, with_env
from tests.support.cli import Cli
from tests.support.credentials import COOKIE, HEADERS, TOKEN, secrets_of, stored
from tests.support.engine import all_ended
from tests.support.processes import Stack, wait_until
from tests.support.target import Target, running_target


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


# --- credential headers ---------------------------------------------------------------


def test_credential_headers_are_sealed_at_rest_and_masked_everywhere(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = api.a.post("/v1/tasks", json=task_body(headers=HEADERS))
    assert created.status_code == 201, created.text
    task = created.json()
    shown = {"X-Team": "billing", "Authorization": "Bearer ****WXYZ", "Cookie": "****okie"}
    assert task["target"]["headers"] == shown
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["target"]["headers"] == shown
    [listed] = api.a.get("/v1/tasks").json()["items"]
    assert listed["target"]["headers"] == shown

    row = stored(api.engine, task["id"])
    assert row["headers"] == {"X-Team": "billing"}
    everything = json.dumps({k: str(v) for k, v in row.items()})
    for secret in ("sk_live_0123456789abcdef", "0123456789abcdef-cookie"):
        assert secret not in everything
        assert secret not in caplog.text
    assert row["sealed_headers"]


def test_patch_with_the_masked_value_keeps_the_secret(api: Api) -> None:
    task = api.a.post("/v1/tasks", json=task_body(headers=HEADERS)).json()
    sealed_before = stored(api.engine, task["id"])["sealed_headers"]

    # Send back exactly what GET showed, plus an unrelated change.
    shown = api.a.get(f"/v1/tasks/{task['id']}").json()
    patch = {"target": {**shown["target"], "timeout_seconds": 12}}
    changed = api.a.patch(f"/v1/tasks/{task['id']}", json=patch)
    assert changed.status_code == 200, changed.text
    assert changed.json()["target"]["headers"] == shown["target"]["headers"]
    assert secrets_of(api.engine, task["id"]) == {"Authorization": TOKEN, "Cookie": COOKIE}
    # A PATCH that does not name the headers keeps them too.
    api.a.patch(f"/v1/tasks/{task['id']}", json={"name": "renamed"})
    assert secrets_of(api.engine, task["id"]) == {"Authorization": TOKEN, "Cookie": COOKIE}
    assert sealed_before  # sealed again on each save, never stored in plaintext

    # A new value replaces it; leaving a header out removes it.
    new_token = "Bearer sk_live_NEW_0123456789_abcd"
    api.a.patch(
        f"/v1/tasks/{task['id']}",
        json={"target": {"headers": {"Authorization": new_token}}},
    )
    assert secrets_of(api.engine, task["id"]) == {"Authorization": new_token}
    api.a.patch(f"/v1/tasks/{task['id']}", json={"target": {"headers": {}}})
    assert stored(api.engine, task["id"])["sealed_headers"] is None


def test_configured_secret_header_names_are_sealed(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_SECRET_HEADERS="X-Partner-Ref, X-Other"))
    body = task_body(headers={"X-Partner-Ref": "abcdefghijklmnopqrstuvwxyz"})
    task = api.a.post("/v1/tasks", json=body).json()
    assert task["target"]["headers"] == {"X-Partner-Ref": "****wxyz"}
    assert stored(api.engine, task["id"])["headers"] == {}


def test_dispatch_carries_credentials_sealed_and_the_worker_sends_them(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with running_target() as target:
        requests = publish_once(engine, settings, target, headers=HEADERS)
        message = json.dumps([r.to_message() for r in requests])
        assert "sk_live" not in message and "0123456789abcdef-cookie" not in message
        [outcome] = firing.fire([TriggerRequest.from_message(json.loads(message)[0])], settings)
        assert outcome.http_status == 200, outcome.error
        [received] = target.wait_for(1, 5)
        assert received.headers["Authorization"] == TOKEN
        assert received.headers["Cookie"] == COOKIE
        assert received.headers["X-Team"] == "billing"


# --- signing: real requests, verified as a receiver does ------------------------------


_moments = iter(range(1, 10_000))


def publish_once(
    engine: Engine, settings: Settings, target: Target, **target_fields: Any
) -> list[TriggerRequest]:
    """Create (once) a task at the target, fire it now, run a tick: what it publishes."""
    now = T0 + timedelta(minutes=next(_moments))
    with engine.begin() as conn:
        found = task_views.list_tasks(conn, "acme", settings, name="signed")["items"]
        if found:
            task_id = found[0]["id"]
        else:
            body = task_body("signed", target.url("/ok"), method="POST", body='{"n": 1}')
            body["target"].update(target_fields)
            task_id = task_service.add_task(conn, "acme", body, now, settings)["id"]
        task_service.run_task_now(conn, "acme", task_id, now)
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, published.extend, lambda: now)
    assert len(published) == 1
    return published


def fire_and_receive(
    engine: Engine, settings: Settings, target: Target
) -> tuple[str, bytes, list[str]]:
    requests = publish_once(engine, settings, target)
    count = len(target.snapshot())
    [outcome] = firing.fire(requests, settings)
    assert outcome.http_status == 200, outcome.error
    received = target.wait_for(count + 1, 5)[-1]
    header = received.headers[signing.HEADER]
    return header, received.body.encode(), header.split(",")[1:]


def test_signed_requests_verify_and_rotate(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with engine.begin() as conn:
        old, old_stored = signing_secrets.create_secret(conn, "acme", T0, settings)
    with running_target() as target:
        header, body, macs = fire_and_receive(engine, settings, target)
        assert len(macs) == 1 and body == b'{"n": 1}'
        assert verify(header, body, [old])

        # Rotation: two active secrets; a receiver holding either one verifies.
        with engine.begin() as conn:
            new, _ = signing_secrets.create_secret(conn, "acme", T0, settings)
        header, body, macs = fire_and_receive(engine, settings, target)
        assert len(macs) == 2
        assert verify(header, body, [old]) and verify(header, body, [new])

        # After revoking the old one, the next attempt fired carries only the new.
        with engine.begin() as conn:
            signing_secrets.revoke_secret(conn, old_stored.id, T0, "acme")
        header, body, macs = fire_and_receive(engine, settings, target)
        assert len(macs) == 1
        assert verify(header, body, [new]) and not verify(header, body, [old])

        # A tampered body, an old timestamp, another tenant's secret: rejected.
        timestamp = int(header.split(",")[0][2:])
        assert not verify(header, body + b" ", [new])
        assert not verify(header, body.replace(b"1", b"2"), [new])
        assert not verify(header, body, [new], now=timestamp + 301)
        assert not verify(header, body, [signing.new_secret()])
    # Nothing of the secrets is stored in plaintext.
    with engine.connect() as conn:
        rows = conn.execute(sa.select(signing_table)).mappings().all()
    assert all(old not in str(dict(r)) and new not in str(dict(r)) for r in rows)


def test_a_tenant_without_secrets_sends_no_signature(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    with engine.begin() as conn:
        signing_secrets.create_secret(conn, "other", T0, settings)  # not acme's
    with running_target() as target:
        requests = publish_once(engine, settings, target)
        assert requests[0].sealed_signing_secrets == ()
        firing.fire(requests, settings)
        [received] = target.wait_for(1, 5)
        assert signing.HEADER not in received.headers


# --- signing secrets: the API ------------------------------------------------------------


def test_signing_secrets_api(api: Api) -> None:
    created = api.a.post("/v1/signing-secrets")
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["secret"].startswith("whsec_") and first["active"] is True
    assert first["hint"] == f"whsec_…{first['secret'][-4:]}" and first["tenant"] == "acme"
    second = api.a.post("/v1/signing-secrets").json()

    third = api.a.post("/v1/signing-secrets")
    assert third.status_code == 409
    assert third.json()["error"]["code"] == "conflict"
    assert "2 active" in third.json()["error"]["message"]

    listed = api.a.get("/v1/signing-secrets")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["items"]] == [second["id"], first["id"]]
    for secret in (first["secret"], second["secret"]):
        assert secret not in listed.text
    assert all("secret" not in item for item in listed.json()["items"])
    assert api.b.get("/v1/signing-secrets").json() == {"items": []}

    assert api.b.delete(f"/v1/signing-secrets/{first['id']}").status_code == 404
    assert api.a.delete("/v1/signing-secrets/not-a-uuid").status_code == 404
    assert api.a.delete(f"/v1/signing-secrets/{first['id']}").status_code == 204
    assert api.a.delete(f"/v1/signing-secrets/{first['id']}").status_code == 204  # idempotent
    [_newest, revoked] = api.a.get("/v1/signing-secrets").json()["items"]
    assert revoked["active"] is False and revoked["revoked_at"] is not None
    assert api.a.post("/v1/signing-secrets").status_code == 201  # room again


# --- SSRF at creation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://127.0.0.1:8080/",
        "http://[::ffff:10.0.0.5]/",
        "http://100.64.1.1/",
        "http://0.0.0.0/",
    ],
)
def test_blocked_literal_targets_are_refused_at_creation_and_patch(api: Api, url: str) -> None:
    refused = api.a.post("/v1/tasks", json=task_body(url=url))
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "target.url"
    task = api.a.post("/v1/tasks", json=task_body()).json()
    before = dump(api.engine)
    patched = api.a.patch(f"/v1/tasks/{task['id']}", json={"target": {"url": url}})
    assert patched.status_code == 422
    assert patched.json()["error"]["field"] == "target.url"
    assert dump(api.engine) == before


def test_private_targets_setting_and_allowed_networks(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_ALLOWED_TARGET_NETWORKS="10.1.0.0/16"))
    ok = api.a.post("/v1/tasks", json=task_body("a", url="http://10.1.2.3/hook"))
    assert ok.status_code == 201, ok.text
    refused = api.a.post("/v1/tasks", json=task_body("b", url="http://10.2.0.1/hook"))
    assert refused.status_code == 422
    private = with_env(
        TASKHUB_ALLOWED_TARGET_NETWORKS="10.1.0.0/16", TASKHUB_ALLOW_PRIVATE_TARGETS="1"
    )
    api = Api(engine, T0, private)
    assert api.a.post("/v1/tasks", json=task_body("c", url="http://127.0.0.1/")).status_code == 201


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "127.0.0.1 is a loopback address"),
        ("http://127\u30020\u30020\u30021/", "127.0.0.1 is a loopback address"),
        ("http://10\uff0e0\uff0e0\uff0e1:8080/", "10.0.0.1 is a private address"),
        ("http://[::ffff:7f00:1]/", "IPv4-mapped loopback address"),
        ("http://127.1/", "is not a canonical IP address: write 127.0.0.1"),
    ],
)
def test_urls_are_read_as_the_http_client_reads_them_at_creation(
    api: Api, url: str, says: str
) -> None:
    before = dump(api.engine)
    refused = api.a.post("/v1/tasks", json=task_body(url=url))
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"] == "target.url" and says in error["message"]
    assert dump(api.engine) == before


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://\uff11\uff16\uff19.254.169.254/",
    ],
)
def test_metadata_services_stay_closed_with_private_targets_allowed(
    engine: Engine, url: str
) -> None:
    allowed = with_env(
        TASKHUB_ALLOW_PRIVATE_TARGETS="1",
        TASKHUB_ALLOWED_TARGET_NETWORKS="169.254.0.0/16, fd00::/8",
    )
    api = Api(engine, T0, allowed)
    assert api.a.post("/v1/tasks", json=task_body("local", "http://127.0.0.1/")).status_code == 201
    before = dump(api.engine)
    refused = api.a.post("/v1/tasks", json=task_body(url=url))
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"] == "target.url" and "cloud metadata address" in error["message"]
    assert dump(api.engine) == before


def test_naming_a_metadata_address_opens_it(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_ALLOWED_TARGET_NETWORKS="169.254.170.2/32"))
    url = "http://169.254.170.2/v2/metadata"
    assert api.a.post("/v1/tasks", json=task_body(url=url)).status_code == 201
    other = api.a.post("/v1/tasks", json=task_body(url="http://169.254.169.254/"))
    assert other.status_code == 422


def test_the_port_allow_list_at_creation_and_patch(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_ALLOWED_TARGET_PORTS="443, 8443"))
    before = dump(api.engine)
    refused = api.a.post("/v1/tasks", json=task_body(url="http://example.com:8080/hook"))
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "invalid",
        "field": "target.url",
        "message": "port 8080 is not allowed (TASKHUB_ALLOWED_TARGET_PORTS=443,8443)",
    }
    assert dump(api.engine) == before
    task = api.a.post("/v1/tasks", json=task_body(url="https://example.com:8443/hook"))
    assert task.status_code == 201
    before = dump(api.engine)
    patched = api.a.patch(
        f"/v1/tasks/{task.json()['id']}", json={"target": {"url": "http://example.com/"}}
    )
    assert patched.status_code == 422 and patched.json()["error"]["field"] == "target.url"
    assert dump(api.engine) == before


# --- what a worker logs and keeps of a target that echoes credentials --------------------


@pytest.mark.slow
def test_a_worker_neither_logs_nor_keeps_the_credentials_a_target_echoes(
    stack: Stack, pg_engine: Engine, target: Target, redis_url: str
) -> None:
    """Real worker and beat processes, the Redis result backend, a target echoing every
    request header: the credentials reach the target and nowhere else."""
    settings = load(stack.env)
    secrets = {**HEADERS, "X-Access-Token": "xat-0123456789abcdef"}
    values = ["sk_live_0123456789abcdef", "0123456789abcdef-cookie", "xat-0123456789abcdef"]
    now = datetime.now(UTC)
    body = task_body("echo", target.url("/headers"), headers=secrets, method="GET")
    body["schedule"] = {"at": (now + timedelta(seconds=2)).isoformat()}
    with pg_engine.begin() as conn:
        task = task_service.add_task(conn, "acme", body, now, settings)
    stack.start("worker", "all")
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 1), 60), stack.logs()
    [received] = target.snapshot()
    assert received.headers["Authorization"] == TOKEN  # the target did get them
    with pg_engine.connect() as conn:
        [shown] = executions.list_executions(conn, "acme", task_id=task["id"])["items"]
    assert shown["status"] == "succeeded", shown
    excerpt = shown["response_excerpt"]
    assert '"X-Team": "billing"' in excerpt and '"Authorization": "[redacted]"' in excerpt
    backend = redis.Redis.from_url(redis_url)
    results = [backend.get(key) or b"" for key in backend.scan_iter("celery-task-meta-*")]
    assert any(b"response_excerpt" in r for r in results)  # the chord's results are there
    stack.stop_all()  # every line written
    log = "\n".join(path.read_text() for path in stack.log_dir.glob("*.log"))
    fired = re.search(r"Task taskhub\.fire_triggers\[[0-9a-f-]+\] succeeded in \S+s: (.*)", log)
    assert fired is not None and fired.group(1) == "(result not logged)", log
    for value in values:
        assert value not in excerpt
        assert value not in log, value
        assert not any(value.encode() in r for r in results), value


# --- the CLI (no TASKHUB_ENCRYPTION_KEYS: the generated development key) ------------------


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path)
    cli("db", "upgrade")
    yield cli


def test_cli_signing_secrets_and_masked_headers(cli: Cli, tmp_path: Path) -> None:
    created = cli("signing-secret", "create", "--tenant", "acme")
    secret = created.stdout.strip()
    assert created.stdout == secret + "\n" and secret.startswith("whsec_")
    assert "not shown again" in created.stderr and secret not in created.stderr
    key_file = tmp_path / "data" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    cli("signing-secret", "create", "--tenant", "acme")
    third = cli("signing-secret", "create", "--tenant", "acme", expect=4)
    assert "revoke" in third.stderr
    listed = cli("signing-secret", "list", "--tenant", "acme", "--json")
    items = json.loads(listed.stdout)["items"]
    assert len(items) == 2 and secret not in listed.stdout
    table = cli("signing-secret", "list")
    assert "HINT" in table.stdout and secret not in table.stdout
    revoked = cli("signing-secret", "revoke", items[1]["id"])
    assert "revoked" in revoked.stdout and secret not in revoked.stdout
    cli("signing-secret", "revoke", "nope", expect=3)

    definition = tmp_path / "task.json"
    definition.write_text(json.dumps(task_body(headers=HEADERS)))
    task_id = cli("task", "add", str(definition), "--tenant", "acme").stdout.strip()
    shown = cli("task", "show", task_id, "--tenant", "acme", "--json").stdout
    assert json.loads(shown)["target"]["headers"]["Authorization"] == "Bearer ****WXYZ"
    assert "sk_live" not in shown

    # Another key cannot open what was sealed: a clear error naming the variable.
    other = {**cli.env, "TASKHUB_ENCRYPTION_KEYS": _other_key()}
    cli.env = other
    wrong = cli("task", "show", task_id, "--tenant", "acme", expect=1)
    assert "TASKHUB_ENCRYPTION_KEYS" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "sk_live" not in wrong.stderr


def _other_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# --- SSRF at fire time: the execution ends, clearly, and is not retried ------------------


def test_a_name_resolving_to_a_blocked_address_fails_the_execution_once(engine: Engine) -> None:
    settings = load({"TASKHUB_ENCRYPTION_KEYS": os.environ["TASKHUB_ENCRYPTION_KEYS"]})
    assert not settings.allow_private_targets
    now = T0
    with engine.begin() as conn:
        body = task_body("internal", "http://localhost:9/hook", timeout_seconds=2)
        body["retry"] = {"max_attempts": 5}
        task = task_service.add_task(conn, "acme", body, now, settings)  # a name: accepted
        execution = task_service.run_task_now(conn, "acme", task["id"], now)
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, settings, published.extend, lambda: now)
    outcomes = firing.fire(published, settings)
    writeback.record_outcomes(engine, outcomes, settings, now, lambda: 0.5)
    with engine.connect() as conn:
        shown = executions.get_execution(conn, "acme", str(execution["id"]))
    assert shown["status"] == "failed"
    assert shown["attempts"] == 1 and shown["next_attempt_at"] is None
    assert shown["error"].startswith("blocked_address: localhost resolves to a loopback")
