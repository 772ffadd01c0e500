"""The overlap policy in the database, on PostgreSQL and SQLite, through the engine's own
path with a controlled clock: the minute's tick (``discovery.run_tick``), the staging
loop's passes (``discovery.claim_and_publish``, one a second), the trigger worker's
clearance at each request's send time (``withdrawal.clear_to_fire``) and the
write-back (``writeback.record_outcomes``). A task every 5 s."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core import settings
from taskhub.core.definitions import parse_definition
from taskhub.core.messages import TriggerRequest
from taskhub.db import engines, metric_queries, schema
from taskhub.db.models import executions
from taskhub.engine import discovery, withdrawal, writeback
from taskhub.service import task_service, task_views
from tests.support.storage import outcome

DEFAULTS = settings.load({})
M = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def at(n: float) -> datetime:
    return M + timedelta(seconds=n)


def add_task(engine: Engine, name: str, overlap: str | None, interval_s: int = 5) -> uuid.UUID:
    """A task every ``interval_s`` whose first occurrence is at ``M``."""
    created = M
    data: dict[str, Any] = {
        "name": name,
        "schedule": {"interval_seconds": interval_s},
        "target": {"url": "http://target.test/hook"},
    }
    if overlap is not None:
        data["overlap"] = overlap
    with engine.begin() as conn:
        return task_service.create_task(conn, parse_definition(data, created), created, DEFAULTS)


def tick(engine: Engine, now: datetime) -> list[TriggerRequest]:
    published: list[TriggerRequest] = []
    discovery.run_tick(engine, DEFAULTS, published.extend, lambda: now)
    return published


def staging_pass(engine: Engine, now: datetime) -> list[TriggerRequest]:
    published: list[TriggerRequest] = []
    report = discovery.TickReport()
    discovery.claim_and_publish(engine, DEFAULTS, published.extend, lambda: now, 0.0, 48.0, report)
    return published


def clear(engine: Engine, requests: Sequence[TriggerRequest], now: datetime) -> list[datetime]:
    """The trigger worker at ``now``: the due times of the requests it may fire."""
    cleared = withdrawal.clear_to_fire(engine, requests, now) if requests else set()
    return [r.scheduled_for for r in requests if r.execution_id in cleared]


def due(requests: Sequence[TriggerRequest], when: datetime) -> list[TriggerRequest]:
    return [r for r in requests if r.scheduled_for == when]


def finish(engine: Engine, request: TriggerRequest, now: datetime) -> None:
    report = writeback.record_outcomes(
        engine, [outcome(request, 200, at=now)], DEFAULTS, now, lambda: 0.5
    )
    assert report.applied == 1


def states(engine: Engine, task_id: uuid.UUID) -> list[tuple[float, str]]:
    """(seconds after M, status) of the task's executions, in occurrence order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(executions.c.scheduled_for, executions.c.status)
            .where(executions.c.task_id == task_id)
            .order_by(executions.c.scheduled_for)
        )
        return [((when - M).total_seconds(), status) for when, status in rows]


def waiting(engine: Engine, task_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    executions.c.task_id == task_id,
                    executions.c.status == "queued",
                    executions.c.overlap_state == "waiting",
                )
            ).scalar_one()
        )


def skipped_count(engine: Engine) -> float:
    with engine.connect() as conn:
        counted = metric_queries.read_counters(conn)
    return counted.get(("taskhub_executions_finished_total", '{"status":"skipped"}'), 0.0)


def test_skip_records_what_falls_due_while_one_runs_and_fires_once_it_ended(
    engine: Engine,
) -> None:
    task = add_task(engine, "skipper", "skip")
    first = tick(engine, M)  # M and M+5 are within the publish lead; the rest are staged
    assert all(r.overlap == "skip" for r in first)
    assert clear(engine, due(first, M), M) == [M]
    assert clear(engine, due(first, at(5)), at(5)) == []  # M's still runs
    published: list[TriggerRequest] = []
    for n in range(6, 11):
        published += staging_pass(engine, at(n))
    assert clear(engine, due(published, at(10)), at(10)) == []
    finish(engine, due(first, M)[0], at(12))
    for n in range(11, 16):
        published += staging_pass(engine, at(n))
    assert clear(engine, due(published, at(15)), at(15)) == [at(15)]
    assert states(engine, task)[:4] == [
        (0, "succeeded"),
        (5, "skipped"),
        (10, "skipped"),
        (15, "running"),
    ]
    assert skipped_count(engine) == 2
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(executions).where(
                    executions.c.task_id == task, executions.c.scheduled_for == at(5)
                )
            )
            .mappings()
            .one()
        )
    assert row["attempts"] == 0 and row["started_at"] is None
    assert row["finished_at"] == at(5) and row["next_attempt_at"] is None


