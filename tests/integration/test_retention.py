"""History retention on PostgreSQL and SQLite: what a prune pass removes and what it
keeps, dead letters after their own setting, the dry run, batches, the lease, the vacuum
after a pass, the CLI, the migration, and the pass beat sends."""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from taskhub.core import settings as settings_module
from taskhub.core.retention import VacuumMode
from taskhub.core.settings import RetentionSettings
from taskhub.db import engines, retention_queries, schema
from taskhub.db.models import (
    attempts,
    callback_deliveries,
    executions,
    metric_counters,
    notifications,
)
from taskhub.engine import retention
from tests.support.api import T0, Api
from tests.support.cli import Cli
from tests.support.engine import running_stack
from tests.support.processes import wait_until
from tests.support.storage import NOW, add_task

DAY = timedelta(days=1)
#: The shipped defaults (30 days, dead letters 90), no pause between batches.
DEFAULTS = replace(RetentionSettings(), pause_s=0)
HISTORY_REMOVED = "taskhub_history_removed_total"

_seconds = itertools.count(1)


def add_execution(
    engine: Engine,
    task_id: uuid.UUID,
    status: str,
    *,
    ended_ago: timedelta | None,
    age: timedelta = 100 * DAY,
    attempt_count: int = 1,
) -> int:
    """An execution of ``task_id`` created ``age`` before NOW and ended ``ended_ago``
    before NOW (None: not ended), with ``attempt_count`` attempts."""
    created = NOW - age
    with engine.begin() as conn:
        execution_id = conn.execute(
            sa.insert(executions)
            .values(
                task_id=task_id,
                scheduled_for=created + timedelta(seconds=next(_seconds)),
                idempotency_key=uuid.uuid4().hex,
                status=status,
                attempts=attempt_count,
                next_attempt_at=NOW + timedelta(minutes=5) if status == "queued" else None,
                created_at=created,
                started_at=created,
                finished_at=None if ended_ago is None else NOW - ended_ago,
            )
            .returning(executions.c.id)
        ).scalar_one()
        for number in range(1, attempt_count + 1):
            conn.execute(
                sa.insert(attempts).values(
                    execution_id=execution_id,
                    number=number,
                    started_at=created,
                    duration_ms=5,
                    http_status=500 if status != "succeeded" else 200,
                )
            )
    return int(execution_id)


def remaining(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(executions.c.id)).scalars())


def attempts_of(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(attempts.c.execution_id)).scalars())


def counters(engine: Engine) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        return {(r.name, r.labels): r.value for r in conn.execute(sa.select(metric_counters))}


def prune(
    engine: Engine, settings: RetentionSettings = DEFAULTS, **kwargs: object
) -> retention.PruneReport:
    return retention.run_pass(engine, settings, lambda: NOW, **kwargs)  # type: ignore[arg-type]


def test_old_ended_executions_go_young_and_unfinished_ones_stay(engine: Engine) -> None:
    task = add_task(engine, "plain", {"interval_seconds": 60})
    old_success = add_execution(engine, task, "succeeded", ended_ago=31 * DAY, attempt_count=1)
    old_failure = add_execution(engine, task, "failed", ended_ago=40 * DAY, attempt_count=2)
    old_skipped = add_execution(engine, task, "skipped", ended_ago=31 * DAY, attempt_count=0)
    young = add_execution(engine, task, "succeeded", ended_ago=29 * DAY)
    # Never removed, however old: in flight, waiting for a retry.
    running = add_execution(engine, task, "running", ended_ago=None, age=400 * DAY)
    retrying = add_execution(engine, task, "queued", ended_ago=None, age=400 * DAY)
    # A dead letter follows its own retention (90 days), not the executions' 30.
    dead_young = add_execution(engine, task, "dead", ended_ago=60 * DAY, attempt_count=3)
    dead_old = add_execution(engine, task, "dead", ended_ago=91 * DAY, attempt_count=3)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(metric_counters).values(
                name="taskhub_executions_finished_total", labels='{"status":"succeeded"}', value=7
            )
        )

    report = prune(engine)

    assert remaining(engine) == {young, running, retrying, dead_young}
    assert attempts_of(engine) == {young, running, retrying, dead_young}
    assert (report.executions, report.dead_letters, report.attempts) == (3, 1, 6)
    assert report.complete and not report.skipped and not report.dry_run
    stored = counters(engine)
    assert stored[(HISTORY_REMOVED, '{"kind":"execution"}')] == 3
    assert stored[(HISTORY_REMOVED, '{"kind":"dead_letter"}')] == 1
    assert stored[(HISTORY_REMOVED, '{"kind":"attempt"}')] == 6
    # Counters of the removed executions' own work stay as they were.
    assert stored[("taskhub_executions_finished_total", '{"status":"succeeded"}')] == 7
    assert {old_success, old_failure, old_skipped, dead_old}.isdisjoint(remaining(engine))

    again = prune(engine)
    assert (again.executions, again.dead_letters, again.attempts) == (0, 0, 0)
    assert counters(engine)[(HISTORY_REMOVED, '{"kind":"execution"}')] == 3


