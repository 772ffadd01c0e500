"""Per-tenant quotas, on SQLite and PostgreSQL: the task count and the schedule limit
through the API and the CLI, the rates through the API (on its controllable clock), the
last slot under concurrent creates, and the rates shared by two real API processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.errors import QuotaExceeded, RateLimited
from taskhub.core.settings import load
from taskhub.db import schema
from taskhub.db.models import executions, scheduled_tasks, tenant_quotas, tenant_rate_windows
from taskhub.service import quotas, task_service
from tests.support.api import Api, dump, new_key, task_body
from tests.support.cli import Cli
from tests.support.engine import make_dead
from tests.support.processes import free_port, wait_until

#: The default settings: every limit the TASKHUB_TENANT_* defaults.
DEFAULTS = load({})
T0 = datetime(2030, 1, 7, 12, 0, 20, tzinfo=UTC)  # 20 s into a minute


def set_limits(engine: Engine, tenant: str, **limits: int | None) -> None:
    with engine.begin() as conn:
        quotas.set_limits(conn, tenant, limits, datetime.now(UTC), DEFAULTS)


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


# --- tasks held -----------------------------------------------------------------------


def test_a_create_beyond_max_tasks_is_refused_naming_the_limit(api: Api) -> None:
    set_limits(api.engine, "acme", max_tasks=3)
    ids = [api.create(f"t{i}").json()["id"] for i in range(3)]
    before = dump(api.engine)
    error = api.error(api.create("t3"), 409)
    assert error["code"] == "quota_exceeded" and error["field"] is None
    assert "max_tasks limit is 3" in error["message"] and "holds 3 tasks" in error["message"]
    assert dump(api.engine) == before
    # Another tenant has its own count; a deleted task frees its slot.
    assert api.b.post("/v1/tasks", json=task_body("t3")).status_code == 201
    assert api.a.delete(f"/v1/tasks/{ids[0]}").status_code == 204
    assert api.create("t3").status_code == 201
    # A paused or finished task is still held.
    assert api.a.post(f"/v1/tasks/{ids[1]}/pause").status_code == 200
    assert api.error(api.create("t4"), 409)["code"] == "quota_exceeded"


def test_max_tasks_defaults_to_the_setting(engine: Engine) -> None:
    api = Api(engine, T0, load({"TASKHUB_TENANT_MAX_TASKS": "2"}))
    assert [api.create(f"t{i}").status_code for i in range(3)] == [201, 201, 409]
    set_limits(api.engine, "acme", max_tasks=5)  # its own limit wins
    assert api.create("t2").status_code == 201
    set_limits(api.engine, "acme", max_tasks=None)  # back to the default
    assert "max_tasks limit is 2" in api.error(api.create("t3"), 409)["message"]


# --- how often a schedule fires -------------------------------------------------------


def test_a_schedule_denser_than_the_limit_is_refused_naming_its_field(api: Api) -> None:
    before = dump(api.engine)
    error = api.error(api.create("fast", {"interval_seconds": 1}), 422)
    assert error["field"] == "schedule.interval_seconds"
    assert "at least 60" in error["message"] and "min_interval_seconds" in error["message"]
    assert dump(api.engine) == before
    assert api.create("minutely", {"cron": "* * * * *"}).status_code == 201  # 60 s: allowed
    set_limits(api.engine, "acme", min_interval_seconds=900)
    error = api.error(api.create("five", {"cron": "*/5 * * * *"}), 422)
    assert error["field"] == "schedule.cron"
    assert "every 5 min" in error["message"] and "limit of 900" in error["message"]
    evening = {"cron": "45 0,23 * * *"}  # 23:45 -> 00:45: an hour apart across midnight
    set_limits(api.engine, "acme", min_interval_seconds=7200)
    assert api.error(api.create("evening", evening), 422)["field"] == "schedule.cron"
    assert api.create("daily", {"cron": "0 9 * * *", "timezone": "Asia/Taipei"}).status_code == 201
    assert api.create("once", {"at": "2030-02-01T00:00:00Z"}).status_code == 201
    # Another tenant keeps the default.
    other = api.b.post("/v1/tasks", json=task_body("five", schedule={"cron": "*/5 * * * *"}))
    assert other.status_code == 201


def test_a_patch_to_a_denser_schedule_is_refused_and_other_patches_are_not(api: Api) -> None:
    task = api.create("minutely", {"cron": "* * * * *"}).json()
    set_limits(api.engine, "acme", min_interval_seconds=300)
    before = dump(api.engine)
    for schedule, field in [
        ({"interval_seconds": 120}, "schedule.interval_seconds"),
        ({"cron": "*/2 * * * *"}, "schedule.cron"),
    ]:
        response = api.a.patch(f"/v1/tasks/{task['id']}", json={"schedule": schedule})
        assert api.error(response, 422)["field"] == field
    assert dump(api.engine) == before
    # A task stored before the limit was raised keeps its schedule and stays patchable.
    renamed = api.a.patch(f"/v1/tasks/{task['id']}", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["schedule"]["cron"] == "* * * * *"
    slower = api.a.patch(f"/v1/tasks/{task['id']}", json={"schedule": {"interval_seconds": 300}})
    assert slower.status_code == 200


# --- rates ----------------------------------------------------------------------------


def test_requests_beyond_the_rate_get_429_with_retry_after(engine: Engine) -> None:
    # Every request reads the rate: the changes below apply at once (an API process
    # otherwise trusts the rate it read for TASKHUB_API_KEY_CACHE_SECONDS, test_apikeys).
    api = Api(engine, T0, load({"TASKHUB_API_KEY_CACHE_SECONDS": "0"}))
    set_limits(api.engine, "acme", requests_per_second=5)
    assert [api.a.get("/v1/tasks").status_code for _ in range(5)] == [200] * 5
    before = dump(api.engine)
    refused = api.a.post("/v1/tasks", json=task_body("late"))
    error = api.error(refused, 429)
    assert refused.headers["Retry-After"] == "1"
    assert error["code"] == "rate_limited"
    assert "requests_per_second limit is 5" in error["message"]
    assert dump(api.engine) == before
    assert api.b.get("/v1/tasks").status_code == 200  # another tenant's own budget
    api.clock.now += timedelta(seconds=1)
    assert api.a.get("/v1/tasks").status_code == 200
    with api.engine.connect() as conn:
        windows = conn.execute(sa.select(tenant_rate_windows)).mappings().all()
    hits = {(w["tenant"], w["kind"]): w["hits"] for w in windows}
    assert hits == {("acme", "requests"): 1, ("other", "requests"): 1}
    set_limits(api.engine, "acme", requests_per_second=0)  # no limit
    assert {api.a.get("/v1/tasks").status_code for _ in range(20)} == {200}


def test_run_now_and_redrive_share_a_budget_per_minute(api: Api) -> None:
    set_limits(api.engine, "acme", runs_per_minute=3)
    task = api.a.post("/v1/tasks", json=task_body("t") | {"retry": {"max_attempts": 1}}).json()
    runs = [api.a.post(f"/v1/tasks/{task['id']}/run") for _ in range(2)]
    assert [r.status_code for r in runs] == [202, 202]
    make_dead(api.engine, runs[0].json()["id"])
    assert api.a.post(f"/v1/dead-letters/{runs[0].json()['id']}/redrive").status_code == 200
    before = dump(api.engine)
    refused = api.a.post(f"/v1/tasks/{task['id']}/run")
    error = api.error(refused, 429)
    assert refused.headers["Retry-After"] == "40"  # T0 is 20 s into its minute
    assert "runs_per_minute limit is 3" in error["message"]
    bulk = api.a.post("/v1/dead-letters/redrive", json={"all": True})
    assert api.error(bulk, 429)["code"] == "rate_limited"
    assert dump(api.engine) == before
    assert api.a.get(f"/v1/tasks/{task['id']}").status_code == 200  # other calls go on
    api.clock.now += timedelta(seconds=40)
    assert api.a.post(f"/v1/tasks/{task['id']}/run").status_code == 202


def test_the_429_is_in_the_openapi_document(api: Api) -> None:
    document = api.a.get("/openapi.json").json()
    run = document["paths"]["/v1/tasks/{task_id}/run"]["post"]["responses"]
    assert "Retry-After" in run["429"]["headers"]


# --- the last slot --------------------------------------------------------------------


def test_concurrent_creates_end_at_exactly_the_limit(engine: Engine) -> None:
    """Eight threads, each with its own connection, create 40 tasks at once against a
    limit of 20: exactly 20 are stored, every other create is refused."""
    set_limits(engine, "acme", max_tasks=20)
    start = threading.Barrier(8)

    def creates(thread: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        start.wait()
        for i in range(5):
            try:
                with engine.begin() as conn:
                    task_service.add_task(
                        conn, "acme", task_body(f"t{thread}-{i}"), datetime.now(UTC), DEFAULTS
                    )
                outcomes["created"] += 1
            except QuotaExceeded:
                outcomes["refused"] += 1
        return outcomes

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(creates, range(8)), Counter())
    assert total == Counter(created=20, refused=20)
    with engine.connect() as conn:
        assert quotas.tasks_held(conn, "acme") == 20


@pytest.fixture
def two_api_processes(postgres_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two real ``taskhub api`` processes over one PostgreSQL database."""
    schema.upgrade(postgres_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
    env.update(
        TASKHUB_DATABASE_URL=postgres_url,
        TASKHUB_DATA_DIR=str(tmp_path / "data"),
        TASKHUB_LOG_LEVEL="WARNING",
    )
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "taskhub.cli", "api", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            assert wait_until(partial(_healthy, url), 60), f"{url} did not start"
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_api_processes_share_the_last_slot_and_the_rate(
    two_api_processes: list[str], postgres_url: str
) -> None:
    from taskhub.db import engines

    engine = engines.create_engine(postgres_url)
    try:
        key = new_key(engine, "acme")
        set_limits(engine, "acme", max_tasks=15, runs_per_minute=10, requests_per_second=0)
        headers = {"Authorization": f"Bearer {key}"}
        clients = [httpx.Client(base_url=u, headers=headers, timeout=30) for u in two_api_processes]

        def create(i: int) -> int:
            return clients[i % 2].post("/v1/tasks", json=task_body(f"t{i}")).status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = Counter(pool.map(create, range(40)))
        assert statuses == Counter({201: 15, 409: 25})
        with engine.connect() as conn:
            assert quotas.tasks_held(conn, "acme") == 15
            task_id = conn.execute(sa.select(scheduled_tasks.c.id).limit(1)).scalar_one()

        # Runs: 10 a clock minute across both processes. Start early in a minute, so the
        # 30 calls (a second or two) all fall in one window.
        if datetime.now(UTC).second > 45:
            time.sleep(61 - datetime.now(UTC).second)

        def run(i: int) -> int:
            return clients[i % 2].post(f"/v1/tasks/{task_id}/run").status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = Counter(pool.map(run, range(30)))
        assert statuses == Counter({202: 10, 429: 20})
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(executions)).scalar() == 10
        for c in clients:
            c.close()
    finally:
        engine.dispose()


