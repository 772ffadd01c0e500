"""The console's speed: a tenant with 100,000 tasks and 1,000,000 executions, its pages
timed from outside a real ``taskhub api`` process.

The rows are written as the service writes them, but in bulk: a few seed tasks go
through ``task_service.create_task`` (validation, sealed credential headers, next
occurrences), then each task is a copy of a seed made by PostgreSQL with its own id,
name, creation time, state and counters; executions and their attempts are streamed
with ``COPY`` (each with its real idempotency key, ids in the order claims would have
made them: every task's oldest occurrence first). 100,000 API calls would take an hour
here and measure the API's writes, not the console's reads.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.clock import utcnow
from taskhub.core.definitions import parse_definition
from taskhub.core.occurrences import idempotency_key
from taskhub.core.schedules import Cron, next_fire_time
from taskhub.core.settings import Settings
from taskhub.db.models import attempts, executions, scheduled_tasks
from taskhub.service import apikeys, task_service
from tests.support.processes import free_port, wait_until

#: The tenant whose pages are timed, and the other tenant beside it (its rows are noise
#: the queries must skip).
TENANT = "acme"
NOISE_TENANT = "globex"
EXECUTIONS_PER_TASK = 10

#: Name prefixes: ``search`` matches one family (1/8 of the tasks) or one task.
FAMILIES = ("billing", "reports", "sync", "cleanup", "notify", "etl", "health", "backup")
WORDS = ("invoice", "export", "refresh", "purge", "digest", "load", "ping", "snapshot")

#: The seed tasks every bench task copies: (name, definition). Cron seeds share their
#: fire times (every copy fires together, as a team's copies of one job do); interval
#: seeds count from each copy's creation.
SEEDS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "seed-weekday",
        {
            "schedule": {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"},
            "target": {
                "url": "https://api.example.com/v1/invoices/run",
                "method": "POST",
                "headers": {
                    "Authorization": "Bearer sk_live_4f9c2a7e1b8d3f6a0c5e",
                    "Content-Type": "application/json",
                },
                "body": '{"batch": "daily", "dry_run": false}',
            },
            "tags": {"team": "billing", "env": "prod"},
        },
    ),
    (
        "seed-quarter-hour",
        {
            "schedule": {"cron": "*/15 * * * *"},
            "target": {"url": "https://reports.example.com/refresh", "method": "GET"},
            "tags": {"team": "reports", "env": "prod"},
        },
    ),
    (
        "seed-nightly",
        {
            "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
            "target": {
                "url": "https://etl.example.org/jobs/nightly",
                "method": "POST",
                "headers": {"X-Api-Key": "etl-7d1e9b3c5a", "Content-Type": "application/json"},
                "body": '{"full": true}',
                "timeout_seconds": 120,
            },
            "retry": {"max_attempts": 5, "backoff_seconds": 30},
            "tags": {"team": "data", "env": "prod"},
        },
    ),
    (
        "seed-five-minutes",
        {
            "schedule": {"interval_seconds": 300},
            "target": {"url": "https://status.example.net/ping", "method": "GET"},
            "tags": {"team": "platform", "env": "staging"},
        },
    ),
    (
        "seed-hourly-ten",
        {
            "schedule": {"interval_seconds": 3600},
            "target": {"url": "https://hooks.example.com/notify", "method": "POST"},
            "max_executions": 10,
            "tags": {"team": "growth", "env": "prod"},
        },
    ),
)

OK_EXCERPT = '{"ok":true,"processed":42}'
NOT_FOUND_EXCERPT = (
    "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
    "<p>The requested URL was not found on this server.</p></body></html>"
)
UNAVAILABLE_EXCERPT = '{"error":"service unavailable","retry":true}'


@dataclass
class Loaded:
    """What the loader made, for the harness: the timed tenant's API key and tasks."""

    api_key: str
    task_ids: list[str]  # the timed tenant's, in creation order
    created_at: list[datetime]
    names: list[str]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Task:
    id: uuid.UUID
    seed: str
    tenant: str
    name: str
    created_at: datetime
    state: str  # active | paused | auto_paused | finished