def test_a_removed_execution_takes_its_callback_deliveries_with_it(engine: Engine) -> None:
    task = add_task(engine, "called-back", {"interval_seconds": 60})
    old = add_execution(engine, task, "succeeded", ended_ago=31 * DAY)
    young = add_execution(engine, task, "failed", ended_ago=1 * DAY)
    with engine.begin() as conn:
        for execution_id, status in ((old, "delivered"), (young, "failed")):
            conn.execute(
                sa.insert(callback_deliveries).values(
                    execution_id=execution_id,
                    task_id=task,
                    tenant="default",
                    url="https://hooks.example.com/done",
                    event="success",
                    document={},
                    status=status,
                    attempts=1,
                    created_at=NOW - 31 * DAY,
                )
            )

    prune(engine)

    with engine.connect() as conn:
        left = set(conn.execute(sa.select(callback_deliveries.c.execution_id)).scalars())
    assert left == {young}


def test_notifications_sent_before_the_retention_go_pending_ones_stay(engine: Engine) -> None:
    def add(age: timedelta, status: str) -> int:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    sa.insert(notifications)
                    .values(
                        tenant="default",
                        channel_id=uuid.uuid4(),
                        channel_name="ops",
                        channel_kind="webhook",
                        status=status,
                        counts={},
                        task_ids=[],
                        payload={},
                        created_at=NOW - age,
                    )
                    .returning(notifications.c.id)
                ).scalar_one()
            )

    old_sent, old_failed = add(31 * DAY, "sent"), add(40 * DAY, "failed")
    old_pending, young = add(31 * DAY, "pending"), add(29 * DAY, "sent")

    prune(engine)

    with engine.connect() as conn:
        left = set(conn.execute(sa.select(notifications.c.id)).scalars())
    assert left == {old_pending, young}
    assert {old_sent, old_failed}.isdisjoint(left)


def test_a_task_override_keeps_longer_or_shorter_than_the_default(engine: Engine) -> None:
    plain = add_task(engine, "plain", {"interval_seconds": 60})
    longer = add_task(engine, "longer", {"interval_seconds": 60}, retention_days=60)
    shorter = add_task(engine, "shorter", {"interval_seconds": 60}, retention_days=7)
    plain_old = add_execution(engine, plain, "succeeded", ended_ago=31 * DAY)
    plain_young = add_execution(engine, plain, "succeeded", ended_ago=8 * DAY)
    longer_kept = add_execution(engine, longer, "succeeded", ended_ago=45 * DAY)
    longer_old = add_execution(engine, longer, "failed", ended_ago=61 * DAY)
    shorter_old = add_execution(engine, shorter, "succeeded", ended_ago=8 * DAY)
    shorter_young = add_execution(engine, shorter, "succeeded", ended_ago=6 * DAY)
    shorter_running = add_execution(engine, shorter, "running", ended_ago=None, age=30 * DAY)

    report = prune(engine)

    assert remaining(engine) == {plain_young, longer_kept, shorter_young, shorter_running}
    assert {plain_old, longer_old, shorter_old}.isdisjoint(remaining(engine))
    assert report.executions == 3