# --- the CLI --------------------------------------------------------------------------


def test_the_cli_sets_and_shows_limits_and_obeys_them(tmp_path: Path, database_url: str) -> None:
    cli = Cli(tmp_path)
    cli.env["TASKHUB_DATABASE_URL"] = database_url
    cli("db", "upgrade")
    shown = cli.json("tenant", "limits", "show", "acme")
    assert shown["limits"]["max_tasks"] == {"value": 10_000, "source": "default"}
    assert shown["tasks_held"] == 0
    shown = cli.json(
        "tenant", "limits", "set", "acme", "--max-tasks", "1", "--min-interval-seconds", "300"
    )
    assert shown["limits"]["max_tasks"] == {"value": 1, "source": "tenant"}
    assert shown["limits"]["min_interval_seconds"] == {"value": 300, "source": "tenant"}
    assert shown["limits"]["runs_per_minute"] == {"value": 60, "source": "default"}

    def add(name: str, schedule: dict[str, Any], expect: int) -> str:
        body = task_body(name, schedule=schedule)
        done = cli("task", "add", "-", "--tenant", "acme", stdin=json.dumps(body), expect=expect)
        return done.stderr

    refused = add("a", {"interval_seconds": 60}, 2)
    assert "schedule.interval_seconds: must be at least 300" in refused
    add("a", {"interval_seconds": 300}, 0)
    assert "max_tasks limit is 1" in add("b", {"interval_seconds": 300}, 4)
    text = cli("tenant", "limits", "show", "acme").stdout
    assert "max_tasks:            1, its own" in text and "tasks held:           1" in text
    cli("tenant", "limits", "set", "acme", "--max-tasks", "default")
    add("b", {"interval_seconds": 300}, 0)
    wrong = cli("tenant", "limits", "set", "acme", "--runs-per-minute", "-5", expect=2)
    assert "runs_per_minute: must be a whole number" in wrong.stderr
    cli("tenant", "limits", "set", "acme", expect=2)  # no limit named
    cli.env["TASKHUB_TENANT_MAX_TASKS"] = "0"
    refused_setting = cli("tenant", "limits", "show", "acme", expect=2)
    assert "TASKHUB_TENANT_MAX_TASKS" in refused_setting.stderr