def _seed_fire_times(
    engine: Engine, now: datetime, settings: Settings
) -> dict[str, list[datetime]]:
    """The seeds through the service (as the API creates them); each cron seed's last
    ``EXECUTIONS_PER_TASK`` fire times before ``now`` and its next one."""
    times: dict[str, list[datetime]] = {}
    with engine.begin() as conn:
        for name, data in SEEDS:
            definition = parse_definition({"name": name, **data}, now)
            task_service.create_task(conn, definition, now, settings, "bench-seed")
            schedule = definition.schedule
            if isinstance(schedule, Cron):
                at, fires = now - timedelta(days=16), []
                while (at := next_fire_time(schedule, at)) is not None and at <= now:  # type: ignore[assignment]
                    fires.append(at)
                times[name] = [*fires[-EXECUTIONS_PER_TASK:], next_fire_time(schedule, now)]  # type: ignore[list-item]
    return times


def _tasks(count: int, tenant: str, now: datetime, rng: random.Random) -> list[_Task]:
    """``count`` tasks of ``tenant`` created over the past year (each at least 16 days
    ago, so that all its executions are younger than it): 85 % active, 8 % paused by a
    person, 2 % paused by their own failures, 5 % finished (the hour seed, run out)."""
    start, end = now - timedelta(days=400), now - timedelta(days=16)
    step = (end - start) / max(count, 1)
    tasks = []
    for i in range(count):
        draw = rng.random()
        if draw < 0.05:
            seed, state = "seed-hourly-ten", "finished"
        else:
            seed = rng.choice([s for s, _ in SEEDS if s != "seed-hourly-ten"])
            state = "paused" if draw < 0.13 else "auto_paused" if draw < 0.15 else "active"
        family, word = FAMILIES[i % len(FAMILIES)], WORDS[(i // len(FAMILIES)) % len(WORDS)]
        created = start + step * i + timedelta(microseconds=rng.randrange(1000))
        tasks.append(_Task(uuid.uuid4(), seed, tenant, f"{family}-{word}-{i:06d}", created, state))
    return tasks


#: One attempt as the trigger worker reports it: HTTP status, error kind, error, duration.
Attempt = tuple[int | None, str | None, str | None, int]


@dataclass
class _Execution:
    scheduled_for: datetime
    status: str
    attempts: list[Attempt]
    excerpt: str | None


def _outcome(at: datetime, rng: random.Random, max_attempts: int, failing: bool) -> _Execution:
    """One ended execution's attempts, as the trigger worker reports them: mostly a
    success at the first attempt; some retried first; a 4xx that fails at once; a
    timeout, refused connection or 503 every attempt until dead. ``failing``: a task
    whose target is down (it ends dead or failed)."""
    draw = 1.0 if failing else rng.random()
    ok: Attempt = (200, None, None, rng.randrange(15, 400))
    unavailable: Attempt = (503, None, "HTTP 503", rng.randrange(5, 80))
    if draw < 0.84:
        return _Execution(at, "succeeded", [ok], OK_EXCERPT)
    if draw < 0.89:
        return _Execution(at, "succeeded", [unavailable, ok], OK_EXCERPT)
    if draw < 0.94 or (failing and rng.random() < 0.3):
        status = rng.choice((404, 400, 401, 422))
        ms = rng.randrange(10, 90)
        return _Execution(at, "failed", [(status, None, f"HTTP {status}", ms)], NOT_FOUND_EXCERPT)
    each: Attempt
    excerpt: str | None
    kind = rng.random()
    if kind < 0.4:
        each = (None, "timeout", "no response within 30 s", 30000)
        excerpt = None
    elif kind < 0.7:
        each = (
            None,
            "connection",
            "cannot connect to api.example.com:443: Connection refused",
            rng.randrange(1, 5),
        )
        excerpt = None
    else:
        each, excerpt = unavailable, UNAVAILABLE_EXCERPT
    return _Execution(at, "dead", [each] * max_attempts, excerpt)


def load(
    engine: Engine,
    tasks: int,
    noise_tasks: int,
    settings: Settings,
    seed: int = 17,
) -> Loaded:
    """``tasks`` tasks of :data:`TENANT` and ``noise_tasks`` of :data:`NOISE_TENANT`,
    :data:`EXECUTIONS_PER_TASK` executions each with their attempts, an API key of
    :data:`TENANT`; then ``VACUUM ANALYZE``, as autovacuum leaves a table after a load."""
    rng = random.Random(seed)
    now = utcnow()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    fire_times = _seed_fire_times(engine, now, settings)
    with engine.connect() as conn:
        seed_rows = {
            row.name: row
            for row in conn.execute(
                sa.select(
                    scheduled_tasks.c.name,
                    scheduled_tasks.c.schedule_kind,
                    scheduled_tasks.c.interval_seconds,
                    scheduled_tasks.c.max_attempts,
                ).where(scheduled_tasks.c.tenant == "bench-seed")
            )
        }
    timed = _tasks(tasks, TENANT, now, rng)
    noise = _tasks(noise_tasks, NOISE_TENANT, now, rng)
    every = timed + noise

    # Each task's executions, oldest first, and its counters as the write-back keeps them.
    per_task: list[list[_Execution]] = []
    columns: list[tuple[Any, ...]] = []
    for task in every:
        row = seed_rows[task.seed]
        if row.schedule_kind == "cron":
            fires = fire_times[task.seed]
            past, upcoming = fires[:-1], fires[-1]
        else:
            interval = timedelta(seconds=row.interval_seconds)
            if task.state == "finished":  # its 10 hourly occurrences, from its creation
                past = [task.created_at + interval * k for k in range(EXECUTIONS_PER_TASK)]
                upcoming = None
            else:
                n = (now - task.created_at) // interval
                last = task.created_at + interval * n
                past = [last - interval * k for k in reversed(range(EXECUTIONS_PER_TASK))]
                upcoming = last + interval
        failing = task.state == "auto_paused" or rng.random() < 0.03
        runs = []
        for k, scheduled_for in enumerate(past):
            runs.append(_outcome(scheduled_for, rng, row.max_attempts, failing and k >= 5))
        newest_open = task.state == "active" and rng.random() < 0.01
        if newest_open:
            runs[-1] = _Execution(
                runs[-1].scheduled_for, rng.choice(("queued", "running")), [], None
            )
        per_task.append(runs)
        ended = [r for r in runs if r.status not in ("queued", "running")]
        failures = 0
        for r in ended:
            failures = 0 if r.status == "succeeded" else failures + 1
        last_started = ended[-1].scheduled_for + timedelta(milliseconds=40) if ended else None
        paused = task.state in ("paused", "auto_paused")
        columns.append(
            (
                task.id,
                task.seed,
                task.tenant,
                task.name,
                task.created_at,
                task.state == "active" or task.state == "finished",
                task.state == "finished",
                upcoming,
                last_started,
                ended[-1].status if ended else None,
                len(runs),
                len(ended),
                failures,
                {"paused": "user", "auto_paused": "auto_pause"}.get(task.state),
                "maintenance window at the target"
                if task.state == "paused"
                else "5 consecutive failures"
                if task.state == "auto_paused"
                else None,
                past[-1] + timedelta(hours=1) if paused else None,
            )
        )
    seconds["generate"] = time.perf_counter() - started

    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        assert pg is not None
        with pg.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE bench_copies (id uuid, seed text, tenant text, name text,"
                " created_at timestamptz, is_active bool, is_finished bool,"
                " next_execution_time timestamptz, last_execution_time timestamptz,"
                " last_status text, occurrence_count int, execution_count int,"
                " consecutive_failures int, paused_by text, paused_reason text,"
                " paused_at timestamptz)"
            )
            with cur.copy("COPY bench_copies FROM STDIN") as copy:
                for values in columns:
                    copy.write_row(values)
            copied = [c.name for c in scheduled_tasks.columns]
            overridden = {
                "id", "tenant", "name", "created_at", "is_active", "is_finished",
                "next_execution_time", "last_execution_time", "last_status", "occurrence_count",
                "execution_count", "consecutive_failures", "paused_by", "paused_reason",
                "paused_at", "updated_at",
            }  # fmt: skip
            select = ", ".join(
                f"c.{name}"
                if name in overridden and name != "updated_at"
                else "c.created_at"
                if name == "updated_at"
                else f"s.{name}"
                for name in copied
            )
            cur.execute(
                f"INSERT INTO scheduled_tasks ({', '.join(copied)}) SELECT {select}"
                " FROM bench_copies c JOIN scheduled_tasks s"
                " ON s.tenant = 'bench-seed' AND s.name = c.seed"
            )
            # The copies' next occurrences, as ``task_queries`` keeps them; the seeds go.
            cur.execute(
                "INSERT INTO next_occurrences (scheduled_for, task_id)"
                " SELECT next_execution_time, id FROM scheduled_tasks WHERE tenant <> 'bench-seed'"
                " AND is_active AND NOT is_finished AND next_execution_time IS NOT NULL"
            )
            cur.execute(
                "DELETE FROM next_occurrences WHERE task_id IN"
                " (SELECT id FROM scheduled_tasks WHERE tenant = 'bench-seed')"
            )
            cur.execute("DELETE FROM scheduled_tasks WHERE tenant = 'bench-seed'")
            cur.execute("DROP TABLE bench_copies")
        pg.commit()
        seconds["tasks"] = time.perf_counter() - started

        started = time.perf_counter()
        execution_columns = [
            "id", "task_id", "scheduled_for", "idempotency_key", "status", "attempts",
            "next_attempt_at", "publish_count", "http_status", "duration_ms", "error",
            "response_excerpt", "started_at", "finished_at", "created_at", "held_by",
            "message_id",
        ]  # fmt: skip
        attempt_columns = [
            "id", "execution_id", "number", "started_at", "duration_ms", "http_status",
            "error_kind", "error",
        ]  # fmt: skip
        attempt_id = 0
        with pg.cursor() as cur:
            attempt_rows: list[tuple[Any, ...]] = []
            with cur.copy(
                f"COPY {executions.name} ({', '.join(execution_columns)}) FROM STDIN"
            ) as copy:
                # Ids as claims make them: every task's k-th occurrence before any k+1-th.
                for k in range(EXECUTIONS_PER_TASK):
                    for j, task in enumerate(every):
                        run = per_task[j][k]
                        execution_id = k * len(every) + j + 1
                        began = run.scheduled_for + timedelta(milliseconds=rng.randrange(5, 60))
                        open_ = run.status in ("queued", "running")
                        attempt_at = ended_at = began
                        for number, (status, kind, error, ms) in enumerate(run.attempts, 1):
                            attempt_id += 1
                            attempt_rows.append(
                                (
                                    attempt_id,
                                    execution_id,
                                    number,
                                    attempt_at,
                                    ms,
                                    status,
                                    kind,
                                    error,
                                )
                            )
                            ended_at = attempt_at + timedelta(milliseconds=ms)
                            # The backoff before the next attempt (10 s, doubling).
                            attempt_at = ended_at + timedelta(seconds=10 * 2 ** (number - 1))
                        final: tuple[int | None, str | None, str | None, int | None] = (
                            run.attempts[-1] if run.attempts else (None, None, None, None)
                        )
                        copy.write_row(
                            (
                                execution_id,
                                task.id,
                                run.scheduled_for,
                                idempotency_key(task.id, run.scheduled_for),
                                run.status,
                                len(run.attempts),
                                now + timedelta(seconds=60) if open_ else None,
                                max(1, len(run.attempts)),
                                final[0],
                                final[3],
                                final[2],
                                run.excerpt,
                                None if run.status == "queued" else began,
                                None if open_ else ended_at,
                                run.scheduled_for - timedelta(seconds=1),
                                "bench-host:4242" if run.status == "running" else None,
                                uuid.uuid4().hex if run.status == "running" else None,
                            )
                        )
            with cur.copy(
                f"COPY {attempts.name} ({', '.join(attempt_columns)}) FROM STDIN"
            ) as copy:
                for values in attempt_rows:
                    copy.write_row(values)
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('executions', 'id'),"
                " (SELECT max(id) FROM executions))"
            )
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('attempts', 'id'),"
                " (SELECT max(id) FROM attempts))"
            )
        pg.commit()
        seconds["executions"] = time.perf_counter() - started
    finally:
        raw.close()

    started = time.perf_counter()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("scheduled_tasks", "next_occurrences", "executions", "attempts"):
            conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))
    seconds["vacuum"] = time.perf_counter() - started
    with engine.begin() as conn:
        key, _ = apikeys.create_key(conn, TENANT, now)
    return Loaded(
        api_key=key,
        task_ids=[str(t.id) for t in timed],
        created_at=[t.created_at for t in timed],
        names=[t.name for t in timed],
        seconds={k: round(v, 1) for k, v in seconds.items()},
    )


