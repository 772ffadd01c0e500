"""Shared fixtures: real PostgreSQL, SQLite and Redis.

Under ``CI=true`` a missing PostgreSQL or Redis fails the run; on a laptop without them
the tests that need them are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import Engine

from taskhub.db import engines, schema
from tests.support.engine import running_stack
from tests.support.processes import Stack
from tests.support.target import Target, running_target

# Tests check behaviour, never speed: no per-example deadline (on a loaded 2-core machine
# a correct example can take over hypothesis's default 200 ms and fail as "flaky").
hypothesis_settings.register_profile("taskhub", deadline=None)
hypothesis_settings.load_profile("taskhub")

POSTGRES_URL = os.environ.get(
    "TASKHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
#: Redis as the tests reach it; the db index is chosen per run (``redis_url``) unless
#: ``TASKHUB_TEST_REDIS_URL`` names one.
REDIS_SERVER = "redis://127.0.0.1:6379"
#: The db indexes a run may claim (0 holds the claims; 12 is the benchmark's).
REDIS_DBS = tuple(n for n in range(1, 16) if n != 12)
#: A claim outlives a run that died without releasing it by at most this long.
REDIS_CLAIM_S = 3 * 3600
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# One encryption key for the whole run, shared with the worker processes tests start
# (they inherit the environment), so what the test process seals a worker can unseal.
os.environ.setdefault("TASKHUB_ENCRYPTION_KEYS", Fernet.generate_key().decode("ascii"))


def service_missing(name: str, error: Exception) -> None:
    message = f"{name} is not reachable ({error.__class__.__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(f"{message}; start it to run this test")


def _pg_admin_url() -> str:
    return POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"taskhub_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_pg_admin_url(), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        service_missing("PostgreSQL", error)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = _pg_admin_url().rsplit("/", 1)[0]
    yield f"{base}/{name}"
    engines.dispose_after_fork()
    with psycopg.connect(_pg_admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'taskhub.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """One test body, run against each backend (saq's way)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


def _migrated_engine(url: str) -> Iterator[Engine]:
    schema.upgrade(url)
    engine = engines.create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated database, for each backend."""
    yield from _migrated_engine(database_url)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """An engine on a migrated PostgreSQL database (what worker processes share)."""
    yield from _migrated_engine(postgres_url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis db of this run's own: the tests flush it and workers use it as their broker,
    so two runs on one host (a CI run beside a developer's) must not share one. The run
    claims a free index with a key in db 0 that it deletes at the end (and that expires
    if the run dies). ``TASKHUB_TEST_REDIS_URL`` names a db to use instead."""
    given = os.environ.get("TASKHUB_TEST_REDIS_URL")
    claims = redis.Redis.from_url(f"{REDIS_SERVER}/0", socket_connect_timeout=3)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    claimed: str | None = None
    try:
        claims.ping()
        if given is None:
            for db in REDIS_DBS:
                if claims.set(f"taskhub-test-run:{db}", token, nx=True, ex=REDIS_CLAIM_S):
                    claimed = f"taskhub-test-run:{db}"
                    given = f"{REDIS_SERVER}/{db}"
                    break
            else:
                pytest.fail("every Redis db is claimed by another test run", pytrace=False)
    except redis.RedisError as error:
        claims.close()
        service_missing("Redis", error)
    assert given is not None
    try:
        yield given
    finally:
        if claimed is not None and claims.get(claimed) == token.encode():
            claims.delete(claimed)
        claims.close()


@pytest.fixture
def target() -> Iterator[Target]:
    """A real HTTP target on loopback that records every request it receives."""
    with running_target() as target:
        yield target


@pytest.fixture
def stack(postgres_url: str, redis_url: str, pg_engine: Engine, tmp_path: Path) -> Iterator[Stack]:
    """Real worker and beat processes (none started yet) on a fresh PostgreSQL database
    and the test Redis db; every one is stopped at teardown."""
    with running_stack(postgres_url, redis_url, tmp_path) as stack:
        yield stack