def test_buffer_one_keeps_one_waiting_and_fires_it_when_the_running_one_ends(
    engine: Engine,
) -> None:
    task = add_task(engine, "buffered", "buffer_one")
    first = tick(engine, M)
    assert clear(engine, due(first, M), M) == [M]
    assert clear(engine, due(first, at(5)), at(5)) == []
    assert waiting(engine, task) == 1
    published: list[TriggerRequest] = []
    for n in range(6, 11):
        published += staging_pass(engine, at(n))
        assert waiting(engine, task) == 1
    # Not published again while M's runs: it waits in the database with no time.
    assert due(published, at(5)) == []
    assert clear(engine, due(published, at(10)), at(10)) == []  # the buffer is full
    assert waiting(engine, task) == 1
    finish(engine, due(first, M)[0], at(11))
    released = staging_pass(engine, at(12))
    [again] = due(released, at(5))
    assert again.attempt == 1 and again.not_before is None
    assert clear(engine, [again], at(12)) == [at(5)]
    assert waiting(engine, task) == 0
    for n in range(13, 16):
        published += staging_pass(engine, at(n))
    assert clear(engine, due(published, at(15)), at(15)) == []  # M+5's runs now: it waits
    assert waiting(engine, task) == 1
    assert states(engine, task)[:4] == [
        (0, "succeeded"),
        (5, "running"),
        (10, "skipped"),
        (15, "queued"),
    ]
    assert skipped_count(engine) == 1


def test_a_waiting_one_is_not_stuck_when_the_running_ones_worker_died(engine: Engine) -> None:
    task = add_task(engine, "orphaned", "buffer_one", interval_s=60)
    first = tick(engine, M)
    [running] = due(first, M)
    assert clear(engine, [running], M) == [M]
    # M+60 falls due while M's worker has died (no outcome will ever come back).
    second = tick(engine, at(60))
    assert clear(engine, due(second, at(60)), at(60)) == []
    assert waiting(engine, task) == 1
    # M's lease runs out: published again, it is not decided again but fired, and ends.
    lease_end = discovery.lease_until(M, 30.0, DEFAULTS)
    republished = staging_pass(engine, lease_end + SECOND)
    [again] = due(republished, M)
    assert clear(engine, [again], lease_end + SECOND) == [M]
    assert waiting(engine, task) == 1
    finish(engine, again, lease_end + 2 * SECOND)
    # The next pass releases the waiting one, which then fires.
    [released] = due(staging_pass(engine, lease_end + 3 * SECOND), at(60))
    assert clear(engine, [released], lease_end + 3 * SECOND) == [at(60)]
    assert [s for _, s in states(engine, task)][:2] == ["succeeded", "running"]


def test_a_pause_withdraws_the_waiting_one(engine: Engine) -> None:
    task = add_task(engine, "paused", "buffer_one")
    first = tick(engine, M)
    assert clear(engine, due(first, M), M) == [M]
    assert clear(engine, due(first, at(5)), at(5)) == []
    assert waiting(engine, task) == 1
    with engine.begin() as conn:
        task_service.pause_task(conn, "default", task, at(6), DEFAULTS)
    assert waiting(engine, task) == 0
    finish(engine, due(first, M)[0], at(8))
    published: list[TriggerRequest] = []
    for n in range(9, 20):
        published += staging_pass(engine, at(n))
    assert [r for r in published if r.task_id == str(task)] == []


def test_allow_writes_no_overlap_state_and_runs_side_by_side(engine: Engine) -> None:
    task = add_task(engine, "allowed", None)
    first = tick(engine, M)
    assert all(r.overlap is None for r in first)
    assert clear(engine, due(first, M), M) == [M]
    assert clear(engine, due(first, at(5)), at(5)) == [at(5)]
    with engine.connect() as conn:
        shown = task_views.get_task(conn, "default", task, DEFAULTS, at(5))
        marked = conn.execute(
            sa.select(sa.func.count()).where(executions.c.overlap_state.is_not(None))
        ).scalar_one()
    assert shown["overlap"] == "allow"
    assert marked == 0


def test_a_changed_policy_applies_to_what_was_already_written_down(engine: Engine) -> None:
    task = add_task(engine, "changed", None)
    first = tick(engine, M)
    assert clear(engine, due(first, M), M) == [M]
    with engine.begin() as conn:
        task_service.update_task(conn, "default", task, {"overlap": "skip"}, at(1), DEFAULTS)
    # The published-ahead M+5 was withdrawn with the change, and is claimed again as a
    # skip task's (M's execution, fired while allowed, does not count as running).
    assert clear(engine, due(first, at(5)), at(5)) == []
    again: list[TriggerRequest] = []
    for n in range(2, 6):
        again += staging_pass(engine, at(n))
    [second] = due(again, at(5))
    assert second.overlap == "skip"
    assert clear(engine, [second], at(5)) == [at(5)]
    with engine.connect() as conn:
        shown = task_views.get_task(conn, "default", task, DEFAULTS, at(5))
    assert shown["overlap"] == "skip"


def _clear_after(
    engine: Engine, request: TriggerRequest, start: threading.Barrier, results: list[set[int]]
) -> None:
    start.wait()
    results.append(withdrawal.clear_to_fire(engine, [request], M))