def test_dead_letters_follow_their_own_setting_whatever_the_task_says(engine: Engine) -> None:
    longer = add_task(engine, "longer", {"interval_seconds": 60}, retention_days=365)
    plain = add_task(engine, "plain", {"interval_seconds": 60})
    dead_of_longer = add_execution(engine, longer, "dead", ended_ago=11 * DAY)
    dead_young = add_execution(engine, plain, "dead", ended_ago=9 * DAY)
    failed = add_execution(engine, plain, "failed", ended_ago=11 * DAY)
    settings = replace(DEFAULTS, dead_letter_days=10)

    report = prune(engine, settings)

    assert remaining(engine) == {dead_young, failed}
    assert dead_of_longer not in remaining(engine)
    assert (report.executions, report.dead_letters) == (0, 1)


def test_zero_days_keeps_that_kind_for_ever(engine: Engine) -> None:
    plain = add_task(engine, "plain", {"interval_seconds": 60})
    short = add_task(engine, "short", {"interval_seconds": 60}, retention_days=1)
    ancient = add_execution(engine, plain, "succeeded", ended_ago=3000 * DAY)
    ancient_dead = add_execution(engine, plain, "dead", ended_ago=3000 * DAY)
    overridden = add_execution(engine, short, "succeeded", ended_ago=2 * DAY)

    prune(engine, replace(DEFAULTS, execution_days=0, dead_letter_days=0))

    # The default keeps for ever; a task's own retention still applies.
    assert remaining(engine) == {ancient, ancient_dead}
    assert overridden not in remaining(engine)


def test_a_pass_removes_in_batches_until_nothing_expired_is_left(engine: Engine) -> None:
    task = add_task(engine, "plain", {"interval_seconds": 60})
    for _ in range(7):
        add_execution(engine, task, "succeeded", ended_ago=31 * DAY)
    kept = add_execution(engine, task, "succeeded", ended_ago=DAY)
    pauses: list[float] = []

    report = prune(engine, replace(DEFAULTS, batch_size=3, pause_s=0.5), sleep=pauses.append)

    assert remaining(engine) == {kept}
    assert report.executions == 7
    # 3 + 3 + 1 (the short batch ends the sweep), then the (empty) dead-letter sweep.
    assert report.batches == 4
    assert pauses == [0.5, 0.5]


def test_a_pass_stops_at_its_time_budget_and_the_next_one_goes_on(engine: Engine) -> None:
    task = add_task(engine, "plain", {"interval_seconds": 60})
    for _ in range(5):
        add_execution(engine, task, "succeeded", ended_ago=31 * DAY)
    clock = itertools.count()

    first = prune(
        engine,
        replace(DEFAULTS, batch_size=2),
        time_budget_s=2,
        monotonic=lambda: float(next(clock)),
    )

    assert (first.executions, first.complete) == (2, False)
    assert len(remaining(engine)) == 3
    second = prune(engine, replace(DEFAULTS, batch_size=2))
    assert (second.executions, second.complete) == (3, True)
    assert remaining(engine) == set()


def test_dry_run_counts_what_a_pass_would_remove_and_changes_nothing(engine: Engine) -> None:
    task = add_task(engine, "plain", {"interval_seconds": 60})
    add_execution(engine, task, "succeeded", ended_ago=31 * DAY, attempt_count=2)
    add_execution(engine, task, "dead", ended_ago=91 * DAY, attempt_count=3)
    add_execution(engine, task, "succeeded", ended_ago=DAY)
    before = (remaining(engine), attempts_of(engine), counters(engine))

    counted = prune(engine, dry_run=True)

    assert (remaining(engine), attempts_of(engine), counters(engine)) == before
    assert (counted.executions, counted.dead_letters, counted.attempts) == (1, 1, 5)
    assert counted.dry_run
    done = prune(engine)
    assert (done.executions, done.dead_letters, done.attempts) == (1, 1, 5)


def test_one_pass_at_a_time(engine: Engine) -> None:
    task = add_task(engine, "plain", {"interval_seconds": 60})
    expired = add_execution(engine, task, "succeeded", ended_ago=31 * DAY)
    with engine.begin() as conn:
        assert retention_queries.take_lease(
            conn, retention.LEASE_NAME, "elsewhere", NOW, NOW + timedelta(minutes=5)
        )

    skipped = prune(engine)

    assert skipped.skipped and remaining(engine) == {expired}
    # Once the other holder's lease has run out, a pass takes it over.
    later = NOW + timedelta(minutes=6)
    report = retention.run_pass(engine, DEFAULTS, lambda: later)
    assert report.executions == 1 and not report.skipped
    # A pass gives its lease back when it ends: the next one runs at once.
    with engine.begin() as conn:
        assert retention_queries.take_lease(conn, retention.LEASE_NAME, "next", later, later)