def test_limits_are_stored_per_tenant(engine: Engine) -> None:
    set_limits(engine, "acme", max_tasks=7, requests_per_second=0)
    set_limits(engine, "acme", max_tasks=8)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tenant_quotas)).mappings().all()
        assert quotas.limits_of(conn, "other", DEFAULTS).own == frozenset()
    assert [(r["tenant"], r["max_tasks"], r["requests_per_second"]) for r in rows] == [
        ("acme", 8, 0)
    ]


def test_migration_0008_adds_the_quota_tables_and_takes_them_back(database_url: str) -> None:
    from alembic import command

    from taskhub.db import engines

    schema.upgrade(database_url, "0007")
    engine = engines.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert "tenant_quotas" not in sa.inspect(conn).get_table_names()
        schema.upgrade(database_url)
        set_limits(engine, "acme", max_tasks=1, runs_per_minute=0)
        with engine.begin() as conn:
            task_service.add_task(conn, "acme", task_body("kept"), datetime.now(UTC), DEFAULTS)
            quotas.count_call(conn, "acme", quotas.REQUESTS, datetime.now(UTC), DEFAULTS)
        with pytest.raises(QuotaExceeded), engine.begin() as conn:
            task_service.add_task(conn, "acme", task_body("refused"), datetime.now(UTC), DEFAULTS)
        command.downgrade(schema.alembic_config(database_url), "0007")
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            assert "tenant_quotas" not in names and "tenant_rate_windows" not in names
            stored = conn.execute(sa.select(scheduled_tasks.c.name)).scalars().all()
        assert stored == ["kept"]
        schema.upgrade(database_url)
        with engine.connect() as conn:
            assert quotas.limits_of(conn, "acme", DEFAULTS).own == frozenset()  # defaults again
    finally:
        engine.dispose()


