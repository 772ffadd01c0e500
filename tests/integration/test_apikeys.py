"""API keys on both backends: only a digest is stored, malformed keys are refused
quietly, revocation is immediate, and the ``taskhub apikey`` command works as a script
would drive it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from taskhub.core.errors import ValidationError
from taskhub.db.models import api_keys
from taskhub.service import apikeys
from tests.support.cli import Cli

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def create(engine: Engine, tenant: str, now: datetime = NOW) -> tuple[str, apikeys.ApiKey]:
    with engine.begin() as conn:
        return apikeys.create_key(conn, tenant, now)


def authenticate(engine: Engine, presented: str, now: datetime = NOW) -> str | None:
    with engine.begin() as conn:
        return apikeys.authenticate(conn, presented, now)


def stored_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(api_keys)).mappings()]


def secret_of(key: str) -> str:
    return key.split("_", 2)[2]


def test_a_new_key_authenticates_as_its_tenant(engine: Engine) -> None:
    key, stored = create(engine, "acme")
    assert key.startswith(f"th_{stored.prefix}_")
    assert len(secret_of(key)) == 32
    assert stored.tenant == "acme"
    assert stored.created_at == NOW
    assert stored.revoked_at is None and stored.last_used_at is None
    assert authenticate(engine, key) == "acme"


def test_only_a_digest_of_the_secret_is_stored(engine: Engine) -> None:
    key, stored = create(engine, "acme")
    secret = secret_of(key)
    [row] = stored_rows(engine)
    for column, value in row.items():
        assert secret not in str(value), column
        assert key not in str(value), column
    assert row["prefix"] == stored.prefix
    assert len(row["secret_hash"]) == 64
    field_names = {field.name for field in dataclasses.fields(apikeys.ApiKey)}
    assert field_names == {"id", "tenant", "prefix", "created_at", "revoked_at", "last_used_at"}


def test_a_wrong_secret_or_an_unknown_prefix_is_refused(engine: Engine) -> None:
    key, stored = create(engine, "acme")
    secret = secret_of(key)
    wrong_secret = f"th_{stored.prefix}_{'A' * 32}"
    other_prefix = "a" * 8 if stored.prefix != "a" * 8 else "b" * 8
    assert authenticate(engine, wrong_secret) is None
    assert authenticate(engine, f"th_{other_prefix}_{secret}") is None
    assert authenticate(engine, key[:-1]) is None
    assert authenticate(engine, key + "x") is None
    assert authenticate(engine, key.upper()) is None
    assert authenticate(engine, f"Bearer {key}") is None
    assert authenticate(engine, "") is None
    assert authenticate(engine, key) == "acme"


# Strings near the key format as well as arbitrary text (NUL bytes included, which
# PostgreSQL would refuse in a query: malformed input must never reach the database).
_KEYISH = st.builds(
    lambda prefix, secret: f"th_{prefix}_{secret}",
    st.text(max_size=12),
    st.text(max_size=40),
)
_SECRETISH = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=32,
    max_size=32,
)
_WELL_FORMED_WRONG = st.builds(
    lambda prefix, secret: f"th_{prefix}_{secret}",
    st.text(alphabet=apikeys.PREFIX_ALPHABET, min_size=8, max_size=8),
    _SECRETISH,
)


@pytest.fixture
def known_key(engine: Engine) -> tuple[str, apikeys.ApiKey]:
    """A stored key, so that well-formed guesses can aim at a real prefix (made once for
    all of a hypothesis test's examples)."""
    return create(engine, "acme")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(presented=st.one_of(st.text(max_size=80), _KEYISH, _WELL_FORMED_WRONG), guess=_SECRETISH)
def test_malformed_or_wrong_keys_are_none_and_never_raise(
    engine: Engine, known_key: tuple[str, apikeys.ApiKey], presented: str, guess: str
) -> None:
    key, stored = known_key
    assume(presented != key and guess != secret_of(key))
    assert authenticate(engine, presented) is None
    assert authenticate(engine, f"th_{stored.prefix}_{guess}") is None
    masked = apikeys.mask(presented)
    assert masked == "…" or (masked == f"th_{presented.split('_')[1]}_…" and len(masked) == 13)


def test_a_revoked_key_is_refused_and_revoking_is_idempotent(engine: Engine) -> None:
    key, stored = create(engine, "acme")
    later = NOW + timedelta(hours=1)
    with engine.begin() as conn:
        revoked = apikeys.revoke_key(conn, str(stored.id), later)
    assert revoked is not None and revoked.revoked_at == later and revoked.id == stored.id
    assert authenticate(engine, key, later) is None
    with engine.begin() as conn:
        again = apikeys.revoke_key(conn, stored.prefix, later + timedelta(hours=1))
    assert again == revoked  # the first revocation time is kept
    with engine.begin() as conn:
        assert apikeys.revoke_key(conn, "zzzzzzzz", later) is None
        assert apikeys.revoke_key(conn, "00000000-0000-0000-0000-000000000000", later) is None
        assert apikeys.revoke_key(conn, "", later) is None
        assert apikeys.revoke_key(conn, "not a key\x00", later) is None


def test_a_key_can_be_revoked_by_its_masked_form_or_itself(engine: Engine) -> None:
    first, _ = create(engine, "acme")
    second, _ = create(engine, "acme")
    with engine.begin() as conn:
        assert apikeys.revoke_key(conn, apikeys.mask(first), NOW) is not None
        assert apikeys.revoke_key(conn, second, NOW) is not None
    assert authenticate(engine, first) is None
    assert authenticate(engine, second) is None


def test_two_tenants_keys_are_distinct(engine: Engine) -> None:
    acme_key, acme = create(engine, "acme")
    globex_key, globex = create(engine, "globex")
    acme_key_2, acme_2 = create(engine, "acme")
    assert len({acme_key, globex_key, acme_key_2}) == 3
    assert len({acme.prefix, globex.prefix, acme_2.prefix}) == 3
    assert authenticate(engine, acme_key) == "acme"
    assert authenticate(engine, acme_key_2) == "acme"
    assert authenticate(engine, globex_key) == "globex"
    with engine.begin() as conn:
        apikeys.revoke_key(conn, acme.prefix, NOW)
    assert authenticate(engine, acme_key) is None
    assert authenticate(engine, acme_key_2) == "acme"
    assert authenticate(engine, globex_key) == "globex"


@pytest.fixture
def updates(engine: Engine) -> Iterator[list[str]]:
    """The UPDATE statements sent to the database while the test runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


def last_used(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(sa.select(api_keys.c.last_used_at)).scalar_one()
        return value


def test_last_used_at_is_written_at_most_once_a_minute(engine: Engine, updates: list[str]) -> None:
    key, _ = create(engine, "acme")
    assert last_used(engine) is None
    assert authenticate(engine, key, NOW) == "acme"
    assert last_used(engine) == NOW and len(updates) == 1
    for seconds in (1, 30, 59, 60):
        assert authenticate(engine, key, NOW + timedelta(seconds=seconds)) == "acme"
    assert last_used(engine) == NOW and len(updates) == 1  # no write per request
    assert authenticate(engine, key, NOW + timedelta(seconds=61)) == "acme"
    assert last_used(engine) == NOW + timedelta(seconds=61) and len(updates) == 2
    # A refused key is never touched.
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert authenticate(engine, wrong, NOW + timedelta(days=1)) is None
    assert len(updates) == 2
    with engine.connect() as conn:
        [stored] = apikeys.list_keys(conn)
    assert stored.last_used_at == NOW + timedelta(seconds=61)


def test_listing_never_exposes_secrets(engine: Engine) -> None:
    first_key, first = create(engine, "acme", NOW)
    second_key, second = create(engine, "acme", NOW + timedelta(seconds=1))
    globex_key, globex = create(engine, "globex", NOW + timedelta(seconds=2))
    with engine.connect() as conn:
        everyone = apikeys.list_keys(conn)
        acme_only = apikeys.list_keys(conn, "acme")
        nobody = apikeys.list_keys(conn, "initech")
    assert [k.id for k in everyone] == [globex.id, second.id, first.id]  # newest first
    assert [k.id for k in acme_only] == [second.id, first.id]
    assert nobody == []
    shown = repr(everyone) + json.dumps([k.to_dict() for k in everyone])
    digests = [row["secret_hash"] for row in stored_rows(engine)]
    for key in (first_key, second_key, globex_key):
        assert secret_of(key) not in shown
    for digest in digests:
        assert digest not in shown
    assert first.masked == f"th_{first.prefix}_…" == apikeys.mask(first_key)
    assert secret_of(first_key) not in apikeys.mask(first_key)


@pytest.mark.parametrize(
    "tenant",
    ["", "Acme", "-acme", ".acme", "_acme", "ac me", "acme\n", "ac/me", "acmé", "a" * 101],
)
def test_bad_tenant_names_are_refused_and_nothing_is_stored(engine: Engine, tenant: str) -> None:
    with pytest.raises(ValidationError) as refused, engine.begin() as conn:
        apikeys.create_key(conn, tenant, NOW)
    assert refused.value.field == "tenant"
    assert str(refused.value).startswith("tenant: ")
    assert stored_rows(engine) == []
    with pytest.raises(ValidationError) as refused, engine.connect() as conn:
        apikeys.list_keys(conn, tenant)
    assert refused.value.field == "tenant"


def test_upper_case_tenants_are_refused_with_a_hint(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="lower case: use 'acme'"), engine.begin() as conn:
        apikeys.create_key(conn, "ACME", NOW)


@pytest.mark.parametrize("tenant", ["a", "acme", "acme-prod.eu_1", "0", "a" * 100])
def test_good_tenant_names_are_accepted(engine: Engine, tenant: str) -> None:
    key, stored = create(engine, tenant)
    assert stored.tenant == tenant
    assert authenticate(engine, key) == tenant


# --- the command -----------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli("db", "upgrade")
    return cli


def test_the_command_creates_lists_and_revokes_keys(cli: Cli) -> None:
    created = cli("apikey", "create", "--tenant", "acme")
    key = created.stdout.strip()
    assert created.stdout == key + "\n"  # only the key: KEY=$(taskhub apikey create ...)
    assert "not shown again" in created.stderr and secret_of(key) not in created.stderr
    assert cli.authenticate(key) == "acme"
    prefix = key.split("_")[1]

    listed = cli("apikey", "list")
    assert prefix in listed.stdout and "acme" in listed.stdout and "PREFIX" in listed.stdout
    assert secret_of(key) not in listed.stdout + listed.stderr
    as_json = cli("apikey", "list", "--tenant", "acme", "--json")
    [item] = json.loads(as_json.stdout)["items"]
    assert item["prefix"] == prefix and item["tenant"] == "acme" and item["revoked_at"] is None
    assert secret_of(key) not in as_json.stdout
    assert json.loads(cli("apikey", "list", "--tenant", "globex", "--json").stdout) == {"items": []}

    revoked = cli("apikey", "revoke", prefix)
    assert "revoked" in revoked.stdout and prefix in revoked.stdout
    assert cli.authenticate(key) is None
    again = cli("apikey", "revoke", item["id"])
    assert "already revoked" in again.stdout
    [item] = json.loads(cli("apikey", "list", "--json").stdout)["items"]
    assert item["revoked_at"] is not None


def test_the_command_refuses_bad_input(cli: Cli) -> None:
    unknown = cli("apikey", "revoke", "zzzzzzzz", expect=3)
    assert "no API key" in unknown.stderr and "zzzzzzzz" in unknown.stderr
    pasted = "th_abcdefgh_" + "S" * 32
    unknown = cli("apikey", "revoke", pasted, expect=3)
    assert "S" * 32 not in unknown.stderr and "th_abcdefgh_…" in unknown.stderr

    bad = cli("apikey", "create", "--tenant", "Acme", expect=2)
    assert "tenant: must be lower case" in bad.stderr and bad.stdout == ""
    bad = cli("apikey", "create", "--tenant", "no spaces", expect=2)
    assert "tenant: " in bad.stderr
    cli("apikey", "create", expect=2)  # --tenant is required
    assert json.loads(cli("apikey", "list", "--json").stdout) == {"items": []}


# --- what an API process remembers ----------------------------------------------------


@pytest.mark.parametrize("cache_s", ["0", "300"])
def test_a_revoked_key_is_refused_once_the_process_reads_it_again(
    engine: Engine, cache_s: str
) -> None:
    """With ``TASKHUB_API_KEY_CACHE_SECONDS`` 0 a revocation is refused at the next
    request; with 300 the process trusts the key it checked until the time is up (a
    key it never checked is read at once either way), and then the rate it knew too."""
    from taskhub.core.settings import load
    from taskhub.service import quotas
    from tests.support.api import Api, client

    settings = load({"TASKHUB_API_KEY_CACHE_SECONDS": cache_s})
    api = Api(engine, NOW, settings)
    key, stored = create(engine, "acme")
    first = client(api.a.app, key)
    assert first.get("/v1/tasks").status_code == 200
    with engine.begin() as conn:
        apikeys.revoke_key(conn, stored.prefix, NOW)
        quotas.set_limits(conn, "acme", {"requests_per_second": 1}, NOW, settings)
    answers = [first.get("/v1/tasks").status_code for _ in range(3)]
    assert answers == ([401] * 3 if cache_s == "0" else [200] * 3)
    unchecked, _ = create(engine, "acme")
    with engine.begin() as conn:
        apikeys.revoke_key(conn, unchecked, NOW)
    assert client(api.a.app, unchecked).get("/v1/tasks").status_code == 401