def last_vacuums(engine: Engine) -> dict[str, datetime | None]:
    """``pg_stat_user_tables.last_vacuum`` of every table (a manual VACUUM's, not
    autovacuum's), read afresh."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(sa.text("SELECT relname, last_vacuum FROM pg_stat_user_tables"))
        return {str(name): at for name, at in rows}


def vacuumed_tables(engine: Engine) -> set[str]:
    return {name for name, at in last_vacuums(engine).items() if at is not None}


@pytest.mark.parametrize("mode", ["always", "never"])
def test_a_pass_vacuums_the_tables_it_removed_rows_from_as_the_setting_says(
    engine: Engine, mode: VacuumMode
) -> None:
    task = add_task(engine, "plain", {"interval_seconds": 60})
    for _ in range(3):
        add_execution(engine, task, "succeeded", ended_ago=31 * DAY, attempt_count=2)
    kept = add_execution(engine, task, "succeeded", ended_ago=DAY)
    settings = replace(DEFAULTS, vacuum=mode)
    postgresql = engine.dialect.name == "postgresql"
    if postgresql:
        assert vacuumed_tables(engine) == set()  # a fresh database: never vacuumed

    counted = prune(engine, settings, dry_run=True)
    assert (counted.vacuumed, counted.vacuum_s) == ((), 0)

    report = prune(engine, settings)

    assert (report.executions, report.attempts) == (3, 6)
    assert remaining(engine) == {kept}
    # Only tables that lost rows; on SQLite none (deleted pages are reused by new rows).
    expected = ("executions", "attempts") if postgresql and mode == "always" else ()
    assert report.vacuumed == expected
    assert report.vacuum_s >= 0 and (report.vacuum_s > 0) == bool(expected)
    if postgresql:
        # The statistics are written as the VACUUM ends; read again until they show.
        assert wait_until(lambda: vacuumed_tables(engine) == set(expected), 10), last_vacuums(
            engine
        )
    # A pass that removes nothing vacuums nothing.
    again = prune(engine, settings)
    assert (again.executions, again.vacuumed, again.vacuum_s) == (0, (), 0)


def test_auto_vacuums_only_the_tables_autovacuum_will_not_visit(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        server_vacuums = conn.execute(sa.text("SHOW autovacuum")).scalar_one() == "on"
        conn.execute(sa.text("ALTER TABLE executions SET (autovacuum_enabled = off)"))
        conn.execute(sa.text("ALTER TABLE attempts SET (autovacuum_enabled = true)"))
        state = retention_queries.autovacuum(conn, ["executions", "attempts", "notifications"])
    assert state.server == server_vacuums
    assert state.table_enabled == {"executions": False, "attempts": True, "notifications": None}
    task = add_task(pg_engine, "plain", {"interval_seconds": 60})
    add_execution(pg_engine, task, "failed", ended_ago=31 * DAY, attempt_count=2)

    report = prune(pg_engine, replace(DEFAULTS, vacuum="auto"))

    # executions has autovacuum switched off; attempts is left to the server if it vacuums.
    expected = ("executions",) if server_vacuums else ("executions", "attempts")
    assert (report.executions, report.vacuumed) == (1, expected)
    assert wait_until(lambda: vacuumed_tables(pg_engine) == set(expected), 10)


@pytest.mark.parametrize("mode", ["always", "never"])
def test_a_pass_vacuums_the_tables_claims_rewrite_once_enough_of_them_is_dead(
    pg_engine: Engine, mode: VacuumMode
) -> None:
    """They lose no rows to retention: a pass that removed nothing still vacuums them,
    once their dead rows pass autovacuum's own threshold (50 + a fifth of the live)."""
    for i in range(10):
        add_task(pg_engine, f"churned-{i}", {"interval_seconds": 60})
    for _ in range(10):  # what claims do: every due row rewritten, 100 dead versions
        with pg_engine.begin() as conn:
            conn.execute(sa.text("UPDATE next_occurrences SET task_id = task_id"))
            conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))

    def dead() -> int:
        with pg_engine.connect() as conn:
            return retention_queries.dead_and_live_rows(conn, ["next_occurrences"])[
                "next_occurrences"
            ][0]

    assert wait_until(lambda: dead() >= 100, 10), dead()

    report = prune(pg_engine, replace(DEFAULTS, vacuum=mode))

    assert report.executions == 0
    expected = ("next_occurrences",) if mode == "always" else ()
    assert report.vacuumed == expected
    assert wait_until(lambda: vacuumed_tables(pg_engine) == set(expected), 10), last_vacuums(
        pg_engine
    )


