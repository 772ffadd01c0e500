"""The benchmark: taskhub and celery-redbeat, side by side, on PostgreSQL + Redis.

    python bench/run.py --tasks 10000                 # the burst, taskhub then redbeat
    python bench/run.py --scenario all                # every scenario of the issue

Needs PostgreSQL and Redis as the tests do (TASKHUB_TEST_POSTGRES_URL,
TASKHUB_TEST_REDIS_URL; the Redis db given is flushed, default 12) and the ``bench``
extra (matplotlib, celery-redbeat). Each scenario makes a scratch database, starts the
recording target (``bench/target.py``, its own process; its capacity is measured and
printed first), loads the tasks due on a coming minute, starts the production split
(trigger worker, state worker, beat with the real one-minute tick), waits until every
execution ended, and prints one JSON object per scenario: fired / lost / doubled, lag
(arrival at the target - due time) p50 / p95 / p99 / max, makespan, peak RSS and CPU
seconds per process, and database transactions and rows per trigger
(``pg_stat_database`` deltas; the workers' own statement counts from their
heartbeats). A PNG of the lag distribution goes to ``--plot``.

Scenarios: ``burst`` (N due at one minute, instant target; also run with redbeat; by
default the tasks are daily crons in seven time zones that POST a JSON body with
headers, created through a real ``taskhub api`` by 4 clients, ``bench/registration.py``;
``--shape oneshot-get``: one-time GETs stored directly),
``slow`` (target answers after 1 s), ``hung`` (N hung past the timeout + N healthy),
``spread`` (N spread over a minute at second precision), ``noisy-neighbour`` (tenant
A's 2,300 tasks at a host that never answers, 60 s timeout, beside tenant B's quick
tasks due 3 s later: both tenants' lag), ``table`` (1,000,000 stored
schedules, 10,000 due: discovery's claim+publish rate in one and in two processes, the
CPU it took and ``EXPLAIN`` of the due query), ``writeback`` (10,000 outcomes written
back as the chord callbacks do, and the CPU it took), ``clients`` (the fastest
keep-alive Python client against the target, and taskhub's burst rate as a fraction of
it), ``celery`` (N one-time Celery-target tasks due at one minute, sent to the user's own
Celery workers, ``bench/celery_user_app.py``; then redbeat sending the same N Celery
tasks into the same workers: lag at the user worker's receipt), ``console`` (``--tasks``
tasks of one tenant, default 100,000, and a tenth as many of another, ten executions
each, loaded in bulk; a real ``taskhub api`` process; each console page timed from
outside: p50/p95/p99/max, ``bench/console.py``; it starts no target), ``retention``
(``--retention-rows`` ended executions with an attempt each over ``--retention-days``
days, at the schema before retention: the upgrade's time, one prune pass removing the
oldest day by batched deletes, and the same day dropped as partitions of day-partitioned
copies; it starts no process), ``api`` (the API at scale, ``bench/api.py``: creates/s
through ``POST /v1/tasks`` from 4 keep-alive clients, tasks/s through ``POST
/v1/tasks:batch`` with 1,000 definitions a request from 1 and from 4 clients, each with
the API process's CPU per task; then ``--api-tasks`` tasks of one tenant, ten executions
each, loaded in bulk, and the task list's first and deep pages and a task's executions
timed from outside: p50/p95/p99/max), and ``soak`` (not part of ``all``:
``--soak-rate`` occurrences a second, default 1,000, for ``--soak-minutes``, default 30,
as rate * 60 tasks on ``* * * * *`` with ``spread_seconds`` 60; retention running, the execution
retention set to ``--soak-retention-minutes`` (default 5) as a fraction of a day and the
prune pass every ``--soak-prune-interval`` s (default 60); the trigger worker ``kill
-9``ed and restarted every ``--soak-kill-every`` s, default 300: one line per minute
with the lag of the occurrences due in it, each process's RSS and the tables' sizes,
then lost, repeats beside what the killed workers held, and the issue's pass/fail
figures; ``--plot`` draws lag, RSS and sizes over time).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench import api, celery_user_app, console, http_clients, registration
from bench.target import Record, read_dump
from taskhub.core.clock import utcnow
from taskhub.core.definitions import parse_definition
from taskhub.core.settings import Settings, load
from taskhub.db import engines, schema
from taskhub.db.models import attempts, executions, scheduled_tasks, worker_heartbeats
from taskhub.service import task_service
from tests.support.processes import Stack, wait_until

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TASKHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
REDIS_URL = os.environ.get("TASKHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
TERMINAL = ("succeeded", "failed", "dead")


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def lag_figures(lags: list[float]) -> dict[str, float] | None:
    if not lags:
        return None
    return {
        "p50": round(statistics.median(lags), 3),
        "p95": round(percentile(lags, 95), 3),
        "p99": round(percentile(lags, 99), 3),
        "max": round(max(lags), 3),
    }


def process_tree(pid: int) -> list[int]:
    pids, seen = [pid], []
    while pids:
        current = pids.pop()
        seen.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(c) for c in children)
    return seen


def proc_figures(pid: int) -> tuple[float, float]:
    """(peak RSS in MB, CPU seconds) of one process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    hwm = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")), 0)
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime, stime
    return round(hwm / 1024, 1), round(cpu, 2)


def servers_cpu_s() -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL and Redis server process on the
    machine (the benchmark's own servers: nothing else runs beside it), by pid."""
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat or "(redis-server)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def servers_cpu_since(before: dict[int, float]) -> float:
    """CPU seconds the servers used since ``before`` (a process that exited in between is
    not counted: an undercount, never a negative figure)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in servers_cpu_s().items())


def status_kb(pid: int, *fields: str) -> dict[str, int] | None:
    """Fields of ``/proc/<pid>/status`` in kB (None: the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    wanted = {f"{field}:": field for field in fields}
    found = {field: 0 for field in fields}
    for line in status.splitlines():
        head = line.split(None, 1)[0] if line else ""
        if head in wanted:
            found[wanted[head]] = int(line.split()[1])
    return found


def rss_now_mb(stack: Stack) -> dict[str, float]:
    """Resident memory of each stack process right now (VmRSS), in MB."""
    figures = {}
    for name, process in stack.processes.items():
        kb = status_kb(process.pid, "VmRSS")
        if kb is not None:
            figures[name] = round(kb["VmRSS"] / 1024, 1)
    return figures


def rss_tree_mb(stack: Stack) -> dict[str, float]:
    """:func:`rss_now_mb` with each process's children too (``name.child1`` …), named as
    :func:`stack_figures` names them."""
    figures = {}
    for name, process in stack.processes.items():
        for i, pid in enumerate(process_tree(process.pid)):
            kb = status_kb(pid, "VmRSS")
            if kb is not None:
                figures[name if i == 0 else f"{name}.child{i}"] = round(kb["VmRSS"] / 1024, 1)
    return figures


def postgres_rss_mb() -> float:
    """The PostgreSQL server's memory on this machine: every server process's private
    memory (RssAnon) plus the shared memory once (the largest RssShmem: shared buffers a
    process has touched), in MB. Every database of the server, not only the bench's."""
    private = shared = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        kb = status_kb(int(entry.name), "RssAnon", "RssShmem")
        if kb is not None:
            private += kb["RssAnon"]
            shared = max(shared, kb["RssShmem"])
    return round((private + shared) / 1024, 1)


def stack_figures(stack: Stack) -> dict[str, dict[str, float]]:
    figures = {}
    for name, process in stack.processes.items():
        for i, pid in enumerate(process_tree(process.pid)):
            rss, cpu = proc_figures(pid)
            figures[name if i == 0 else f"{name}.child{i}"] = {"peak_rss_mb": rss, "cpu_s": cpu}
    return figures


def pg_counts(engine: Engine, name: str) -> dict[str, int]:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        row = (
            conn.execute(
                sa.text(
                    "SELECT xact_commit, tup_returned, tup_fetched, tup_inserted, tup_updated,"
                    " tup_deleted FROM pg_stat_database WHERE datname = :n"
                ),
                {"n": name},
            )
            .mappings()
            .one()
        )
    return {k: int(v) for k, v in row.items()}


def heartbeat_queries(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(worker_heartbeats.c.db_queries), 0))
            ).scalar_one()
        )


# --------------------------------------------------------------------------- the target


@dataclass
class RunningTarget:
    port: int
    dump_path: str
    process: subprocess.Popen[str]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def records(self) -> tuple[list[Record], dict[str, Any]]:
        urllib.request.urlopen(self.url("/__dump"), timeout=30).read()
        return read_dump(self.dump_path)

    def reset(self) -> None:
        urllib.request.urlopen(self.url("/__reset"), timeout=30).read()

    def drain(self) -> list[Record]:
        """The records since the last drain (the target forgets them)."""
        urllib.request.urlopen(self.url("/__drain"), timeout=30).read()
        return read_dump(self.dump_path)[0]


class Recorder(Protocol):
    """Where a run's arrivals are read: the HTTP target or the user's Celery worker."""

    def reset(self) -> None: ...

    def records(self) -> tuple[list[Record], dict[str, Any]]: ...