def table_sizes(engine: Engine) -> dict[str, dict[str, Any]]:
    """Rows and on-disk size (heap + indexes) of the tables the pages read."""
    sizes = {}
    with engine.connect() as conn:
        for table in ("scheduled_tasks", "next_occurrences", "executions", "attempts"):
            rows = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            total, indexes = conn.execute(
                sa.text("SELECT pg_total_relation_size(:t), pg_indexes_size(:t)"), {"t": table}
            ).one()
            sizes[table] = {
                "rows": int(rows),
                "total_mb": round(total / 2**20, 1),
                "indexes_mb": round(indexes / 2**20, 1),
            }
    return sizes


# --------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class Served:
    """A running ``taskhub api`` process: its port, and the CPU it has used."""

    port: int
    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far, from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def api_process(env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> Iterator[Served]:
    """``taskhub api`` on a free loopback port, as an operator starts it (``args``: more
    of its options)."""
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskhub.cli", "api", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                return connection.getresponse().status == 200
            except OSError:
                return False

        if not wait_until(ready, 60, every_s=0.3):
            raise SystemExit(f"taskhub api did not start; see {log}")
        yield Served(port, process.pid)
    finally:
        process.terminate()
        process.wait(15)


class Browser:
    """One keep-alive connection with the console's session cookie: a signed-in tab
    (``headers``: sent with every request, e.g. an API key for the REST API)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.headers = dict(headers or {})

    def request(
        self, method: str, path: str, body: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        headers = {**self.headers, **({"Cookie": self.cookie} if self.cookie else {})}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode(errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def sign_in(self, api_key: str) -> None:
        status, headers, _ = self.request(
            "POST", "/ui/sign-in", urllib.parse.urlencode({"api_key": api_key})
        )
        cookie = headers.get("set-cookie", "").split(";", 1)[0]
        if status != 303 or not cookie:
            raise SystemExit(f"sign-in failed: {status}")
        self.cookie = cookie

    def time(self, path: str) -> tuple[float, int, str]:
        started = time.perf_counter()
        status, _, text = self.request("GET", path)
        return time.perf_counter() - started, status, text


def figures_ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q / 100 * len(ordered) + 0.999999) - 1))]

    return {
        "p50": round(statistics.median(ordered) * 1000, 1),
        "p95": round(at(95) * 1000, 1),
        "p99": round(at(99) * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


NEXT_LINK = re.compile(r'href="(/ui/tasks\?[^"]*cursor=[^"]+)"')


def deep_cursor(loaded: Loaded, fraction: float = 0.9) -> str:
    """The cursor after the task at ``fraction`` of the list (creation order), as the
    service encodes it (``task_views.list_tasks``)."""
    from taskhub.core import paging

    i = int(len(loaded.task_ids) * fraction)
    return paging.encode([loaded.created_at[i].isoformat(), loaded.task_ids[i]])


def metrics_snapshot(browser: Browser) -> dict[str, tuple[float, float]]:
    """(count, sum) of ``taskhub_api_request_duration_seconds`` per GET route."""
    _, _, text = browser.request("GET", "/metrics")
    found: dict[str, list[float]] = {}
    pattern = re.compile(
        r'^taskhub_api_request_duration_seconds_(count|sum)\{method="GET",route="([^"]+)"\} (\S+)$'
    )
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            kind, route, value = match.groups()
            found.setdefault(route, [0.0, 0.0])[0 if kind == "count" else 1] = float(value)
    return {route: (v[0], v[1]) for route, v in found.items()}


def time_pages(
    port: int,
    loaded: Loaded,
    requests: int,
    warmup: int,
    budget_s: float = 60.0,
    seed: int = 17,
) -> dict[str, Any]:
    """Each page ``requests`` times after ``warmup`` untimed ones, one request at a time
    on one keep-alive connection: client-side latency on loopback (what the server took,
    plus HTTP over loopback and this client's parsing) and the server's own mean from
    its request-duration histogram (its buckets are too coarse for a p95 near 150 ms).
    A page stops early once it has taken ``budget_s`` (a slow page would keep a run
    going for many minutes); ``requests`` says how many were timed."""
    rng = random.Random(seed)
    browser = Browser(port)
    browser.sign_in(loaded.api_key)
    deep = deep_cursor(loaded)
    family = FAMILIES[3]
    one = loaded.names[len(loaded.names) // 2]
    pages: dict[str, Any] = {
        "overview": ("/ui/", lambda: "/ui/"),
        "tasks": ("/ui/tasks", lambda: "/ui/tasks"),
        "tasks_deep_page": ("/ui/tasks", lambda: f"/ui/tasks?cursor={deep}"),
        "tasks_search_family": ("/ui/tasks", lambda: f"/ui/tasks?search={family}-"),
        "tasks_search_one": (
            "/ui/tasks",
            lambda: "/ui/tasks?search=" + urllib.parse.quote(one),
        ),
        "task": (
            "/ui/tasks/{task_id:uuid}",
            lambda: f"/ui/tasks/{rng.choice(loaded.task_ids)}",
        ),
        "dead_letters": ("/ui/dead-letters", lambda: "/ui/dead-letters"),
    }
    results: dict[str, Any] = {}
    for label, (route, path_of) in pages.items():
        status, _, text = browser.request("GET", path_of())
        if status != 200:
            results[label] = {"skipped": f"GET {path_of()} answered {status}"}
            continue
        if label == "tasks":
            link = NEXT_LINK.search(text)
            results["next_page_link_found"] = link is not None
        results[label] = time_route(browser, route, path_of, requests, warmup, budget_s)
    return results


def time_route(
    browser: Browser,
    route: str,
    path_of: Callable[[], str],
    requests: int,
    warmup: int,
    budget_s: float,
) -> dict[str, Any]:
    """``GET path_of()`` ``requests`` times after ``warmup`` untimed ones, one at a time
    (see :func:`time_pages`); ``route``: its template in the request-duration histogram."""
    until = time.monotonic() + budget_s / 6
    for _ in range(warmup):
        browser.request("GET", path_of())
        if time.monotonic() > until:
            break
    before = metrics_snapshot(browser)
    seconds, statuses = [], set()
    until = time.monotonic() + budget_s
    for _ in range(requests):
        elapsed, status, _ = browser.time(path_of())
        seconds.append(elapsed)
        statuses.add(status)
        if time.monotonic() > until:
            break
    after = metrics_snapshot(browser)
    if route not in after:
        raise SystemExit(f"no request-duration histogram for {route}: {sorted(after)}")
    count = after[route][0] - before.get(route, (0, 0))[0]
    total = after[route][1] - before.get(route, (0, 0))[1]
    return {
        "requests": len(seconds),
        "statuses": sorted(statuses),
        "client_ms": figures_ms(seconds),
        "server_mean_ms": round(total / count * 1000, 1) if count else None,
    }