def test_a_call_from_a_lagging_clock_counts_toward_the_later_window(engine: Engine) -> None:
    set_limits(engine, "acme", requests_per_second=2)
    for moment in (T0 + timedelta(seconds=1), T0):  # the second process's clock lags
        with engine.begin() as conn:
            quotas.count_call(conn, "acme", quotas.REQUESTS, moment, DEFAULTS)
    with pytest.raises(RateLimited) as refused, engine.begin() as conn:
        quotas.count_call(conn, "acme", quotas.REQUESTS, T0, DEFAULTS)
    assert refused.value.retry_after_s == 2  # until the later window ends
    with engine.connect() as conn:
        row = conn.execute(sa.select(tenant_rate_windows)).mappings().one()
    assert (row["window_start"], row["hits"]) == (int(T0.timestamp()) + 1, 2)
    with engine.begin() as conn:  # the next window starts afresh
        quotas.count_call(conn, "acme", quotas.REQUESTS, T0 + timedelta(seconds=2), DEFAULTS)


# --- the count of tasks held ----------------------------------------------------------


def _counted(engine: Engine, tenant: str) -> tuple[int, int]:
    """(the tenant's counter, its tasks counted one by one)."""
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count()).where(scheduled_tasks.c.tenant == tenant)
        ).scalar_one()
        return quotas.tasks_held(conn, tenant), int(stored)