def celery_worker(
    app: str, queue: str, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``celery -A <app> worker -Q <queue> <argv>``, as a user starts theirs."""
    quiet = ("--without-gossip", "--without-mingle", "--loglevel", "WARNING")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, *argv, *quiet],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class CeleryUserWorker:
    """The user's Celery workers (``bench/celery_user_app.py``, ``processes`` of them,
    each started with ``argv``) and the receipts their task recorded in Redis."""

    argv: list[str]
    processes: int = 1

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(REDIS_URL)

    def reset(self) -> None:
        self.client.delete(celery_user_app.RECEIPTS)

    def records(self) -> tuple[list[Record], dict[str, Any]]:
        """Each receipt as the target records a request: (time, name, "celery", the
        ``taskhub_scheduled_for`` header or ""); and how many distinct Celery task ids."""
        rows: list[Record] = []
        ids = set()
        for raw in self.client.lrange(celery_user_app.RECEIPTS, 0, -1):
            at, name, task_id, scheduled_for = cast(bytes, raw).decode().split(" ")
            ids.add(task_id)
            rows.append((float(at), name, "celery", "" if scheduled_for == "-" else scheduled_for))
        return rows, {"celery_task_ids": len(ids)}

    def start(self, stack: Stack) -> None:
        """Start the workers beside ``stack``'s, as ``user-worker<i>`` (the user's: not
        counted as taskhub's or redbeat's), without taskhub's settings."""
        env = {k: v for k, v in stack.env.items() if not k.startswith("TASKHUB_")}
        env.update(BENCH_USER_REDIS_URL=REDIS_URL, PYTHONPATH=str(ROOT))
        for i in range(self.processes):
            argv = [*self.argv, "-n", f"bench-user{i}@%h"]
            log = stack.log_dir / f"user-worker{i}.log"
            stack.processes[f"user-worker{i}"] = celery_worker(
                "bench.celery_user_app", celery_user_app.QUEUE, argv, env, log
            )

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Until ``count`` receipts are in (an accepted send is not yet a receipt)."""
        return wait_until(
            lambda: self.client.llen(celery_user_app.RECEIPTS) >= count, timeout_s, every_s=0.5
        )


def own_figures(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    """Peak RSS of the scheduler's workers (its beat not counted) and of all its
    processes, and their CPU seconds: the user's workers are not the scheduler's."""
    own = {n: f for n, f in figures.items() if not n.startswith("user-worker")}
    return {
        "workers_peak_rss_mb": round(
            sum(f["peak_rss_mb"] for n, f in own.items() if not n.startswith("beat")), 1
        ),
        "total_peak_rss_mb": round(sum(f["peak_rss_mb"] for f in own.values()), 1),
        "total_cpu_s": round(sum(f["cpu_s"] for f in own.values()), 2),
    }


@contextmanager
def recording_target(scratch: Path) -> Iterator[RunningTarget]:
    port = http_clients.free_port()
    dump = str(scratch / "target-dump.jsonl")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "target.py"), "--port", str(port), "--dump", dump],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise SystemExit("the target did not start")
    try:
        yield RunningTarget(port, dump, process)
    finally:
        process.terminate()
        process.wait(10)


# --------------------------------------------------------------------------- databases


@contextmanager
def scratch_database(revision: str = "head") -> Iterator[tuple[str, str]]:
    """A new database, migrated to ``revision``, dropped afterwards."""
    name = f"taskhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        schema.upgrade(url, revision)
        yield name, url
    finally:
        engines.dispose_after_fork()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load_seconds_per_task(
    engine: Engine, definitions: list[dict[str, Any]], settings: Settings
) -> float:
    """How long :func:`load_tasks` takes per task right now: ``definitions`` created in
    one transaction that is then rolled back (nothing stays)."""
    now = utcnow()
    started = time.perf_counter()
    with engine.connect() as conn:
        transaction = conn.begin()
        for data in definitions:
            task_service.create_task(conn, parse_definition(data, now), now, settings, "default")
        transaction.rollback()
    return (time.perf_counter() - started) / max(1, len(definitions))


def load_tasks(engine: Engine, definitions: list[dict[str, Any]], settings: Settings) -> None:
    """Through taskhub's own validation, like the API (in transactions of 1,000), with
    the settings of the processes that will fire them. A definition's ``tenant`` key (not
    part of a task) names its tenant."""
    now = utcnow()
    for start in range(0, len(definitions), 1000):
        with engine.begin() as conn:
            for data in definitions[start : start + 1000]:
                task = {k: v for k, v in data.items() if k != "tenant"}
                tenant = data.get("tenant", "default")
                task_service.create_task(conn, parse_definition(task, now), now, settings, tenant)


def next_minute(after: datetime) -> datetime:
    return (after + timedelta(minutes=1)).replace(second=0, microsecond=0)


#: At least this long between loading the tasks and the due minute, so that beat ticks
#: once in between, as in a deployment that is already running: that tick stages the
#: due minute and the staging loop publishes it ahead. Without it the first tick would
#: come at the due minute itself and claim and publish everything then.
WARM_TICK_S = 60


def due_minute(count: int, seconds_per_task: float = 0.004, warm: bool = True) -> datetime:
    """A minute boundary far enough ahead to load ``count`` tasks and start the workers
    (``warm``: and for beat to tick once before it)."""
    ahead_s = 25 + count * seconds_per_task + (WARM_TICK_S if warm else 0)
    return next_minute(utcnow() + timedelta(seconds=ahead_s))


# --------------------------------------------------------------------------- taskhub


def taskhub_env(url: str, scratch: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "TASKHUB_DATABASE_URL": url,
        "TASKHUB_BROKER_URL": REDIS_URL,
        "TASKHUB_RESULT_BACKEND": REDIS_URL,
        "TASKHUB_ALLOW_PRIVATE_TARGETS": "1",
        "TASKHUB_DATA_DIR": str(scratch / "data"),
        "TASKHUB_LOG_LEVEL": "WARNING",
        **extra,
    }


def ended_count(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(executions.c.status, sa.func.count()).group_by(executions.c.status)
        )
        counts = Counter({status: n for status, n in rows})
    return sum(counts[s] for s in TERMINAL), counts.total()


def run_taskhub(
    label: str,
    target: Recorder,
    definitions: list[dict[str, Any]],
    first_due: float,
    scratch: Path,
    env_extra: dict[str, str],
    timeout_s: float = 600,
    user_worker: CeleryUserWorker | None = None,
    through_api: bool = False,
    trigger_processes: int = 1,
) -> tuple[dict[str, Any], list[float]]:
    """Load ``definitions`` (``through_api``: created through ``taskhub api``, else
    stored by the service functions directly), run the production split (with
    ``trigger_processes`` trigger workers) until every execution ended (and
    ``user_worker``, if given, received every Celery task), and measure. ``first_due``
    is the earliest due time (unix)."""
    count = len(definitions)
    redis.Redis.from_url(REDIS_URL).flushdb()
    target.reset()
    with scratch_database() as (name, url):
        engine = engines.create_engine(url)
        env = taskhub_env(url, scratch, env_extra)
        stack = Stack(env, scratch / "logs" / label)
        stack.log_dir.mkdir(parents=True, exist_ok=True)
        registered = None
        if through_api:
            registered = registration.register_through_api(
                engine, env, stack.log_dir / "api.log", definitions
            )
            if time.time() > first_due - 10:
                raise SystemExit(f"registration took {registered['seconds']} s: past the due time")
        else:
            load_tasks(engine, definitions, load(env))
        before = pg_counts(engine, name)
        due_text = datetime.fromtimestamp(first_due, UTC).isoformat()
        print(f"{label}: {count} tasks loaded, first due at {due_text}", file=sys.stderr)
        if user_worker is not None:
            user_worker.start(stack)
        for k in range(trigger_processes):
            stack.start("trigger" if k == 0 else f"trigger-{k + 1}", "trigger")
        stack.start("state", "state")
        stack.start("beat", "beat")
        try:
            wait_until(lambda: time.time() > first_due - 5, 600, every_s=0.5)
            rss_before = rss_now_mb(stack)  # idle, before anything is published
            wait_until(lambda: time.time() > first_due, 600, every_s=0.1)

            def done() -> bool:
                ended, total = ended_count(engine)
                return total >= count and ended >= total

            finished = wait_until(done, timeout_s, every_s=0.5)
            if user_worker is not None:
                finished = user_worker.wait_for(count, 60) and finished
            after = pg_counts(engine, name)
            time.sleep(11)  # one heartbeat interval: every worker's statement count is in
            statements = heartbeat_queries(engine)
            figures = stack_figures(stack)
        finally:
            stack.stop_all()
        with engine.connect() as conn:
            attempt_times = [
                (
                    row.scheduled_for.timestamp(),
                    row.started_at.timestamp(),
                    row.started_at.timestamp() + row.duration_ms / 1000,
                )
                for row in conn.execute(
                    sa.select(
                        executions.c.scheduled_for, attempts.c.started_at, attempts.c.duration_ms
                    ).join(attempts, attempts.c.execution_id == executions.c.id)
                )
            ]
            statuses: dict[str, int] = {
                str(status): int(n)
                for status, n in conn.execute(
                    sa.select(executions.c.status, sa.func.count()).group_by(executions.c.status)
                )
            }
            claimed_ahead = conn.execute(
                sa.select(sa.func.count()).where(
                    executions.c.created_at < executions.c.scheduled_for
                )
            ).scalar_one()
        engine.dispose()
    records, extra = target.records()
    result, lags = summarize(label, records, count, first_due)
    delta = {k: after[k] - before[k] for k in before}
    result.update(
        finished=finished,
        statuses=statuses,
        claimed_before_due=claimed_ahead,
        processes=figures,
        rss_before_due_mb=rss_before,
        **own_figures(figures),
        db_per_trigger={
            "transactions": round(delta["xact_commit"] / count, 2),
            "rows_written": round(
                (delta["tup_inserted"] + delta["tup_updated"] + delta["tup_deleted"]) / count, 2
            ),
            "rows_read": round((delta["tup_returned"] + delta["tup_fetched"]) / count, 2),
            "worker_statements": round(statements / count, 2),
        },
        # When each attempt ended after its due time: for a Celery target, when the
        # broker had accepted the message (taskhub's share of the lag at receipt).
        # When each attempt took its slot, and when it ended, after the due time: the
        # lag before the first is the worker's (clearance, slots), the rest the request's.
        attempt_start_lag_s=lag_figures([s - d for d, s, _ in attempt_times]),
        attempt_end_lag_s=lag_figures([e - d for d, _, e in attempt_times]),
        target_max_concurrent=extra.get("max_concurrent"),
    )
    if registered is not None:
        result["registration"] = registered
    if "celery_task_ids" in extra:
        result["celery_task_ids"] = extra["celery_task_ids"]
    return result, lags


def summarize(
    label: str, records: list[Record], count: int, due: float
) -> tuple[dict[str, Any], list[float]]:
    """fired / lost / doubled and lag from the target's records: the due time is the
    request's ``X-Taskhub-Scheduled-For`` if it has one (taskhub), else ``due``."""
    first: dict[str, float] = {}
    due_of: dict[str, float] = {}
    seen: Counter[str] = Counter()
    for at, key, _path, scheduled_for in records:
        seen[key] += 1
        first[key] = min(first.get(key, at), at)
        if scheduled_for:
            due_of[key] = datetime.fromisoformat(scheduled_for.replace("Z", "+00:00")).timestamp()
    lags = [at - due_of.get(key, due) for key, at in first.items()]
    arrivals = [at for at, _, _, _ in records]
    return {
        "scenario": label,
        "tasks": count,
        "fired": len(first),
        "lost": count - len(first),
        "doubled": sum(n - 1 for n in seen.values()),
        "lag_s": lag_figures(lags),
        "makespan_s": round(max(arrivals) - min(arrivals), 3) if arrivals else None,
        "burst_rate_per_s": round(len(first) / max(1e-3, max(arrivals) - min(arrivals)))
        if len(arrivals) > 1
        else None,
    }, lags


# --------------------------------------------------------------------------- redbeat