def test_a_table_another_vacuum_holds_is_left_for_the_next_pass(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "VACUUM_LOCK_TIMEOUT_S", 0.2)
    task = add_task(pg_engine, "plain", {"interval_seconds": 60})
    add_execution(pg_engine, task, "succeeded", ended_ago=31 * DAY)
    with pg_engine.connect() as other:
        # The lock a VACUUM (or a concurrent index build) holds; rows stay writable.
        other.execute(sa.text("LOCK TABLE attempts IN SHARE UPDATE EXCLUSIVE MODE"))
        report = prune(pg_engine, replace(DEFAULTS, vacuum="always"))
        other.rollback()
    assert (report.executions, report.attempts, report.vacuumed) == (1, 1, ("executions",))
    add_execution(pg_engine, task, "succeeded", ended_ago=31 * DAY)
    assert prune(pg_engine, replace(DEFAULTS, vacuum="always")).vacuumed == (
        "executions",
        "attempts",
    )


def test_retention_days_is_set_returned_patched_cleared_and_refused(engine: Engine) -> None:
    api = Api(engine, T0)
    task = api.task("kept", retention_days=400)
    assert task["retention_days"] == 400
    assert api.task("plain")["retention_days"] is None
    path = f"/v1/tasks/{task['id']}"
    patched = api.a.patch(path, json={"retention_days": 7}).json()
    assert patched["retention_days"] == 7
    for bad in (0, 3651, "7"):
        error = api.error(api.a.patch(path, json={"retention_days": bad}), 422)
        assert error["field"] == "retention_days"
    assert api.a.get(path).json() == patched  # nothing changed
    assert api.a.patch(path, json={"retention_days": None}).json()["retention_days"] is None


def test_a_row_another_transaction_holds_is_skipped_not_waited_for(pg_engine: Engine) -> None:
    task = add_task(pg_engine, "plain", {"interval_seconds": 60})
    held = add_execution(pg_engine, task, "succeeded", ended_ago=31 * DAY)
    free = add_execution(pg_engine, task, "failed", ended_ago=31 * DAY)
    reports: list[retention.PruneReport] = []
    with pg_engine.connect() as other:
        # As a write-back or a redrive holds its executions' rows while it works.
        other.execute(sa.select(executions.c.id).where(executions.c.id == held).with_for_update())
        # A pass that waited for the row would wait for ever: it runs on its own thread.
        pass_thread = threading.Thread(target=lambda: reports.append(prune(pg_engine)))
        pass_thread.start()
        pass_thread.join(60)
        other.rollback()
    pass_thread.join(60)
    assert len(reports) == 1
    report = reports[0]
    assert report.executions == 1
    assert remaining(pg_engine) == {held}
    assert free not in remaining(pg_engine)
    assert prune(pg_engine).executions == 1
    assert remaining(pg_engine) == set()


