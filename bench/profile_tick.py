"""One discovery tick on a kept 1,000,000-row table, repeatable, for profiling.

    python bench/profile_tick.py --setup             # once: ~3 min, database taskhub_profile
    python bench/profile_tick.py                     # reset, then one tick: seconds and CPU
    python bench/profile_tick.py --cprofile t.prof   # the tick under cProfile
    valgrind --tool=callgrind python bench/profile_tick.py --quiet
    valgrind --tool=callgrind python bench/profile_tick.py --quiet --skip-tick
    python bench/profile_tick.py --statements --env TASKHUB_CLAIM_BATCH_SIZE=500

Timings on a 2-core machine vary by 15 % between runs of the same code, so they cannot
show a 2 % change. Instruction counts can: callgrind's total for a run minus that of the
same run with ``--skip-tick`` (everything but the tick: imports, connecting, the reset)
is the tick's own Python and C work, reproducible within 0.1 %. PostgreSQL's side is
best seen with ``EXPLAIN (ANALYZE)`` of one batch.

Same settings and process state as ``run.py --scenario table`` (one discovery process):
Redis broker and result backend (db 12, flushed), connections made and the garbage
collector's startup objects frozen before the tick.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import sqlalchemy as sa

from bench.run import POSTGRES_URL, REDIS_URL, fill_table, keep_due, put_back_due, setting
from taskhub.db import engines, schema

DATABASE = "taskhub_profile"
URL = POSTGRES_URL.rsplit("/", 1)[0] + f"/{DATABASE}"


def setup(total: int, due: int) -> None:
    """The table, and a copy of its due rows to put them back from."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    schema.upgrade(URL)
    engine = engines.create_engine(URL)
    fill_table(engine, total, due)
    keep_due(engine)
    engine.dispose()


def time_statements(engine: sa.Engine) -> dict[str, list[float]]:
    """Seconds each statement spent between sending it and its result being read, by its
    first 60 characters, and each commit: the database's share of the tick, from the
    client's side."""
    spent: dict[str, list[float]] = {}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["statement_started"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        key = " ".join(statement.split())[:60]
        spent.setdefault(key, []).append(time.perf_counter() - conn.info["statement_started"])

    commit = psycopg.Connection.commit

    def timed_commit(self: psycopg.Connection[Any]) -> None:
        started = time.perf_counter()
        commit(self)
        spent.setdefault("COMMIT", []).append(time.perf_counter() - started)

    psycopg.Connection.commit = timed_commit  # type: ignore[method-assign]
    return spent


def tick(
    env: dict[str, str],
    skip: bool,
    profile_to: str | None,
    quiet: bool,
    statements: bool,
    publish: bool = True,
) -> None:
    from taskhub.core.settings import load
    from taskhub.engine import discovery
    from taskhub.worker import celery_app as taskhub_celery

    settings = load(
        {
            **env,
            "TASKHUB_DATABASE_URL": URL,
            "TASKHUB_BROKER_URL": REDIS_URL,
            "TASKHUB_RESULT_BACKEND": REDIS_URL,
        }
    )
    taskhub_celery.settings = settings
    taskhub_celery.app.conf.update(taskhub_celery.celery_config(settings))
    engine = engines.create_engine(URL)
    with engine.connect():
        pass
    with taskhub_celery.app.producer_or_acquire():
        pass
    cast(Any, taskhub_celery.app.backend).client.ping()
    spent = time_statements(engine) if statements else {}
    taskhub_celery.exempt_startup_objects_from_gc()
    if skip:
        return
    profiler = cProfile.Profile() if profile_to else None
    cpu_before, started = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    report = discovery.run_tick(
        engine,
        settings,
        taskhub_celery.publish if publish else lambda requests: None,
        lambda: datetime.now(UTC),
    )
    if profiler:
        profiler.disable()
        profiler.dump_stats(cast(str, profile_to))
    elapsed_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_before
    if not quiet:
        print(
            f"published {report.published} in {elapsed_s:.3f} s "
            f"({report.published / elapsed_s:,.0f}/s), discovery CPU {cpu_s:.3f} s"
        )
    for key, seconds in sorted(spent.items(), key=lambda item: -sum(item[1])):
        print(f"{sum(seconds) * 1000:8.1f} ms {len(seconds):4d}x  {key}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="make the table (drops it first)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--no-reset", action="store_true")
    parser.add_argument("--skip-tick", action="store_true", help="everything but the tick")
    parser.add_argument("--cprofile", metavar="FILE", help="write the tick's cProfile here")
    parser.add_argument("--no-publish", action="store_true", help="claim only: publish nothing")
    parser.add_argument("--statements", action="store_true", help="time each SQL statement")
    parser.add_argument(
        "--env", action="append", default=[], type=setting, help="NAME=VALUE for taskhub"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.setup:
        setup(args.rows, args.due)
    if not args.no_reset:
        put_back_due(URL)
    env = dict(args.env)
    tick(env, args.skip_tick, args.cprofile, args.quiet, args.statements, not args.no_publish)


if __name__ == "__main__":
    main()