@dataclass
class PeerWork:
    """What each redbeat entry sends (``task`` with ``args(i)`` to ``queue``) and the
    worker that consumes it: redbeat's own (``worker`` None: ``bench.redbeat_app``, one
    HTTP GET per Celery task) or the user's Celery workers."""

    label: str
    task: str
    args: Callable[[int], list[Any]]
    queue: str
    worker: CeleryUserWorker | None = None


def http_peer_work(target: RunningTarget) -> PeerWork:
    """The burst's peer: each entry's Celery task makes one HTTP GET to the target."""
    return PeerWork(
        "burst-redbeat", "bench.fire", lambda i: [target.url("/ok"), f"bench-{i}"], "redbeat-bench"
    )


def run_redbeat(
    recorder: Recorder, count: int, scratch: Path, worker_argv: list[str], work: PeerWork
) -> tuple[dict[str, Any], list[float]]:
    """One redbeat entry per schedule (a crontab for the due minute), sending ``work``."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    recorder.reset()
    env = {**os.environ, "BENCH_REDBEAT_REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}
    from celery.schedules import crontab
    from redbeat import RedBeatSchedulerEntry

    from bench.redbeat_app import app

    due = due_minute(count, warm=False)  # redbeat has nothing to stage
    for i in range(count):
        RedBeatSchedulerEntry(
            f"bench-{i}",
            work.task,
            crontab(minute=due.minute, hour=due.hour),
            args=work.args(i),
            options={"queue": work.queue},
            app=app,
        ).save()
    logs = scratch / "logs" / work.label
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(env, logs)
    if work.worker is None:
        stack.processes["worker"] = celery_worker(
            "bench.redbeat_app", work.queue, worker_argv, env, logs / "worker.log"
        )
    else:
        work.worker.start(stack)
    base = [sys.executable, "-m", "celery", "-A", "bench.redbeat_app"]
    stack.processes["beat"] = subprocess.Popen(
        [*base, "beat", "-S", "redbeat.RedBeatScheduler", "--loglevel", "WARNING"],
        env=env,
        cwd=logs,
        stdout=open(logs / "beat.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: time.time() > due.timestamp(), 600, every_s=0.5)

        def arrived() -> int:
            return len({r[1] for r in recorder.records()[0]})

        wait_until(lambda: arrived() >= count, 300, every_s=2)
        time.sleep(2)
        figures = stack_figures(stack)
        exited = {n: p.returncode for n, p in stack.processes.items() if p.poll() is not None}
    finally:
        stack.stop_all()
    records, extra = recorder.records()
    result, lags = summarize(work.label, records, count, due.timestamp())
    result.update(processes=figures, **own_figures(figures), worker=" ".join(worker_argv))
    if exited:  # its peak RSS is gone with it (counted as 0)
        result["exited_early"] = exited
    if "celery_task_ids" in extra:
        result["celery_task_ids"] = extra["celery_task_ids"]
    client.flushdb()
    return result, lags


# --------------------------------------------------------------------------- scenarios


def definition(name: str, url: str, when: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": {"at": when.isoformat()},
        "target": {"url": url, "method": "GET", "timeout_seconds": extra.pop("timeout", 30)},
        "retry": {"max_attempts": 1},
        **extra,
    }


def scenario_burst(
    target: RunningTarget,
    count: int,
    scratch: Path,
    env: dict[str, str],
    shape: str = "user",
    trigger_processes: int = 1,
) -> tuple[dict[str, Any], list[float]]:
    """``shape`` ``user``: daily crons in several zones that POST JSON with headers,
    created through the API (``bench/registration.py``); ``oneshot-get``: one-time GETs
    stored directly, as the burst was first measured."""
    if shape == "oneshot-get":
        due = due_minute(count)
        defs = [definition(f"burst-{i}", target.url("/ok"), due) for i in range(count)]
        result, lags = run_taskhub(
            "burst oneshot-get",
            target,
            defs,
            due.timestamp(),
            scratch,
            env,
            trigger_processes=trigger_processes,
        )
    else:
        due = due_minute(count, registration.SECONDS_PER_TASK["batch"])
        url = target.url("/ok")
        defs = [registration.user_definition(i, url, due) for i in range(count)]
        result, lags = run_taskhub(
            "burst",
            target,
            defs,
            due.timestamp(),
            scratch,
            env,
            through_api=True,
            trigger_processes=trigger_processes,
        )
    result["trigger_processes"] = trigger_processes
    if env:
        result["env"] = env  # the settings --env changed from the shipped defaults
    return result, lags


def scenario_celery(
    user: CeleryUserWorker, count: int, scratch: Path, env: dict[str, str]
) -> tuple[dict[str, Any], list[float]]:
    """``count`` one-time tasks due at one minute, each sending the user's Celery task
    (created through the service, as the API creates them) to taskhub's own broker (the
    default of TASKHUB_CELERY_BROKERS), where the user's workers consume it."""
    due = due_minute(count)
    defs = [
        {
            "name": f"celery-{i}",
            "schedule": {"at": due.isoformat()},
            "target": {
                "celery": {
                    "task": celery_user_app.TASK,
                    "args": [f"celery-{i}"],
                    "queue": celery_user_app.QUEUE,
                },
                "timeout_seconds": 30,
            },
            "retry": {"max_attempts": 1},
        }
        for i in range(count)
    ]
    return run_taskhub("celery", user, defs, due.timestamp(), scratch, env, user_worker=user)


def user_workers_capacity(user: CeleryUserWorker, count: int, scratch: Path) -> dict[str, Any]:
    """How fast the user's workers receive when ``count`` Celery tasks already wait in
    their queue (sent by the bench itself): the floor of any scheduler's lag at receipt
    in this scenario is about ``count`` / this rate."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    app = celery_user_app.app
    with app.connection_for_write(REDIS_URL) as connection:
        producer = app.amqp.Producer(connection)
        for i in range(count):
            app.send_task(
                celery_user_app.TASK,
                args=[f"capacity-{i}"],
                queue=celery_user_app.QUEUE,
                producer=producer,
            )
    logs = scratch / "logs" / "user-capacity"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(os.environ, logs)
    user.start(stack)
    try:
        received = user.wait_for(count, 300)
    finally:
        stack.stop_all()
    arrivals = [at for at, _, _, _ in user.records()[0]]
    user.reset()
    spent = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    return {
        "user_workers_capacity": {
            "tasks": count,
            "received": len(arrivals),
            "finished": received,
            "receipts_per_s": round(len(arrivals) / max(spent, 1e-3)),
        }
    }


def comparison(name: str, ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """taskhub's run beside redbeat's: lag, and the ratio of each lag figure."""
    return {
        "comparison": name,
        "taskhub_lag_s": ours["lag_s"],
        "redbeat_lag_s": peer["lag_s"],
        "redbeat_over_taskhub": {
            k: round(peer["lag_s"][k] / max(ours["lag_s"][k], 1e-3), 1) for k in ours["lag_s"]
        },
        "workers_rss_mb": [ours["workers_peak_rss_mb"], peer["workers_peak_rss_mb"]],
        "rss_mb": [ours["total_peak_rss_mb"], peer["total_peak_rss_mb"]],
        "cpu_s": [ours["total_cpu_s"], peer["total_cpu_s"]],
    }


def scenario_slow(
    target: RunningTarget, count: int, scratch: Path, env: dict[str, str]
) -> tuple[dict[str, Any], list[float]]:
    due = due_minute(count)
    defs = [definition(f"slow-{i}", target.url("/delay/1"), due) for i in range(count)]
    return run_taskhub("slow-1s", target, defs, due.timestamp(), scratch, env)


def scenario_hung(
    target: RunningTarget, count: int, scratch: Path, env: dict[str, str]
) -> tuple[dict[str, Any], list[float]]:
    due = due_minute(2 * count)
    defs = [definition(f"hung-{i}", target.url("/hang"), due, timeout=10) for i in range(count)]
    defs += [definition(f"healthy-{i}", target.url("/ok"), due) for i in range(count)]
    result, _ = run_taskhub("hung+healthy", target, defs, due.timestamp(), scratch, env)
    records, _ = target.records()
    healthy = [r for r in records if r[2] == "/ok"]
    healthy_result, lags = summarize("healthy", healthy, count, due.timestamp())
    result["healthy_lag_s"] = healthy_result["lag_s"]
    result["healthy_fired"] = healthy_result["fired"]
    result["hung_timeout_s"] = 10
    trigger = result["processes"].get("trigger", {}).get("peak_rss_mb", 0.0)
    result["trigger_peak_rss_mb"] = trigger
    idle = result["rss_before_due_mb"].get("trigger", trigger)
    # Every request (hung and healthy) was in flight at once at the peak.
    result["kb_per_in_flight_request"] = round((trigger - idle) * 1024 / (2 * count), 1)
    return result, lags


def scenario_noisy_neighbour(
    target: RunningTarget,
    hung_count: int,
    quick_count: int,
    scratch: Path,
    env: dict[str, str],
    hung_timeout_s: int = 60,
) -> dict[str, Any]:
    """Tenant A: ``hung_count`` tasks due together at a host that accepts connections
    and never answers (127.0.0.2, ``hung_timeout_s``). Tenant B: ``quick_count`` quick
    tasks at another host (127.0.0.1), the first due 3 s later, then one a second.
    Prints both tenants' lag, and what A held of the target at once."""
    due = due_minute(hung_count + quick_count)
    hung_url = target.url("/hang", host="127.0.0.2")
    defs = [
        {**definition(f"a-{i}", hung_url, due, timeout=hung_timeout_s), "tenant": "tenant-a"}
        for i in range(hung_count)
    ]
    defs += [
        {
            **definition(f"b-{i}", target.url("/ok"), due + timedelta(seconds=3 + i)),
            "tenant": "tenant-b",
        }
        for i in range(quick_count)
    ]
    result, _ = run_taskhub(
        "noisy-neighbour", target, defs, due.timestamp(), scratch, env, timeout_s=900
    )
    records, extra = target.records()
    tenants = {}
    for tenant, path in (("a", "/hang"), ("b", "/ok")):
        mine = [r for r in records if r[2] == path]
        count = hung_count if tenant == "a" else quick_count
        summary, lags = summarize(f"tenant-{tenant}", mine, count, due.timestamp())
        tenants[f"tenant_{tenant}"] = {
            "tasks": count,
            "fired": summary["fired"],
            "lost": summary["lost"],
            "doubled": summary["doubled"],
            "lag_s": summary["lag_s"],
            **({"lags_s": [round(lag, 3) for lag in sorted(lags)]} if tenant == "b" else {}),
        }
    peak = extra.get("max_concurrent") or {}
    return {
        "scenario": "noisy-neighbour",
        "hung_timeout_s": hung_timeout_s,
        "settings": {k: v for k, v in env.items() if k.startswith("TASKHUB_")},
        **tenants,
        "tenant_a_most_at_target_at_once": max(
            (n for host, n in peak.items() if host.startswith("127.0.0.2")), default=0
        ),
        "finished": result["finished"],
        "statuses": result["statuses"],
        "makespan_s": result["makespan_s"],
        "workers_peak_rss_mb": result["workers_peak_rss_mb"],
        "total_cpu_s": result["total_cpu_s"],
    }


