"""The overlap policy with real processes: worker and beat on PostgreSQL and Redis, a
real loopback target that holds each request 20 s, two tasks every 5 s (``skip`` and
``buffer_one``), watched for about a minute.

What is asserted, and why these bounds:

- At every observation, neither task has two executions running (fired and not ended),
  and the ``buffer_one`` task never has two waiting.
- At the target, no two requests of one task are ever in progress together: each
  arrives at least 20 s (the hold) after the one before it.
- ``skip``: a fired occurrence is followed by skipped ones up to the first occurrence
  whose clearance comes after the running one's outcome is written back. That outcome
  comes 20 s after the fire plus the write-back's delay ``w`` (well under the 5 s
  period here), so consecutive fired occurrences are 20 s apart (w ≈ 0: one in four)
  or 25 s apart (the occurrence due at the very end still overlaps: one in five), with
  every occurrence between them skipped; over the window, between a fifth and a quarter
  of the occurrences fire.
- ``buffer_one``: the waiting occurrence fires as soon as the running one is written
  back (the next staging pass, each second), so each request arrives between 20 s and
  20 s + 5 s after the one before it.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.engine import add_tasks, soon, start_ready
from tests.support.processes import Stack, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow

HOLD_S = 20
EVERY_S = 5
WATCH_S = 56


def _observe(engine: Engine, task_ids: list[uuid.UUID]) -> dict[tuple[str, str], int]:
    """Per (task, what): executions running (fired, not ended) and waiting."""
    query = sa.text(
        "SELECT task_id, "
        " sum(CASE WHEN started_at IS NOT NULL AND status IN ('queued', 'running')"
        "     THEN 1 ELSE 0 END) AS running,"
        " sum(CASE WHEN overlap_state = 'waiting' AND status = 'queued'"
        "     THEN 1 ELSE 0 END) AS waiting"
        " FROM executions WHERE task_id = ANY(:ids) GROUP BY task_id"
    )
    seen: dict[tuple[str, str], int] = {}
    with engine.connect() as conn:
        for row in conn.execute(query, {"ids": task_ids}).mappings():
            seen[(str(row["task_id"]), "running")] = int(row["running"])
            seen[(str(row["task_id"]), "waiting")] = int(row["waiting"])
    return seen


def _executions(engine: Engine, task_id: uuid.UUID) -> list[tuple[float, str]]:
    """(due time, what became of it) in occurrence order: ``fired`` (let go by its
    clearance), ``skipped``, or ``undecided`` (staged, or published and not yet cleared)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT scheduled_for, status, started_at FROM executions WHERE task_id = :id"
                " ORDER BY scheduled_for"
            ),
            {"id": task_id},
        ).all()
    return [
        (
            row.scheduled_for.timestamp(),
            "skipped"
            if row.status == "skipped"
            else "fired"
            if row.started_at is not None
            else "undecided",
        )
        for row in rows
    ]


def test_skip_and_buffer_one_never_overlap_a_20_s_target_every_5_s(
    stack: Stack, pg_engine: Engine, target: Target
) -> None:
    start_ready(stack, "worker", "all")
    start_ready(stack, "beat", "beat")
    # Added once the engine runs, starting a few seconds ahead: the first occurrence is
    # fired on time, so every gap below is the policy's, not a late start's.
    url = target.url(f"/slow/{HOLD_S}")
    start_at = soon(3)
    ids = {
        policy: add_tasks(
            pg_engine,
            1,
            url,
            {"interval_seconds": EVERY_S},
            timeout_s=HOLD_S + 10,
            overlap=policy,
            start_at=start_at,
        )[0]
        for policy in ("skip", "buffer_one")
    }
    skipping, buffered = ids["skip"], ids["buffer_one"]
    assert wait_until(lambda: len(target.snapshot()) >= 2, 30), stack.logs()
    peaks: Counter[tuple[str, str]] = Counter()
    deadline = time.monotonic() + WATCH_S
    observations = 0
    while time.monotonic() < deadline:
        for key, value in _observe(pg_engine, [skipping, buffered]).items():
            peaks[key] = max(peaks[key], value)
            assert value <= 1, (key, value, stack.logs())
        observations += 1
        time.sleep(0.25)
    assert observations > 100
    assert peaks[(str(buffered), "waiting")] == 1  # it did buffer
    stack.stop("beat")

    arrivals: dict[str, list[float]] = {}
    for received in target.snapshot():
        arrivals.setdefault(received.headers["X-Taskhub-Task-Id"], []).append(received.at)
    for task_id in (skipping, buffered):
        times = arrivals[str(task_id)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 3, times
        # Never two requests of one task at the target at once.
        assert all(gap >= HOLD_S - 0.05 for gap in gaps), (task_id, gaps)
    # buffer_one: the waiting one goes out as soon as the running one ended.
    buffered_times = arrivals[str(buffered)]
    buffered_gaps = [b - a for a, b in itertools.pairwise(buffered_times)]
    assert all(gap < HOLD_S + EVERY_S for gap in buffered_gaps), buffered_gaps

    # skip: between two fired occurrences, 3 or 4 skipped (20 s or 25 s apart).
    history = _executions(pg_engine, skipping)
    fired = [when for when, status in history if status == "fired"]
    skipped = [when for when, status in history if status == "skipped"]
    assert len(fired) >= 3 and len(skipped) >= 6, history
    for first, second in itertools.pairwise(fired):
        assert round(second - first, 3) in (4 * EVERY_S, 5 * EVERY_S), (first, second, history)
        between = [when for when, _ in history if first < when < second]
        assert all(when in skipped for when in between), history
    window = [(when, status) for when, status in history if fired[0] <= when < fired[-1]]
    fired_in_window = sum(1 for _, status in window if status == "fired")
    assert len(window) / 5 <= fired_in_window <= len(window) / 4, window
    # Each skipped occurrence was counted.
    with pg_engine.connect() as conn:
        counted, stored = conn.execute(
            sa.text(
                "SELECT (SELECT value FROM metric_counters"
                "  WHERE name = 'taskhub_executions_finished_total'"
                '  AND labels = \'{"status":"skipped"}\'),'
                " (SELECT count(*) FROM executions WHERE status = 'skipped')"
            )
        ).one()
    assert counted == stored >= len(skipped)