def test_prune_command_dry_run_then_real(database_url: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["TASKHUB_DATABASE_URL"] = database_url
    cli.env["TASKHUB_PRUNE_VACUUM"] = "always"
    cli("db", "upgrade")
    engine = engines.create_engine(database_url)
    try:
        task = add_task(engine, "plain", {"interval_seconds": 60})
        # The command's clock is the real one: these are old and young by today.
        today = datetime.now(NOW.tzinfo)
        offset = today - NOW
        old = add_execution(engine, task, "succeeded", ended_ago=31 * DAY - offset, age=40 * DAY)
        young = add_execution(engine, task, "succeeded", ended_ago=-offset + DAY, age=2 * DAY)
        before = (remaining(engine), attempts_of(engine), counters(engine))

        dry = cli("db", "prune", "--dry-run")
        assert dry.stdout.strip() == "would remove 1 executions, 0 dead letters and 1 attempts"
        assert (remaining(engine), attempts_of(engine), counters(engine)) == before
        postgresql = engine.dialect.name == "postgresql"
        if postgresql:
            assert vacuumed_tables(engine) == set()  # counting vacuums nothing

        done = cli.json("db", "prune")
        assert (done["executions"], done["dead_letters"], done["attempts"]) == (1, 0, 1)
        assert remaining(engine) == {young}
        assert old not in remaining(engine)
        # On PostgreSQL the tables that lost rows are vacuumed; SQLite needs none.
        assert done["vacuumed"] == (["executions", "attempts"] if postgresql else [])
        assert (done["vacuum_s"] > 0) == postgresql
        assert cli("db", "prune").stdout.strip() == (
            "removed 0 executions, 0 dead letters and 0 attempts"
        )
        add_execution(engine, task, "failed", ended_ago=31 * DAY - offset, age=40 * DAY)
        said = cli("db", "prune").stdout.strip()
        assert re.fullmatch(
            r"removed 1 executions, 0 dead letters and 1 attempts"
            + (r"; vacuumed executions, attempts in \d+\.\d\d s" if postgresql else ""),
            said,
        ), said
    finally:
        engine.dispose()


def test_migration_0019_adds_the_column_indexes_and_lease_and_goes_back(
    database_url: str,
) -> None:
    schema.upgrade(database_url, "0015")
    engine = engines.create_engine(database_url)
    try:
        # History written before retention existed (its task's row is not needed).
        task = uuid.uuid4()
        old = add_execution(engine, task, "succeeded", ended_ago=31 * DAY)
        young = add_execution(engine, task, "succeeded", ended_ago=DAY)
        schema.upgrade(database_url, "0019")
        assert remaining(engine) == {old, young}  # the upgrade moves and removes nothing
        assert prune(engine).executions == 1
        assert remaining(engine) == {young}
        inspector = sa.inspect(engine)
        assert "retention_days" in {c["name"] for c in inspector.get_columns("scheduled_tasks")}
        assert "ix_executions_finished_at" in {
            i["name"] for i in inspector.get_indexes("executions")
        }
        assert "maintenance_leases" in inspector.get_table_names()
        schema.upgrade(database_url)  # the later migrations, then the models match
        schema.check(database_url)

        command.downgrade(schema.alembic_config(database_url), "0015")
        inspector = sa.inspect(engine)
        assert "retention_days" not in {c["name"] for c in inspector.get_columns("scheduled_tasks")}
        assert "ix_executions_finished_at" not in {
            i["name"] for i in inspector.get_indexes("executions")
        }
        assert "maintenance_leases" not in inspector.get_table_names()
        schema.upgrade(database_url, "0019")
        schema.upgrade(database_url)
        schema.check(database_url)
    finally:
        engine.dispose()


@pytest.mark.usefixtures("pg_engine")
def test_beat_sends_a_prune_pass_that_a_worker_runs(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    engine = engines.create_engine(postgres_url)
    try:
        task = add_task(engine, "plain", {"interval_seconds": 3600})
        # NOW lies in the past: an execution that ended 31 days before it is long expired.
        expired = add_execution(engine, task, "succeeded", ended_ago=31 * DAY)
        young = add_execution(
            engine, task, "succeeded", ended_ago=NOW - datetime.now(NOW.tzinfo), age=DAY
        )
        settings = settings_module.load({"TASKHUB_PRUNE_INTERVAL_SECONDS": "1"})
        assert settings.retention.interval_s == 1
        with running_stack(
            postgres_url, redis_url, tmp_path, TASKHUB_PRUNE_INTERVAL_SECONDS="1"
        ) as stack:
            stack.start("worker", "all")
            stack.start("beat", "beat")
            assert wait_until(lambda: expired not in remaining(engine), 60), stack.logs()
        assert young in remaining(engine)
        assert counters(engine)[(HISTORY_REMOVED, '{"kind":"execution"}')] == 1
    finally:
        engine.dispose()
