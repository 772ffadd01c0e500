"""The API at scale, measured from outside a real ``taskhub api`` process on PostgreSQL:
creates through ``POST /v1/tasks`` from several keep-alive clients, tasks through
``POST /v1/tasks:batch`` (1,000 definitions a request) from one client and from
several, and the reads of a tenant holding many tasks and executions (the task list's
first and a deep page, a task's executions) timed one request at a time.

The creates and batches are user-shaped definitions (``registration.user_definition``:
daily crons in seven zones POSTing JSON with a credential header) of tenants whose
limits an operator raised; the rows read are loaded in bulk as the console's benchmark
loads them (``console.load``), then the API process is started afresh over them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench import console, registration
from taskhub.core import limits
from taskhub.core.clock import utcnow
from taskhub.core.settings import load
from taskhub.db.models import scheduled_tasks
from taskhub.service import quotas

#: Where the tasks created here would send (they are never fired: nothing runs beat).
URL = "http://127.0.0.1:9/hook"
BATCH_TENANT = "bench-batch"


def _definitions(first: int, count: int) -> list[dict[str, Any]]:
    due = utcnow() + timedelta(hours=1)
    return [registration.user_definition(i, URL, due) for i in range(first, first + count)]


def _held(engine: Engine, tenant: str) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(scheduled_tasks.c.tenant == tenant)
        return int(conn.execute(query).scalar_one())


def _backends_cpu_s(engine: Engine) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to this database (the API
    process's connections, and this harness's one), by pid, from /proc."""
    with engine.connect() as conn:
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        used = {}
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            used[int(pid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


class _Cpu:
    """CPU seconds used from here on by the API process, its PostgreSQL backends and
    this process (the clients)."""

    def __init__(self, engine: Engine, served: console.Served) -> None:
        self.engine, self.served = engine, served
        self.api = served.cpu_s()
        self.database = _backends_cpu_s(engine)
        self.clients = time.process_time()

    def per_task_ms(self, tasks: int) -> dict[str, float]:
        api = self.served.cpu_s() - self.api
        clients = time.process_time() - self.clients
        database = sum(
            cpu - self.database.get(pid, 0.0) for pid, cpu in _backends_cpu_s(self.engine).items()
        )
        return {
            "api": round(api / tasks * 1000, 3),
            "postgresql": round(database / tasks * 1000, 3),
            "clients": round(clients / tasks * 1000, 3),
        }


def measure_writes(
    engine: Engine, env: dict[str, str], log: Path, creates: int, batches: int, clients: int
) -> dict[str, Any]:
    """``creates`` single creates from ``clients`` clients; then ``batches`` batches of
    :data:`limits.MAX_BATCH_ITEMS` from one client, and as many from ``clients`` at once;
    each rate with the CPU per task of the API process, of its PostgreSQL backends and of
    the clients (what sizing a deployment needs)."""
    size = limits.MAX_BATCH_ITEMS
    key = registration.tenant_key(engine, env, registration.TENANT, creates)
    batch_key = registration.tenant_key(engine, env, BATCH_TENANT, 2 * batches * size)
    single = [json.dumps(d).encode() for d in _definitions(0, creates)]
    batched = [
        json.dumps({"tasks": _definitions(first, size)}).encode()
        for first in range(0, 2 * batches * size, size)
    ]
    figures: dict[str, Any] = {}
    with console.api_process(env, log) as served:
        cpu = _Cpu(engine, served)
        seconds = registration.post_from_clients(served.port, key, "/v1/tasks", single, clients)
        figures["creates"] = {
            "through": "POST /v1/tasks",
            "clients": clients,
            "tasks": creates,
            "seconds": round(seconds, 2),
            "creates_per_s": round(creates / seconds),
            "cpu_ms_per_create": cpu.per_task_ms(creates),
        }
        stored = _held(engine, registration.TENANT)
        if stored != creates:
            raise SystemExit(f"{stored} tasks stored of {creates} created")
        for label, count, at_once in (
            ("batch_1_client", batches, 1),
            (f"batch_{clients}_clients", batches, clients),
        ):
            bodies, batched = batched[:count], batched[count:]
            before = _held(engine, BATCH_TENANT)
            cpu = _Cpu(engine, served)
            seconds = registration.post_from_clients(
                served.port, batch_key, "/v1/tasks:batch", bodies, at_once
            )
            used = cpu.per_task_ms(count * size)
            made = _held(engine, BATCH_TENANT) - before
            if made != count * size:
                raise SystemExit(f"{made} tasks stored of {count * size} sent in batches")
            figures[label] = {
                "through": "POST /v1/tasks:batch",
                "clients": at_once,
                "batches": count,
                "tasks_per_batch": size,
                "tasks": made,
                "seconds": round(seconds, 2),
                "tasks_per_s": round(made / seconds),
                "cpu_ms_per_task": used,
            }
    return figures


def measure_reads(
    engine: Engine,
    env: dict[str, str],
    log: Path,
    tasks: int,
    requests: int,
    budget_s: float,
) -> dict[str, Any]:
    """``tasks`` tasks of one tenant and a tenth as many of another, ten executions each
    (``console.load``); then the tenant's task list (first page, a page 90 % deep) and
    random tasks' executions, each timed ``requests`` times after 20 untimed."""
    started = time.perf_counter()
    loaded = console.load(engine, tasks, tasks // 10, load(env))
    load_s = time.perf_counter() - started
    with engine.begin() as conn:
        # The timed client asks one request at a time, faster than the default rate.
        quotas.set_limits(conn, console.TENANT, {"requests_per_second": 0}, utcnow(), load(env))
    sizes = console.table_sizes(engine)
    rng = random.Random(17)
    deep = console.deep_cursor(loaded)
    routes: dict[str, tuple[str, Callable[[], str]]] = {
        "tasks_first_page": ("/v1/tasks", lambda: "/v1/tasks"),
        "tasks_deep_page": ("/v1/tasks", lambda: f"/v1/tasks?cursor={deep}"),
        "task_executions": (
            "/v1/tasks/{task_id}/executions",
            lambda: f"/v1/tasks/{rng.choice(loaded.task_ids)}/executions",
        ),
    }
    timed: dict[str, Any] = {}
    with console.api_process(env, log) as served:
        client = console.Browser(served.port, {"Authorization": f"Bearer {loaded.api_key}"})
        for label, (route, path_of) in routes.items():
            status, _, text = client.request("GET", path_of())
            if status != 200 or not json.loads(text)["items"]:
                raise SystemExit(f"GET {path_of()} answered {status}: {text[:200]}")
            timed[label] = console.time_route(client, route, path_of, requests, 20, budget_s)
    return {
        "tasks": tasks,
        "noise_tasks": tasks // 10,
        "executions_per_task": console.EXECUTIONS_PER_TASK,
        "load_s": round(load_s, 1),
        "load_parts_s": loaded.seconds,
        "tables": sizes,
        "measured": "client-side on loopback, one keep-alive connection, one request at a "
        "time; server_mean_ms from the API's own request-duration histogram",
        "routes": timed,
    }