@pytest.mark.parametrize("policy", ["skip", "buffer_one"])
def test_two_workers_clearing_one_task_at_once_fire_one(engine: Engine, policy: str) -> None:
    """Two occurrences of one task cleared at the same moment by two workers (two
    threads, two connections): the task's row lock makes one decide after the other."""
    for round_ in range(5):
        task = add_task(engine, f"raced-{policy}-{round_}", policy, interval_s=60)
        with engine.begin() as conn:
            task_service.run_task_now(conn, "default", task, M - SECOND / 2)
        requests = [r for r in tick(engine, M) if r.task_id == str(task)]
        assert len(requests) == 2, requests  # the occurrence at M and the run-now
        start = threading.Barrier(2)
        results: list[set[int]] = []

        threads = [
            threading.Thread(target=_clear_after, args=(engine, r, start, results))
            for r in requests
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(len(r) for r in results) == 1
        assert sorted(s for when, s in states(engine, task) if when <= 0) == sorted(
            ["running", "skipped" if policy == "skip" else "queued"]
        )


def _open_counts(engine: Engine, task_id: uuid.UUID) -> tuple[int, int]:
    """(fired and not ended, waiting) of the task."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(executions.c.started_at, executions.c.overlap_state).where(
                executions.c.task_id == task_id, executions.c.status.in_(["queued", "running"])
            )
        ).all()
    running = sum(1 for started_at, _ in rows if started_at is not None)
    return running, sum(1 for _, state in rows if state == "waiting")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("policy", ["skip", "buffer_one"])
def test_random_interleavings_keep_one_running_and_at_most_one_waiting(
    engine: Engine, policy: str, seed: int
) -> None:
    """Seconds pass one by one; at each, the staging pass runs, the requests whose time
    has come are cleared in a random order (some a second late, as a busy worker would),
    and a random running one may end. After every step: at most one runs, at most one
    waits (none under ``skip``). At the end nothing is left waiting."""
    rng = random.Random(seed)
    task = add_task(engine, f"random-{policy}-{seed}", policy)
    held: list[TriggerRequest] = tick(engine, M)
    fired: list[TriggerRequest] = []
    peak_waiting = [0]
    for second in range(1, 90):
        now = at(second)
        if second == 70:  # the schedule ends: only what was written down goes on
            with engine.begin() as conn:
                task_service.update_task(
                    conn, "default", task, {"end_at": now.isoformat()}, now, DEFAULTS
                )
        held += staging_pass(engine, now)
        ready = [r for r in held if (r.not_before or M) <= now and rng.random() < 0.8]
        rng.shuffle(ready)
        for request in ready:
            held.remove(request)
            if clear(engine, [request], now):
                fired.append(request)
        if fired and rng.random() < 0.3:
            ending = fired.pop(rng.randrange(len(fired)))
            finish(engine, ending, now)
        running, waiting_now = _open_counts(engine, task)
        assert running <= 1, (second, states(engine, task))
        peak_waiting[0] = max(peak_waiting[0], waiting_now)
        assert waiting_now <= (1 if policy == "buffer_one" else 0), (second, states(engine, task))
    for request in fired:
        finish(engine, request, at(90))
    for second in range(91, 95):
        for request in staging_pass(engine, at(second)):
            if clear(engine, [request], at(second)):
                finish(engine, request, at(second))
    assert _open_counts(engine, task) == (0, 0), states(engine, task)
    ended = Counter(status for _, status in states(engine, task))
    assert ended["skipped"] > 0 and ended["succeeded"] > 0, ended  # the policy did act
    assert peak_waiting[0] == (1 if policy == "buffer_one" else 0)


def test_migration_0016_keeps_the_history_and_its_checks_hold(database_url: str) -> None:
    schema.upgrade(database_url, "0015")
    engine = engines.create_engine(database_url)

    def insert(key: str, status: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(executions).values(
                    task_id=uuid.uuid4(),
                    scheduled_for=M,
                    idempotency_key=key,
                    status=status,
                    attempts=0,
                    created_at=M,
                )
            )

    try:
        insert("k1", "dead")
        schema.upgrade(database_url, "0016")
        with engine.connect() as conn:
            assert conn.execute(sa.select(executions.c.status)).scalars().all() == ["dead"]
        insert("k2", "skipped")
        with pytest.raises(sa.exc.IntegrityError):
            insert("k3", "bogus")
        if engine.dialect.name == "postgresql":
            # Added NOT VALID and validated after the commit: in force, and validated.
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT conname, convalidated FROM pg_constraint WHERE conname IN "
                        "('ck_executions_status_known', 'ck_scheduled_tasks_overlap_known')"
                    )
                )
                checks = {str(name): bool(valid) for name, valid in rows}
            assert checks == {
                "ck_executions_status_known": True,
                "ck_scheduled_tasks_overlap_known": True,
            }
        schema.upgrade(database_url)
        schema.check(database_url)
    finally:
        engine.dispose()