def scenario_spread(
    target: RunningTarget, count: int, scratch: Path, env: dict[str, str]
) -> tuple[dict[str, Any], list[float]]:
    base = due_minute(count)
    defs = [
        definition(f"spread-{i}", target.url("/ok"), base + timedelta(seconds=int(i * 60 / count)))
        for i in range(count)
    ]
    return run_taskhub("spread-60s", target, defs, base.timestamp(), scratch, env)


def fill_table(engine: Engine, total: int, due_count: int) -> None:
    """``total`` stored tasks, ``due_count`` of them due now and the rest spread over the
    next month: one task through the service, then copies of it made by the server."""
    now = utcnow()
    columns = [c.name for c in scheduled_tasks.columns if c.name not in ("id", "name")]
    due_at = now - timedelta(seconds=1)
    far = now + timedelta(days=30)
    load_tasks(engine, [definition("seed", "http://127.0.0.1:9/ok", far)], load())
    with engine.begin() as conn:
        select = ", ".join(
            "(CASE WHEN g <= :due THEN CAST(:due_at AS timestamptz) "
            "ELSE CAST(:far AS timestamptz) + g * interval '1 second' END)"
            if c in ("next_execution_time", "run_at")
            else c
            for c in columns
        )
        conn.execute(
            sa.text(
                f"INSERT INTO scheduled_tasks (id, name, {', '.join(columns)}) "
                f"SELECT gen_random_uuid(), 'copy-' || g, {select} "
                "FROM scheduled_tasks, generate_series(1, :total) AS g"
            ),
            {"due": due_count, "due_at": due_at, "far": far, "total": total - 1},
        )
        # The copies' next occurrences, as taskhub keeps them (task_queries.insert_task).
        conn.execute(
            sa.text(
                "INSERT INTO next_occurrences (scheduled_for, task_id) "
                "SELECT next_execution_time, id FROM scheduled_tasks WHERE name LIKE 'copy-%'"
            )
        )
    # As a table stands in production (autovacuum also visits a table after a bulk
    # insert): its rows' hint bits and visibility map set. Otherwise the first claim
    # pays for setting them on every row it reads, a one-off cost of the bulk load.
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(sa.text("VACUUM (ANALYZE) scheduled_tasks"))
        conn.execute(sa.text("VACUUM (ANALYZE) next_occurrences"))


def fill_history(engine: Engine, total: int, days: int, start: datetime) -> None:
    """``total`` ended executions of 1,000 tasks (ids ``md5(n)``, n = 0..999; the tasks
    themselves are made by :func:`history_tasks`), one attempt each, their finish times
    spread evenly over ``days`` days from ``start``, made by the server in one go."""
    at = "CAST(:start AS timestamptz) + g * :step * interval '1 second'"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO executions (task_id, scheduled_for, idempotency_key, status, "
                "attempts, http_status, duration_ms, started_at, finished_at, created_at) "
                f"SELECT CAST(md5((g % 1000)::text) AS uuid), {at}, md5(g::text), "
                f"'succeeded', 1, 200, 12, {at}, {at}, {at} "
                "FROM generate_series(1, :total) AS g"
            ),
            {"start": start, "step": days * 86400 / total, "total": total},
        )
        conn.execute(
            sa.text(
                "INSERT INTO attempts (execution_id, number, started_at, duration_ms, "
                "http_status) SELECT id, 1, started_at, 12, 200 FROM executions"
            )
        )
    vacuum(engine, "executions", "attempts")


def history_tasks(engine: Engine, start: datetime) -> None:
    """The 1,000 tasks :func:`fill_history`'s executions belong to: one through the
    service, then copies of it made by the server."""
    load_tasks(
        engine, [definition("seed", "http://127.0.0.1:9/ok", start + timedelta(days=900))], load()
    )
    columns = [c.name for c in scheduled_tasks.columns if c.name not in ("id", "name")]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO scheduled_tasks (id, name, {', '.join(columns)}) "
                f"SELECT CAST(md5(g::text) AS uuid), 'copy-' || g, {', '.join(columns)} "
                "FROM scheduled_tasks, generate_series(0, 999) AS g"
            )
        )
    vacuum(engine, "scheduled_tasks")


def table_storage(engine: Engine, *tables: str) -> dict[str, int]:
    """Each table's bytes on disk, with its indexes and TOAST (PostgreSQL)."""
    with engine.connect() as conn:
        return {
            table: int(
                conn.execute(
                    sa.text("SELECT pg_total_relation_size(:t)"), {"t": table}
                ).scalar_one()
            )
            for table in tables
        }


def vacuum(engine: Engine, *tables: str) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))


def scenario_retention(total: int, days: int, batch_size: int) -> dict[str, Any]:
    """History retention on PostgreSQL: ``total`` ended executions (and one attempt
    each) spread over ``days`` days, in a database at the schema before retention.

    Measures the upgrade (migration 0019: its index built concurrently), one prune pass
    removing the oldest day by batched deletes (no pause between batches), and the same
    day's rows as a partition of executions and attempts tables partitioned by day,
    removed by ``DROP TABLE`` of the partition (after ``DETACH ... CONCURRENTLY``)."""
    from taskhub.core.settings import RetentionSettings
    from taskhub.engine import retention

    start = datetime(2026, 1, 1, tzinfo=utcnow().tzinfo)
    with scratch_database("0015") as (_name, url):
        engine = engines.create_engine(url)
        began = time.perf_counter()
        fill_history(engine, total, days, start)
        load_s = time.perf_counter() - began
        began = time.perf_counter()
        schema.upgrade(url, "head")
        upgrade_s = time.perf_counter() - began
        history_tasks(engine, start)
        # The same rows in tables partitioned by day of finish (attempts carry their
        # execution's finish time, the key they must share to go with it), each with
        # the plain table's indexes: the first day's partitions are what goes.
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE executions_part (LIKE executions INCLUDING DEFAULTS) "
                    "PARTITION BY RANGE (finished_at)"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TABLE attempts_part (LIKE attempts INCLUDING DEFAULTS, "
                    "execution_finished_at timestamptz NOT NULL) "
                    "PARTITION BY RANGE (execution_finished_at)"
                )
            )
            for day in range(days + 1):
                low, high = start + timedelta(days=day), start + timedelta(days=day + 1)
                for table in ("executions_part", "attempts_part"):
                    conn.execute(
                        sa.text(
                            f"CREATE TABLE {table}_{day} PARTITION OF {table} FOR VALUES "
                            f"FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
                        )
                    )
            conn.execute(sa.text("INSERT INTO executions_part SELECT * FROM executions"))
            conn.execute(
                sa.text(
                    "INSERT INTO attempts_part SELECT a.*, e.finished_at FROM attempts a "
                    "JOIN executions e ON e.id = a.execution_id"
                )
            )
            conn.execute(sa.text("CREATE INDEX ON executions_part (task_id, id)"))
            conn.execute(sa.text("CREATE INDEX ON attempts_part (execution_id, number)"))
        with engine.connect() as conn:
            partition_rows = int(
                conn.execute(sa.text("SELECT count(*) FROM executions_part_0")).scalar_one()
            )
        day_end = start + timedelta(days=1)
        settings = RetentionSettings(
            execution_days=days, dead_letter_days=0, batch_size=batch_size, pause_s=0
        )
        began = time.perf_counter()
        report = retention.run_pass(engine, settings, lambda: day_end + timedelta(days=days))
        delete_s = time.perf_counter() - began
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            began = time.perf_counter()
            for table in ("executions_part", "attempts_part"):
                conn.execute(
                    sa.text(f"ALTER TABLE {table} DETACH PARTITION {table}_0 CONCURRENTLY")
                )
                conn.execute(sa.text(f"DROP TABLE {table}_0"))
            drop_s = time.perf_counter() - began
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        engine.dispose()
    return {
        "scenario": "retention",
        "postgresql": version,
        "executions": total,
        "attempts": total,
        "days": days,
        "load_s": round(load_s, 2),
        "upgrade_0019_s": round(upgrade_s, 2),
        "upgrade_per_million_rows_s": round(upgrade_s * 1e6 / total, 2),
        "batched_delete": {
            "executions": report.executions,
            "attempts": report.attempts,
            "batches": report.batches,
            "batch_size": batch_size,
            "seconds": round(delete_s, 3),
            "executions_per_s": round(report.executions / max(delete_s, 1e-6)),
        },
        "partition_drop": {
            "executions": partition_rows,
            "seconds": round(drop_s, 4),
        },
    }


def scenario_writeback(count: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The chord callback's work alone: ``count`` claimed executions (claimed by a tick
    that publishes nothing) get a successful outcome each, written back in chunks of
    ``TASKHUB_CHUNK_SIZE`` as ``record_chunk`` does, in this process."""
    import random

    from taskhub.core.messages import TriggerOutcome
    from taskhub.engine import discovery, writeback

    with scratch_database() as (_name, url):
        engine = engines.create_engine(url)
        fill_table(engine, count + 1, count)  # the seed task is not due
        settings = load({**(env or {}), "TASKHUB_DATABASE_URL": url})
        discovery.run_tick(engine, settings, lambda requests: None, utcnow)
        with engine.connect() as conn:
            ids = [row.id for row in conn.execute(sa.select(executions.c.id))]
        now = utcnow()
        outcomes = [
            TriggerOutcome(
                execution_id=execution_id,
                attempt=1,
                started_at=now,
                duration_ms=3,
                http_status=200,
                error_kind=None,
                error=None,
                retry_after_s=None,
                response_excerpt="ok",
            )
            for execution_id in ids
        ]
        own_before, servers_before = time.process_time(), servers_cpu_s()
        started = time.perf_counter()
        applied = 0
        for i in range(0, len(outcomes), settings.chunk_size):
            chunk = outcomes[i : i + settings.chunk_size]
            report = writeback.record_outcomes(engine, chunk, settings, utcnow(), random.random)
            applied += report.applied
        elapsed_s = time.perf_counter() - started
        own_s, servers_s = time.process_time() - own_before, servers_cpu_since(servers_before)
        engine.dispose()
    return {
        "scenario": "writeback",
        "outcomes": len(outcomes),
        "applied": applied,
        "chunk_size": settings.chunk_size,
        "elapsed_s": round(elapsed_s, 3),
        "outcomes_per_s": round(applied / max(elapsed_s, 1e-6)),
        "cpu_s": {"writeback": round(own_s, 3), "postgres": round(servers_s, 3)},
    }


def keep_due(engine: Engine) -> None:
    """A copy of the table's due rows (``table_due``), to put them back from between
    runs (:func:`put_back_due`)."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS table_due"))
        conn.execute(
            sa.text(
                "CREATE TABLE table_due AS SELECT * FROM scheduled_tasks "
                "WHERE next_execution_time <= now()"
            )
        )


