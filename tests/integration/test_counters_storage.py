"""Counters kept in the database, on PostgreSQL and SQLite: counted once with the work
they count, and never again when the work is repeated."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.engine import Engine

from taskhub.db import heartbeat_queries, metric_queries
from taskhub.engine import staging, writeback
from taskhub.observability import counters, heartbeat
from tests.support.storage import NOW, SETTINGS, add_task, claim_all, outcome


def stored(engine: Engine) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        return metric_queries.read_counters(conn)


def test_a_write_back_counts_its_attempts_once(engine: Engine) -> None:
    add_task(engine, "once", {"at": NOW.isoformat()})
    add_task(engine, "gone", {"at": NOW.isoformat()}, retry={"max_attempts": 1})
    ok, missing = sorted(claim_all(engine, NOW), key=lambda r: r.url)
    results = [outcome(ok), outcome(missing, http_status=404)]
    writeback.record_outcomes(engine, results, SETTINGS, NOW + timedelta(seconds=1), lambda: 0.5)
    first = stored(engine)
    writeback.record_outcomes(engine, results, SETTINGS, NOW + timedelta(seconds=2), lambda: 0.5)
    assert stored(engine) == first
    assert first[("taskhub_attempts_total", counters.labels(outcome="success"))] == 1
    assert first[("taskhub_attempts_total", counters.labels(outcome="http_4xx"))] == 1
    assert first[("taskhub_occurrences_claimed_total", "")] == 2
    assert first[("taskhub_ticks_total", "")] == 1
    assert first[("taskhub_fire_lag_seconds_count", "")] == 2
    assert first[("taskhub_target_latency_seconds_sum", "")] == 2 * 0.012


def test_concurrent_writers_add_up(engine: Engine) -> None:
    def add() -> None:
        for _ in range(20):
            with engine.begin() as conn:
                metric_queries.add_to_counters(conn, {("x_total", ""): 1, ("y_total", ""): 2})

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stored(engine) == {("x_total", ""): 80, ("y_total", ""): 160}


def test_heartbeats_replace_each_other_and_go_stale(engine: Engine) -> None:
    heartbeat.set_node("trigger@host")
    with engine.begin() as conn:
        heartbeat_queries.write_heartbeat(conn, heartbeat.measure("trigger", engine, NOW, NOW, 3))
        heartbeat_queries.write_heartbeat(
            conn, heartbeat.measure("trigger", engine, NOW, NOW + timedelta(seconds=10), 1)
        )
    with engine.begin() as conn:
        [row] = heartbeat_queries.live_heartbeats(
            conn, heartbeat.live_since(NOW + timedelta(seconds=10))
        )
    assert row["role"] == "trigger" and row["in_flight"] == 1 and row["started_at"] == NOW
    assert row["rss_bytes"] > 1_000_000 and row["process"].startswith("trigger@host:")
    later = NOW + timedelta(seconds=10 + heartbeat.STALE_AFTER_S + 1)
    with engine.begin() as conn:
        assert heartbeat_queries.live_heartbeats(conn, heartbeat.live_since(later)) == []


def test_the_staging_loop_sees_the_last_tick(engine: Engine) -> None:
    assert staging.last_tick_s(engine) is None  # no tick yet: the loop stays idle
    add_task(engine, "ticked", {"at": NOW.isoformat()})
    claim_all(engine, NOW)  # a whole tick, which records when it ended
    last = staging.last_tick_s(engine)
    assert last is not None
    assert staging.beat_is_ticking(last, last + 1, SETTINGS.tick_seconds)
    assert not staging.beat_is_ticking(
        last, last + 3 * SETTINGS.tick_seconds, SETTINGS.tick_seconds
    )