def test_tasks_held_is_kept_by_every_insert_and_delete(api: Api) -> None:
    """Creates through the API, a batch, a loader's create (no quota checked), deletes one
    by one and in a batch: the counter is the count each time; a refused create, or a
    batch item refused, changes it not."""
    engine = api.engine
    assert _counted(engine, "acme") == (0, 0)
    ids = [api.create(f"t{i}").json()["id"] for i in range(3)]
    assert _counted(engine, "acme") == (3, 3)
    api.error(api.create("t0"), 409)  # the name is taken
    assert _counted(engine, "acme") == (3, 3)
    batch = {"tasks": [task_body("b0"), task_body("b1"), task_body("t1")], "delete": ["t2"]}
    assert api.a.post("/v1/tasks:batch", json=batch).json()["counts"]["created"] == 2
    assert _counted(engine, "acme") == (4, 4)
    with engine.begin() as conn:
        definition = task_service.parse_task(task_body("loaded"), T0, DEFAULTS)
        task_service.create_task(conn, definition, T0, DEFAULTS, "acme")
    assert _counted(engine, "acme") == (5, 5)
    assert api.a.delete(f"/v1/tasks/{ids[0]}").status_code == 204
    assert api.a.post("/v1/tasks:batch", json={"delete": ["b0", "b1"]}).status_code == 200
    assert _counted(engine, "acme") == (2, 2)
    assert _counted(engine, "other") == (0, 0)


def test_a_full_tenant_hears_of_its_quota_before_a_taken_name(api: Api) -> None:
    set_limits(api.engine, "acme", max_tasks=1)
    assert api.create("t").status_code == 201
    assert api.error(api.create("t"), 409)["code"] == "quota_exceeded"
    set_limits(api.engine, "acme", max_tasks=2)
    error = api.error(api.create("t"), 409)
    assert (error["code"], error["field"]) == ("conflict", "name")
    assert _counted(api.engine, "acme") == (1, 1)


def test_migration_0020_counts_the_tasks_held_and_goes_back(database_url: str) -> None:
    """Tenants with and without a row of limits, and one with a row but no tasks, are
    counted once at the upgrade; creates then count on."""
    from alembic import command

    from taskhub.db import engines

    schema.upgrade(database_url, "0019")
    engine = engines.create_engine(database_url)
    try:
        held = {"acme": 3, "globex": 2}
        rows = [
            {
                "id": uuid.uuid4(),
                "tenant": tenant,
                "name": f"{tenant}-{i}",
                "schedule_kind": "interval",
                "interval_seconds": 3600,
                "url": "https://example.com/hook",
                "headers": {},
                "tags": {},
                "created_at": T0,
                "updated_at": T0,
            }
            for tenant, count in held.items()
            for i in range(count)
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(scheduled_tasks), rows)
            for tenant in ("acme", "empty"):
                conn.execute(sa.insert(tenant_quotas).values(tenant=tenant, max_tasks=4))
        schema.upgrade(database_url)
        assert [_counted(engine, t) for t in ("acme", "globex", "empty")] == [
            (3, 3),
            (2, 2),
            (0, 0),
        ]
        api = Api(engine, T0)
        assert api.create("a").status_code == 201
        assert api.error(api.create("b"), 409)["code"] == "quota_exceeded"  # 4 of 4
        command.downgrade(schema.alembic_config(database_url), "0019")
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("tenant_quotas")}
        assert "tasks_held" not in columns
        schema.upgrade(database_url)
        assert _counted(engine, "acme") == (4, 4)
    finally:
        engine.dispose()