def put_back_due(url: str) -> None:
    """Executions gone, the due rows as :func:`keep_due` found them, the tables vacuumed
    and checkpointed, the broker empty: every run starts from the same state."""
    with psycopg.connect(url, autocommit=True) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'table_due' AND column_name <> 'id'"
            )
        ]
        conn.execute("TRUNCATE attempts, executions")
        assignments = ", ".join(f"{c} = d.{c}" for c in columns)
        conn.execute(
            f"UPDATE scheduled_tasks t SET {assignments} FROM table_due d WHERE t.id = d.id"
        )
        conn.execute("DELETE FROM next_occurrences WHERE task_id IN (SELECT id FROM table_due)")
        conn.execute(
            "INSERT INTO next_occurrences (scheduled_for, task_id) "
            "SELECT next_execution_time, id FROM table_due"
        )
        for table in ("scheduled_tasks", "next_occurrences", "executions"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
    redis.Redis.from_url(REDIS_URL).flushdb()


def scenario_table(
    total: int,
    due_count: int,
    process_counts: list[int],
    repeat: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Discovery alone on a big table: claim + publish rate, and the due query's plan.

    The table is loaded once; each run (``repeat`` for each count of ``process_counts``)
    starts from its due rows put back as they were (:func:`put_back_due`). The discovery
    passes run in processes of their own, started together (what that many state
    workers do with a backlog: each worker's tick or staging pass claims, and the claims
    skip each other's rows); the rate is everything published over the time until the
    last pass ended. ``env``: taskhub settings for the passes."""
    from taskhub.db import task_queries

    redis.Redis.from_url(REDIS_URL).flushdb()
    with scratch_database() as (_name, url):
        engine = engines.create_engine(url)
        load_started = time.perf_counter()
        fill_table(engine, total, due_count)
        load_s = time.perf_counter() - load_started
        storage = table_storage(engine, "scheduled_tasks", "next_occurrences")
        keep_due(engine)
        pass_env = {
            **(env or {}),
            "TASKHUB_DATABASE_URL": url,
            "TASKHUB_BROKER_URL": REDIS_URL,
            "TASKHUB_RESULT_BACKEND": REDIS_URL,
        }
        settings = load(pass_env)
        with engine.connect() as conn:
            query = task_queries.claim_due_tasks_statement(utcnow(), settings.claim_batch_size)
            compiled = query.compile(dialect=engine.dialect)
            plan = [
                row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
            ]
        engine.dispose()
        held = {
            "stored_schedules": total,
            "due": due_count,
            "explain_due_query": plan,
            "due_query_index_scan": any("Index" in line for line in plan)
            and not any("Seq Scan" in line for line in plan),
            # What holding the tasks costs: made by the server (generate_series), then
            # vacuumed and analyzed; the bytes are the tables' with their indexes and TOAST.
            "load_s": round(load_s, 1),
            "storage_bytes": storage,
            "storage_bytes_per_task": round(sum(storage.values()) / total),
        }
        first = True
        for processes in process_counts:
            for _ in range(max(1, repeat)):
                if not first:
                    put_back_due(url)
                first = False
                yield {"scenario": "table", **held, **_discovery_passes(pass_env, processes)}
    redis.Redis.from_url(REDIS_URL).flushdb()


def _discovery_passes(pass_env: dict[str, str], processes: int) -> dict[str, Any]:
    """``processes`` discovery passes at once over the due rows: their rate and CPU."""
    context = multiprocessing.get_context("spawn")
    done: multiprocessing.Queue[dict[str, float]] = context.Queue()
    # The passes keep their connections until the servers' CPU is read: a server
    # process that has exited takes its CPU seconds with it.
    measured = context.Event()
    start_at = time.time() + 2 + processes  # after every process has connected
    passes = [
        context.Process(target=discovery_pass, args=(pass_env, start_at, done, measured))
        for _ in range(processes)
    ]
    for process in passes:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    servers_before = servers_cpu_s()
    reports = [done.get(timeout=120) for _ in passes]
    servers_s = servers_cpu_since(servers_before)
    measured.set()
    for process in passes:
        process.join(10)
    published = sum(int(r["published"]) for r in reports)
    ended = [r["ended_at"] for r in reports]
    elapsed_s = max(ended) - start_at
    own_s = sum(r["cpu_s"] for r in reports)
    return {
        "discovery_processes": processes,
        "claimed": sum(int(r["claimed"]) for r in reports),
        "published": published,
        # How the work fell between the processes: the first to end waits for the last.
        "published_per_process": [int(r["published"]) for r in reports],
        "first_to_last_end_s": round(max(ended) - min(ended), 3),
        "elapsed_s": round(elapsed_s, 3),
        "claim_publish_per_s": round(published / max(elapsed_s, 1e-6)),
        # Where the CPU went: the discovery processes (claim + publish, every thread) and
        # the PostgreSQL and Redis servers. Their sum spread over every core of the
        # machine is the fastest this work could go here.
        "cpu_s": {"discovery": round(own_s, 3), "postgres_and_redis": round(servers_s, 3)},
        "cpu_bound_per_s": round(published * (os.cpu_count() or 1) / max(own_s + servers_s, 1e-6)),
    }


def discovery_pass(
    env: dict[str, str],
    start_at: float,
    done: multiprocessing.Queue[dict[str, float]],
    measured: Any,
) -> None:
    """One process's discovery pass (a tick), from ``start_at``, connected beforehand."""
    from taskhub.engine import discovery
    from taskhub.worker import celery_app as taskhub_celery

    settings = load(env)
    taskhub_celery.settings = settings
    taskhub_celery.app.conf.update(taskhub_celery.celery_config(settings))
    engine = engines.create_engine(settings.database_url)
    with engine.connect():
        pass
    with taskhub_celery.app.producer_or_acquire():
        pass
    # The thread's result backend, as a worker thread has it after its first tick: made
    # on first use, it looks up its class among installed packages (~10 ms).
    cast(Any, taskhub_celery.app.backend).client.ping()
    taskhub_celery.exempt_startup_objects_from_gc()  # as a worker does once it is ready
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = time.process_time()
    report = discovery.run_tick(engine, settings, taskhub_celery.publish, utcnow)
    done.put(
        {
            "ended_at": time.time(),
            "cpu_s": time.process_time() - cpu_before,
            "claimed": report.occurrences_claimed,
            "published": report.published,
        }
    )
    measured.wait(120)
    engine.dispose()


def scenario_console(
    tasks: int,
    noise_tasks: int,
    requests: int,
    warmup: int,
    budget_s: float,
    scratch: Path,
    env: dict[str, str],
    revision: str = "head",
) -> dict[str, Any]:
    """The console's pages over ``tasks`` tasks of one tenant (and ``noise_tasks`` of
    another), ten executions each, served by a real ``taskhub api`` process and timed
    from outside (``bench/console.py``). ``revision``: the schema's migration (an older
    one shows what a later migration's indexes bought)."""
    with scratch_database(revision) as (_name, url):
        engine = engines.create_engine(url)
        process_env = taskhub_env(url, scratch, env)
        started = time.perf_counter()
        loaded = console.load(engine, tasks, noise_tasks, load(process_env))
        load_s = time.perf_counter() - started
        sizes = console.table_sizes(engine)
        engine.dispose()
        log_dir = scratch / "logs" / "console"
        log_dir.mkdir(parents=True, exist_ok=True)
        with console.api_process(process_env, log_dir / "api.log") as served:
            pages = console.time_pages(served.port, loaded, requests, warmup, budget_s)
    return {
        "scenario": "console",
        "schema_revision": revision,
        "tasks": tasks,
        "noise_tasks": noise_tasks,
        "executions_per_task": console.EXECUTIONS_PER_TASK,
        "load_s": round(load_s, 1),
        "load_parts_s": loaded.seconds,
        "tables": sizes,
        "measured": "client-side on loopback, one keep-alive connection, one request at a "
        "time; server_mean_ms from the API's own request-duration histogram",
        "pages": pages,
    }


def scenario_api(
    creates: int,
    batches: int,
    tasks: int,
    requests: int,
    budget_s: float,
    scratch: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    """The API at scale (``bench/api.py``): creates and batches from keep-alive clients
    through a real ``taskhub api`` process on a scratch database; then the reads over
    ``tasks`` tasks (ten executions each) loaded in bulk into another."""
    log_dir = scratch / "logs" / "api"
    log_dir.mkdir(parents=True, exist_ok=True)
    with scratch_database() as (_name, url):
        engine = engines.create_engine(url)
        writes = api.measure_writes(
            engine,
            taskhub_env(url, scratch, env),
            log_dir / "writes.log",
            creates,
            batches,
            registration.CLIENTS,
        )
        engine.dispose()
    with scratch_database() as (_name, url):
        engine = engines.create_engine(url)
        reads = api.measure_reads(
            engine,
            taskhub_env(url, scratch, env),
            log_dir / "reads.log",
            tasks,
            requests,
            budget_s,
        )
        engine.dispose()
    return {
        "scenario": "api",
        "processes": "one taskhub api process (its defaults), PostgreSQL, and the clients, "
        "all on this machine",
        **writes,
        "reads": reads,
    }


# --------------------------------------------------------------------------- the soak

#: The soak's tasks fire each occurrence at a stable offset within this many seconds after
#: its due minute (the task field ``spread_seconds``): ``rate`` * 60 tasks on
#: ``* * * * *`` make ``rate`` occurrences a second.
SOAK_SPREAD_S = 60
#: The soak's tables of interest (every other table's size is summed as ``others``).
SOAK_TABLES = ("executions", "attempts", "scheduled_tasks", "next_occurrences")


@dataclass(frozen=True)
class SoakOptions:
    minutes: int = 30
    rate: int = 1000
    kill_every_s: float = 300
    retention_minutes: float = 5
    prune_interval_s: float = 60
    #: RSS at the end is compared with RSS after this many minutes (the issue: 5).
    baseline_minutes: int = 5


def soak_settings(options: SoakOptions) -> dict[str, str]:
    """What the soak changes from the shipped defaults: retention short enough to run
    (and catch up) within the soak, as a fraction of a day, and the prune interval."""
    return {
        "TASKHUB_EXECUTION_RETENTION_DAYS": repr(options.retention_minutes / 1440),
        "TASKHUB_PRUNE_INTERVAL_SECONDS": f"{options.prune_interval_s:g}",
    }


def table_sizes_mb(engine: Engine) -> dict[str, float]:
    """``pg_total_relation_size`` of the soak's tables (and the rest summed), the
    database's size, in MB; and the executions' live and dead rows and autovacuum runs as
    the statistics have them."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT relname, pg_total_relation_size(relid), n_live_tup, n_dead_tup, "
                "autovacuum_count FROM pg_stat_user_tables"
            )
        ).all()
        database = conn.execute(sa.text("SELECT pg_database_size(current_database())"))
        database_bytes = int(database.scalar_one())
    sizes = {name: 0.0 for name in SOAK_TABLES}
    others = 0
    executions_rows: dict[str, int] = {}
    for name, size, rows_live, rows_dead, autovacuums in rows:
        if name in sizes:
            sizes[name] = round(size / 2**20, 2)
        else:
            others += size
        if name == "executions":
            executions_rows = {
                "executions_live_rows": int(rows_live),
                "executions_dead_rows": int(rows_dead),
                "executions_autovacuums": int(autovacuums),
            }
    return {
        **sizes,
        "others": round(others / 2**20, 2),
        "database": round(database_bytes / 2**20, 2),
        **executions_rows,
    }


def in_flight_of(engine: Engine, pids: list[int]) -> tuple[dict[str, int], list[str]]:
    """What the processes ``pids`` hold right now: how many executions still ``running``
    one of them took (``held_by``, taskhub/engine/holders.py; taken as its message
    started, so some wait for their fire time) and the requests in flight their last
    heartbeats reported; and the held executions' idempotency keys."""
    suffixes = tuple(f":{pid}" for pid in pids)
    with engine.connect() as conn:
        held = conn.execute(
            sa.select(executions.c.held_by, executions.c.idempotency_key).where(
                executions.c.status == "running", executions.c.held_by.is_not(None)
            )
        ).all()
        beats = conn.execute(
            sa.select(worker_heartbeats.c.process, worker_heartbeats.c.in_flight)
        ).all()
    keys = [str(key) for by, key in held if str(by).endswith(suffixes)]
    in_flight = sum(int(n) for p, n in beats if str(p).endswith(suffixes))
    return {"held": len(keys), "heartbeat_in_flight": in_flight}, keys


def not_ended(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(executions.c.status.not_in(TERMINAL))
            ).scalar_one()
        )


@dataclass
class SoakArrivals:
    """The target's records as they are drained: each key's arrivals, and each
    occurrence's lag (its first arrival minus its own fire time: the due time plus its
    spread offset, computed as taskhub computes it) by due minute."""

    first_due: float
    seen: Counter[str]
    lags: dict[int, list[tuple[float, float]]]  # due minute → [(fire time, lag)]

    def add(self, records: list[Record]) -> None:
        from taskhub.core.occurrences import spread_offset_s

        for at, key, _path, scheduled_for in records:
            self.seen[key] += 1
            if self.seen[key] > 1:
                continue
            due = datetime.fromisoformat(scheduled_for.replace("Z", "+00:00")).timestamp()
            fire = due + spread_offset_s(key, SOAK_SPREAD_S)
            minute = int((due - self.first_due) // 60)
            self.lags.setdefault(minute, []).append((fire, at - fire))


def soak_lost(engine: Engine, seen: Counter[str], first_due: datetime, minutes: int) -> int:
    """Occurrences due in the window (every task, every minute) never received."""
    from taskhub.core.occurrences import idempotency_key

    with engine.connect() as conn:
        ids = [str(i) for i in conn.execute(sa.select(scheduled_tasks.c.id)).scalars()]
    dues = [first_due + timedelta(minutes=m) for m in range(minutes)]
    return sum(1 for i in ids for due in dues if idempotency_key(i, due) not in seen)


def scenario_soak(
    target: RunningTarget, options: SoakOptions, scratch: Path, env_extra: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A soak: ``options.rate`` occurrences a second for ``options.minutes`` minutes, with
    retention running and the trigger worker ``kill -9``ed every ``options.kill_every_s``.

    The load: ``rate`` * 60 tasks on ``* * * * *`` with ``spread_seconds`` 60, loaded
    through taskhub's own validation (:func:`load_tasks`), active from the first due
    minute for ``minutes`` occurrences each (``start_at``, ``end_at``), one GET to the
    instant target each, one attempt. Each occurrence fires at its due time plus its
    spread offset (``taskhub.core.occurrences.spread_offset_s`` of its Idempotency-Key),
    and its lag is counted from that fire time. Retention: ``TASKHUB_EXECUTION_RETENTION_
    DAYS`` is ``retention_minutes`` as a fraction of a day and the prune pass runs every
    ``prune_interval_s`` (:func:`soak_settings`, printed; ``--env`` overrides them). The
    production split runs as in every scenario; at each kill the trigger worker and its
    children get SIGKILL and a new one starts at once, as a supervisor would restart it,
    and what the killed one held is counted (executions ``running`` with it as
    ``held_by``, and its heartbeat's requests in flight). Every minute the RSS of each
    process, the PostgreSQL server's, and the tables' and database's sizes are sampled
    (the sample of a minute is taken before a kill due at the same moment).

    At the end (every execution ended): lost (occurrences due in the window never
    received), repeats (arrivals of a key beyond its first) beside what was held at the
    kills, lag by due minute and outside the minute after each kill, RSS at the end
    against RSS after ``baseline_minutes``, and the database's size after retention has
    caught up (``retention_minutes`` + 1 + two prune intervals) against its largest
    since. Returns the summary and one line per minute."""
    count = options.rate * SOAK_SPREAD_S
    redis.Redis.from_url(REDIS_URL).flushdb()
    target.drain()
    url = target.url("/ok")

    def definitions(first_due: datetime, names: range) -> list[dict[str, Any]]:
        last_due = first_due + timedelta(minutes=options.minutes - 1)
        return [
            {
                **definition(f"soak-{i}", url, first_due),
                "schedule": {"cron": "* * * * *"},
                "spread_seconds": SOAK_SPREAD_S,
                "start_at": first_due.isoformat(),
                "end_at": (last_due + timedelta(seconds=30)).isoformat(),
            }
            for i in names
        ]

    changed = soak_settings(options)
    samples: list[dict[str, Any]] = []
    kills: list[dict[str, Any]] = []
    held_keys: set[str] = set()
    with scratch_database() as (_name, db_url):
        engine = engines.create_engine(db_url)
        env = taskhub_env(db_url, scratch, {**changed, **env_extra})
        stack = Stack(env, scratch / "logs" / "soak")
        stack.log_dir.mkdir(parents=True, exist_ok=True)
        # The first due minute leaves time to load every task (at this machine's pace
        # now, measured on a few, with half as much again to spare) and for beat to tick
        # once before it, as in a running deployment.
        probe = definitions(due_minute(count), range(min(count, 500)))
        per_task = load_seconds_per_task(engine, probe, load(env))
        first_due = due_minute(count, 1.5 * per_task)
        load_tasks(engine, definitions(first_due, range(count)), load(env))
        if time.time() > first_due.timestamp() - WARM_TICK_S:
            print("soak: loading took longer than planned: no tick before", file=sys.stderr)
        window_end = first_due.timestamp() + options.minutes * 60
        arrivals = SoakArrivals(first_due.timestamp(), Counter(), {})
        print(
            f"soak: {count} tasks loaded, first due at {first_due.isoformat()}, "
            f"{options.minutes} min",
            file=sys.stderr,
        )
        stack.start("trigger", "trigger")
        stack.start("state", "state")
        stack.start("beat", "beat")
        try:
            wait_until(lambda: time.time() > first_due.timestamp(), 900, every_s=0.5)
            start = first_due.timestamp()
            next_sample, next_kill, next_drain = start + 60, start + options.kill_every_s, 0.0
            deadline = window_end + 600
            while time.time() < deadline:
                now = time.time()
                if now >= next_drain:
                    arrivals.add(target.drain())
                    next_drain = now + 5
                if now >= next_sample:
                    sample = {
                        "minute": round((next_sample - start) / 60),
                        "rss_mb": {**rss_tree_mb(stack), "postgres": postgres_rss_mb()},
                        "sizes_mb": table_sizes_mb(engine),
                        "load_avg": round(os.getloadavg()[0], 2),
                    }
                    samples.append(sample)
                    print(f"soak: {json.dumps(sample)}", file=sys.stderr)
                    next_sample += 60
                if now >= next_kill and next_kill < window_end:
                    pids = process_tree(stack.processes["trigger"].pid)
                    held, keys = in_flight_of(engine, pids)
                    stack.kill("trigger")
                    stack.start("trigger", "trigger")
                    held_keys.update(keys)
                    kills.append({"at_s": round(time.time() - start, 1), **held})
                    print(f"soak: killed the trigger worker {kills[-1]}", file=sys.stderr)
                    next_kill += options.kill_every_s
                if now > window_end + 5 and next_sample > window_end and not_ended(engine) == 0:
                    break
                time.sleep(0.5)
            finished = not_ended(engine) == 0
            time.sleep(2)
            arrivals.add(target.drain())
            figures = stack_figures(stack)
        finally:
            stack.stop_all()
        lost = soak_lost(engine, arrivals.seen, first_due, options.minutes)
        with engine.connect() as conn:
            statuses = {
                str(status): int(n)
                for status, n in conn.execute(
                    sa.select(executions.c.status, sa.func.count()).group_by(executions.c.status)
                )
            }
            # Retention deletes; only vacuum makes the space reusable: without autovacuum
            # the database cannot stay flat, whatever taskhub does.
            server = {
                setting: str(conn.execute(sa.text(f"SHOW {setting}")).scalar_one())
                for setting in ("server_version", "autovacuum", "autovacuum_naptime")
            }
        engine.dispose()
    summary = soak_summary(
        options, count, changed, arrivals, samples, kills, held_keys, lost, figures
    )
    return summary | {
        "finished": finished,
        "statuses_left": statuses,
        "postgresql": server,
    }, soak_minutes(arrivals, samples, kills)


def after_kill(fire: float, start: float, kills: list[dict[str, Any]]) -> bool:
    """Whether a fire time falls in the minute after one of the kills."""
    return any(0 <= fire - (start + kill["at_s"]) < 60 for kill in kills)


def soak_minutes(
    arrivals: SoakArrivals, samples: list[dict[str, Any]], kills: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One line per minute: the lag of the occurrences due in it (and of those not fired
    in the minute after a kill), and the sample taken at its end (RSS, sizes)."""
    by_minute = {s["minute"]: s for s in samples}
    lines = []
    start = arrivals.first_due
    for minute in sorted(set(arrivals.lags) | {m - 1 for m in by_minute}):
        rows = arrivals.lags.get(minute, [])
        lags = [lag for _, lag in rows]
        quiet = [lag for fire, lag in rows if not after_kill(fire, start, kills)]
        sample = by_minute.get(minute + 1, {})
        lines.append(
            {
                "soak_minute": minute,
                "occurrences": len(lags),
                "lag_s": lag_figures(lags),
                "lag_outside_minute_after_kills_s": lag_figures(quiet),
                **{k: v for k, v in sample.items() if k != "minute"},
            }
        )
    return lines


def soak_summary(
    options: SoakOptions,
    count: int,
    changed: dict[str, str],
    arrivals: SoakArrivals,
    samples: list[dict[str, Any]],
    kills: list[dict[str, Any]],
    held_keys: set[str],
    lost: int,
    figures: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """The issue's figures, each beside whether it passed."""
    start = arrivals.first_due
    all_lags = [lag for rows in arrivals.lags.values() for _, lag in rows]
    quiet = [
        lag
        for rows in arrivals.lags.values()
        for fire, lag in rows
        if not after_kill(fire, start, kills)
    ]
    repeats = sum(n - 1 for n in arrivals.seen.values())
    held = sum(k["held"] for k in kills)
    repeats_of_held = sum(arrivals.seen[key] - 1 for key in held_keys if key in arrivals.seen)
    by_minute = {s["minute"]: s for s in samples}
    baseline_minute = min(options.baseline_minutes, max(1, options.minutes // 2))
    base = by_minute.get(baseline_minute, {}).get("rss_mb", {})
    end = by_minute.get(options.minutes, {}).get("rss_mb", {})
    rss_ratio = {n: round(end[n] / base[n], 3) for n in base if n in end and base[n]}
    caught_up = math.ceil(options.retention_minutes + 1 + 2 * options.prune_interval_s / 60)
    sizes = [(m, s["sizes_mb"]["database"]) for m, s in sorted(by_minute.items()) if m >= caught_up]
    database: dict[str, Any] = {"caught_up_minute": caught_up}
    flat = None
    if len(sizes) >= 2:
        at_caught_up, largest = sizes[0][1], max(size for _, size in sizes)
        database.update(
            at_caught_up=at_caught_up,
            largest_since=largest,
            end=sizes[-1][1],
            largest_over_caught_up=round(largest / at_caught_up, 3),
        )
        flat = largest <= 1.1 * at_caught_up
    quiet_figures = lag_figures(quiet)
    return {
        "scenario": "soak",
        "minutes": options.minutes,
        "rate_per_s": options.rate,
        "tasks": count,
        "spread_seconds": SOAK_SPREAD_S,
        "kill_every_s": options.kill_every_s,
        "settings_changed_from_defaults": changed,
        "expected": count * options.minutes,
        "received": len(arrivals.seen),
        "lost": lost,
        "repeats": repeats,
        "kills": kills,
        "held_at_kills": held,
        # Every repeat should be of an execution a killed worker held.
        "repeats_of_held": repeats_of_held,
        "repeats_of_others": repeats - repeats_of_held,
        "lag_s": lag_figures(all_lags),
        "lag_outside_minute_after_kills_s": quiet_figures,
        "rss_baseline_minute": baseline_minute,
        "rss_mb_baseline": base,
        "rss_mb_end": end,
        "rss_end_over_baseline": rss_ratio,
        "database_mb": database,
        "processes": figures,
        "pass": {
            "lost_0": lost == 0,
            "repeats_within_held_at_kills": repeats <= held and repeats == repeats_of_held,
            "lag_p99_le_2s_outside_kills": bool(quiet_figures and quiet_figures["p99"] <= 2),
            # taskhub's processes (the PostgreSQL server's figure is the machine's).
            "rss_within_10pct": {
                n: abs(r - 1) <= 0.1 for n, r in rss_ratio.items() if n != "postgres"
            },
            "database_flat": flat,
        },
    }


def plot_soak(lines: list[dict[str, Any]], kills: list[dict[str, Any]], path: Path) -> None:
    """Lag p50/p99 by due minute (kills marked), RSS per process and the sizes over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lag, rss, size) = plt.subplots(1, 3, figsize=(15, 4))
    with_lag = [line for line in lines if line["lag_s"]]
    for figures, key, label in (
        ("lag_s", "p50", "lag p50"),
        ("lag_s", "p99", "lag p99"),
        ("lag_outside_minute_after_kills_s", "p99", "p99 outside the minute after a kill"),
    ):
        shown = [line for line in with_lag if line.get(figures)]
        lag.plot(
            [line["soak_minute"] for line in shown],
            [line[figures][key] for line in shown],
            marker=".",
            label=label,
        )
    for kill in kills:
        for axis in (lag, rss, size):
            axis.axvline(kill["at_s"] / 60, color="grey", linestyle=":")
    lag.axhline(2, color="red", linestyle="--", linewidth=0.8)
    lag.set_xlabel("due minute (dotted: kill -9 of the trigger worker)")
    lag.set_ylabel("lag (s) from each occurrence's fire time")
    sampled = [line for line in lines if "rss_mb" in line]
    minutes = [line["soak_minute"] + 1 for line in sampled]
    names = sorted({n for line in sampled for n in line["rss_mb"]})
    for name in names:
        rss.plot(minutes, [line["rss_mb"].get(name) for line in sampled], marker=".", label=name)
    rss.set_xlabel("minute")
    rss.set_ylabel("RSS (MB)")
    for name in ("database", "executions", "attempts"):
        size.plot(minutes, [line["sizes_mb"][name] for line in sampled], marker=".", label=name)
    size.set_xlabel("minute")
    size.set_ylabel("size (MB)")
    for axis in (lag, rss, size):
        axis.legend(fontsize=7)
    fig.suptitle("taskhub soak")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def scenario_clients(target: RunningTarget, count: int) -> dict[str, Any]:
    url = target.url("/ok")
    best: dict[str, Any] = {}
    for name, bench in (
        ("aiohttp", http_clients.bench_aiohttp),
        ("urllib3", http_clients.bench_urllib3),
    ):
        bench(url, 200)
        t0 = time.perf_counter()
        errors = bench(url, count)
        rps = count / (time.perf_counter() - t0)
        best[name] = {"rps": round(rps), "errors": errors}
    target.reset()
    return {"scenario": "clients", "requests": count, **best}


# --------------------------------------------------------------------------- output


def plot(series: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    for label, lags in series.items():
        if not lags:
            continue
        hist.hist(lags, bins=60, alpha=0.6, label=label)
        ordered = sorted(lags)
        cdf.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
    hist.set_xlabel("lag (s): arrival at target - due time")
    hist.set_ylabel("occurrences")
    cdf.set_xlabel("lag (s)")
    cdf.set_ylabel("fraction arrived")
    cdf.axhline(0.99, linestyle=":", color="grey")
    hist.legend()
    cdf.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def repeated(scenario: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures that vary from run to run, side by side, with their median."""
    figures: dict[str, list[float]] = {}
    for run in runs:
        if scenario == "table":
            figures.setdefault("claim_publish_per_s", []).append(run["claim_publish_per_s"])
            figures.setdefault("cpu_bound_per_s", []).append(run["cpu_bound_per_s"])
            continue
        for key in ("p50", "p99"):
            figures.setdefault(f"lag_{key}_s", []).append(run["lag_s"].get(key, float("nan")))
        figures.setdefault("burst_rate_per_s", []).append(run["burst_rate_per_s"])
        figures.setdefault("workers_peak_rss_mb", []).append(run["workers_peak_rss_mb"])
        figures.setdefault("lost", []).append(run["lost"])
        figures.setdefault("doubled", []).append(run["doubled"])
    return {
        "repeated": scenario,
        "runs": len(runs),
        **({"discovery_processes": runs[0]["discovery_processes"]} if scenario == "table" else {}),
        **{
            key: {"each": values, "median": statistics.median(values)}
            for key, values in figures.items()
        },
    }


def emit(results: list[dict[str, Any]], value: dict[str, Any]) -> None:
    results.append(value)
    print(json.dumps(value), flush=True)


def process_counts(text: str) -> list[int]:
    """``--table-processes``: comma-separated counts, each at least 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,2, got {text!r}") from None
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"each count must be at least 1, got {text!r}")
    return counts


def setting(item: str) -> tuple[str, str]:
    """``--env NAME=VALUE``, refused by argparse with the option's name if malformed."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
    return name, value


def run_celery(
    args: argparse.Namespace,
    scratch: Path,
    env: dict[str, str],
    results: list[dict[str, Any]],
    series: dict[str, list[float]],
) -> None:
    """The user workers' own receipt rate, the ``celery`` scenario ``--repeat`` times,
    then redbeat sending the same Celery tasks into the same user workers, and the
    comparison with taskhub's median run."""
    user = CeleryUserWorker(args.user_worker.split(), args.user_workers)
    emit(results, user_workers_capacity(user, args.tasks, scratch))
    runs = []
    for _ in range(max(1, args.repeat)):
        run, lags = scenario_celery(user, args.tasks, scratch, env)
        series.setdefault(f"taskhub Celery N={args.tasks}", lags)
        emit(results, {**run, "user_worker": args.user_worker, "user_workers": args.user_workers})
        runs.append(run)
    if len(runs) > 1:
        emit(results, repeated("celery", runs))
    if args.no_redbeat:
        return
    ours = sorted(runs, key=lambda r: (r["lag_s"] or {}).get("p99", math.inf))[len(runs) // 2]
    work = PeerWork(
        "celery-redbeat",
        celery_user_app.TASK,
        lambda i: [f"celery-{i}"],
        celery_user_app.QUEUE,
        user,
    )
    peer, peer_lags = run_redbeat(user, args.tasks, scratch, args.user_worker.split(), work)
    series[f"redbeat Celery N={args.tasks}"] = peer_lags
    emit(results, {**peer, "user_workers": args.user_workers})
    if ours["lag_s"] and peer["lag_s"]:
        emit(results, comparison(f"celery N={args.tasks}", ours, peer))


#: Every scenario ``--scenario`` names (``all``: each of them).
SCENARIOS = (
    "burst",
    "slow",
    "hung",
    "spread",
    "noisy-neighbour",
    "table",
    "writeback",
    "clients",
    "celery",
    "console",
    "retention",
    "api",
)

#: Scenarios ``--scenario`` names that ``all`` leaves out (long: asked for by name).
LONG_SCENARIOS = ("soak",)

#: The scenarios that need the recording target.
TARGET_SCENARIOS = frozenset(
    ("burst", "slow", "hung", "spread", "noisy-neighbour", "clients", "celery", "soak")
)


def run_target_scenarios(
    args: argparse.Namespace,
    chosen: set[str],
    scratch: Path,
    env: dict[str, str],
    results: list[dict[str, Any]],
    series: dict[str, list[float]],
) -> None:
    """The scenarios that fire at the recording target (its capacity measured first)."""
    with recording_target(scratch) as target:
        capacity = http_clients.measure_capacity(target.url("/ok"), 20000, 2)
        emit(results, {"target": target.url("/"), **capacity})
        target.reset()
        clients: dict[str, Any] | None = None
        if "clients" in chosen:
            clients = scenario_clients(target, 10000)
            emit(results, clients)
        if "burst" in chosen:
            bursts = []
            for _ in range(max(1, args.repeat)):
                burst, lags = scenario_burst(
                    target, args.tasks, scratch, env, args.shape, args.trigger_processes
                )
                series.setdefault(f"taskhub N={args.tasks}", lags)  # the first run's
                emit(results, burst)
                bursts.append(burst)
            if len(bursts) > 1:
                emit(results, repeated("burst", bursts))
            # With repeated runs the comparisons use the run of median p99 (one run's
            # figures are noise on a shared machine).
            burst = sorted(bursts, key=lambda b: b["lag_s"].get("p99", math.inf))[len(bursts) // 2]
            if clients is not None and burst.get("burst_rate_per_s"):
                fastest = max(v["rps"] for k, v in clients.items() if isinstance(v, dict))
                emit(
                    results,
                    {
                        "burst_rate_fraction_of_fastest_client": round(
                            burst["burst_rate_per_s"] / fastest, 3
                        ),
                        "taskhub_burst_rate_per_s": burst["burst_rate_per_s"],
                        "fastest_client_rps": fastest,
                    },
                )
            if not args.no_redbeat:
                peer, peer_lags = run_redbeat(
                    target,
                    args.tasks,
                    scratch,
                    args.redbeat_worker.split(),
                    http_peer_work(target),
                )
                series[f"redbeat N={args.tasks}"] = peer_lags
                emit(results, peer)
                if burst["lag_s"] and peer["lag_s"]:
                    emit(results, comparison(f"burst N={args.tasks}", burst, peer))
        if "celery" in chosen:
            run_celery(args, scratch, env, results, series)
        if "slow" in chosen:
            slow, lags = scenario_slow(target, args.small_tasks, scratch, env)
            series[f"taskhub slow 1 s N={args.small_tasks}"] = lags
            emit(results, slow)
        if "hung" in chosen:
            hung, lags = scenario_hung(target, args.small_tasks, scratch, env)
            series[f"taskhub healthy beside {args.small_tasks} hung"] = lags
            emit(results, hung)
        if "noisy-neighbour" in chosen:
            emit(
                results,
                scenario_noisy_neighbour(
                    target, args.neighbour_hung, args.neighbour_quick, scratch, env
                ),
            )
        if "spread" in chosen:
            spread, lags = scenario_spread(target, args.small_tasks, scratch, env)
            series[f"taskhub spread over 60 s N={args.small_tasks}"] = lags
            emit(results, spread)
        if "soak" in chosen:
            run_soak(args, target, scratch, env, results, bool(series))


def run_soak(
    args: argparse.Namespace,
    target: RunningTarget,
    scratch: Path,
    env: dict[str, str],
    results: list[dict[str, Any]],
    others_plotted: bool,
) -> None:
    """The soak: one line per minute, then the summary; its plot goes to ``--plot`` (to
    ``<name>-soak.png`` beside it when another scenario plots there too)."""
    options = SoakOptions(
        minutes=args.soak_minutes,
        rate=args.soak_rate,
        kill_every_s=args.soak_kill_every,
        retention_minutes=args.soak_retention_minutes,
        prune_interval_s=args.soak_prune_interval,
    )
    summary, lines = scenario_soak(target, options, scratch, env)
    for line in lines:
        emit(results, line)
    emit(results, summary)
    path = Path(args.plot)
    if others_plotted:
        path = path.with_name(f"{path.stem}-soak{path.suffix}")
    plot_soak(lines, summary["kills"], path)
    emit(results, {"plot": str(path)})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--tasks", type=int, help="N of the burst (10,000) and of the console's tenant (100,000)"
    )
    parser.add_argument(
        "--noise-tasks", type=int, help="console: the other tenant's tasks (--tasks / 10)"
    )
    parser.add_argument(
        "--console-requests", type=int, default=200, help="console: timed requests per page"
    )
    parser.add_argument(
        "--console-revision",
        default="head",
        help="console: migrate the scratch database only this far (e.g. 0012)",
    )
    parser.add_argument(
        "--console-seconds",
        type=float,
        default=60,
        help="console: stop timing a page after this long (fewer requests then)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, *LONG_SCENARIOS, "all"],
        help="repeatable; default: burst (with redbeat) and clients; all: every one but soak",
    )
    parser.add_argument("--small-tasks", type=int, default=1000, help="N of slow/hung/spread")
    parser.add_argument(
        "--api-creates", type=int, default=5000, help="api: tasks created one by one"
    )
    parser.add_argument(
        "--api-batches",
        type=int,
        default=10,
        help="api: batches of 1,000 from one client, then as many from 4 at once",
    )
    parser.add_argument(
        "--api-tasks",
        type=int,
        default=200_000,
        help="api: tasks held (ten executions each) when the reads are timed",
    )
    parser.add_argument(
        "--neighbour-hung", type=int, default=2300, help="noisy-neighbour: tenant A's hung tasks"
    )
    parser.add_argument(
        "--neighbour-quick", type=int, default=10, help="noisy-neighbour: tenant B's quick tasks"
    )
    parser.add_argument("--table-rows", type=int, default=1_000_000)
    parser.add_argument("--soak-minutes", type=int, default=30, help="soak: due minutes")
    parser.add_argument(
        "--soak-rate", type=int, default=1000, help="soak: occurrences a second (x 60 tasks)"
    )
    parser.add_argument(
        "--soak-kill-every",
        type=float,
        default=300,
        help="soak: kill -9 the trigger worker (and start a new one) every this many seconds",
    )
    parser.add_argument(
        "--soak-retention-minutes",
        type=float,
        default=5,
        help="soak: TASKHUB_EXECUTION_RETENTION_DAYS, in minutes",
    )
    parser.add_argument(
        "--soak-prune-interval",
        type=float,
        default=60,
        help="soak: TASKHUB_PRUNE_INTERVAL_SECONDS",
    )
    parser.add_argument(
        "--retention-rows", type=int, default=1_000_000, help="retention: executions held"
    )
    parser.add_argument("--retention-days", type=int, default=10, help="retention: days they span")
    parser.add_argument(
        "--table-due", type=int, default=10_000, help="due in the table; outcomes in writeback"
    )
    parser.add_argument(
        "--table-processes",
        type=process_counts,
        default=[1, 2],
        help="discovery processes claiming at once in the table scenario, e.g. 1,2",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run taskhub's burst and the table scenario this many times (one p99 is noise)",
    )
    parser.add_argument("--no-redbeat", action="store_true")
    parser.add_argument(
        "--shape",
        choices=["user", "oneshot-get"],
        default="user",
        help="burst: crons in time zones POSTing JSON created through the API (user), or "
        "one-time GETs stored directly (oneshot-get)",
    )
    parser.add_argument(
        "--user-worker",
        default="-P threads -c 32",
        help="celery scenario: each user Celery worker's pool options",
    )
    parser.add_argument(
        "--user-workers", type=int, default=2, help="celery scenario: user worker processes"
    )
    parser.add_argument(
        "--redbeat-worker", default="-P threads -c 128", help="the peer's worker pool options"
    )
    # Default under bench/out/ (git-ignored): the committed plot is docs/lag.png.
    parser.add_argument("--plot", default=str(ROOT / "bench" / "out" / "lag.png"))
    parser.add_argument("--out", help="also write every JSON object to this file")
    parser.add_argument(
        "--env", action="append", default=[], type=setting, help="NAME=VALUE for taskhub"
    )
    parser.add_argument(
        "--trigger-processes",
        type=int,
        default=1,
        help="trigger workers the burst runs (default 1, as the production split)",
    )
    parser.add_argument("--logs", help="keep the processes' logs in this directory")
    args = parser.parse_args()
    console_tasks = args.tasks or 100_000
    args.tasks = args.tasks or 10_000
    chosen = set(args.scenario or ["burst", "clients"])
    if "all" in chosen:
        chosen = set(SCENARIOS)
    env = dict(args.env)
    results: list[dict[str, Any]] = []
    series: dict[str, list[float]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="taskhub-bench-"))
    try:
        emit(
            results,
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    "uname": " ".join(os.uname()[2:5]),
                    "load_avg": os.getloadavg(),
                    "started_at": utcnow().isoformat(timespec="seconds"),
                }
            },
        )
        if chosen & TARGET_SCENARIOS:
            run_target_scenarios(args, chosen, scratch, env, results, series)
        if "console" in chosen:
            noise = console_tasks // 10 if args.noise_tasks is None else args.noise_tasks
            emit(
                results,
                scenario_console(
                    console_tasks,
                    noise,
                    args.console_requests,
                    20,
                    args.console_seconds,
                    scratch,
                    env,
                    args.console_revision,
                ),
            )
        if "api" in chosen:
            emit(
                results,
                scenario_api(
                    args.api_creates,
                    args.api_batches,
                    args.api_tasks,
                    args.console_requests,
                    args.console_seconds,
                    scratch,
                    env,
                ),
            )
        if "retention" in chosen:
            emit(
                results,
                scenario_retention(args.retention_rows, args.retention_days, 5000),
            )
        if "writeback" in chosen:
            for _ in range(max(1, args.repeat)):
                emit(results, scenario_writeback(args.table_due, env))
        if "table" in chosen:
            tables: list[dict[str, Any]] = []
            runs = scenario_table(
                args.table_rows, args.table_due, args.table_processes, args.repeat, env
            )
            for run in runs:
                if tables and run["discovery_processes"] != tables[-1]["discovery_processes"]:
                    if len(tables) > 1:
                        emit(results, repeated("table", tables))
                    tables = []
                tables.append(run)
                emit(results, run)
            if len(tables) > 1:
                emit(results, repeated("table", tables))
        if series:
            plot(series, Path(args.plot), "taskhub benchmark: lag distribution")
            emit(results, {"plot": args.plot})
    finally:
        if args.out:
            Path(args.out).write_text("\n".join(json.dumps(r) for r in results) + "\n")
        if args.logs and (scratch / "logs").exists():
            shutil.copytree(scratch / "logs", args.logs, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
