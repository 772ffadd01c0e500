"""After a small burst through real worker and beat processes, /metrics reports every
indicator the system this replaces asked for, with plausible values."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.engine import Engine

from taskhub.api.app import create_app
from taskhub.core.definitions import parse_definition
from taskhub.core.settings import load
from taskhub.service import task_service
from tests.support.engine import add_tasks, all_ended, soon
from tests.support.processes import Stack, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow


@pytest.fixture
def metrics_stack(stack: Stack) -> Stack:
    # A lease far longer than any attempt here: a send is never repeated, so the counts
    # below are exact.
    stack.env["TASKHUB_DISPATCH_LEASE_SECONDS"] = "60"
    return stack


def scrape(client: TestClient) -> dict[str, list[Sample]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert matching, f"no sample {name} {labels}"
    return sum(matching)


def test_every_indicator_after_a_small_burst(
    metrics_stack: Stack, postgres_url: str, pg_engine: Engine, target: Target
) -> None:
    stack = metrics_stack
    once = {"max_attempts": 1, "backoff_seconds": 1, "max_backoff_seconds": 1}
    twice = {"max_attempts": 2, "backoff_seconds": 1, "max_backoff_seconds": 1}
    add_tasks(pg_engine, 30, target.url("/ok"), {"at": soon(3)}, retry=once)
    add_tasks(pg_engine, 3, target.url("/missing"), {"at": soon(3)}, retry=once)
    # /slow/5 with the 2 s timeout add_tasks sets: a timeout, retried once, then dead.
    add_tasks(pg_engine, 2, target.url("/slow/5"), {"at": soon(3)}, retry=twice)
    stack.start("all", "all")
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 35), 90), stack.logs()

    client = TestClient(create_app(postgres_url))

    def worker_reported_the_burst() -> bool:
        # Processes write their figures every heartbeat.INTERVAL_S.
        queries = scrape(client)["taskhub_db_queries"]
        return value(queries, "taskhub_db_queries_total", role="all") > 35

    assert wait_until(worker_reported_the_burst, 30)
    m = scrape(client)
    assert value(m["taskhub_database_up"], "taskhub_database_up") == 1
    # The tick: it runs, how long it takes, when it last ran.
    assert value(m["taskhub_ticks"], "taskhub_ticks_total") >= 1
    assert value(m["taskhub_tick_duration_seconds"], "taskhub_tick_duration_seconds_count") >= 1
    last_tick = value(
        m["taskhub_last_tick_timestamp_seconds"], "taskhub_last_tick_timestamp_seconds"
    )
    assert 0 <= datetime.now(UTC).timestamp() - last_tick < 60
    # Backlog: nothing due is left unclaimed.
    assert value(m["taskhub_due_backlog"], "taskhub_due_backlog") == 0
    assert value(m["taskhub_oldest_due_age_seconds"], "taskhub_oldest_due_age_seconds") == 0
    # Occurrences claimed, and what became of their attempts.
    occurrences = m["taskhub_occurrences_claimed"]
    assert value(occurrences, "taskhub_occurrences_claimed_total") == 35
    redispatched = m["taskhub_executions_redispatched"]
    assert value(redispatched, "taskhub_executions_redispatched_total") == 2  # the retries
    attempts = m["taskhub_attempts"]
    assert value(attempts, "taskhub_attempts_total", outcome="success") == 30
    assert value(attempts, "taskhub_attempts_total", outcome="http_4xx") == 3
    assert value(attempts, "taskhub_attempts_total", outcome="timeout") == 4
    retries = m["taskhub_retries_scheduled"]
    assert value(retries, "taskhub_retries_scheduled_total") == 2
    finished = m["taskhub_executions_finished"]
    assert value(finished, "taskhub_executions_finished_total", status="succeeded") == 30
    assert value(finished, "taskhub_executions_finished_total", status="failed") == 3
    assert value(finished, "taskhub_executions_finished_total", status="dead") == 2
    assert value(m["taskhub_dead_letters"], "taskhub_dead_letters") == 2
    # Fire lag (first attempts only) and target latency (every attempt).
    lag = m["taskhub_fire_lag_seconds"]
    assert value(lag, "taskhub_fire_lag_seconds_count") == 35
    assert value(lag, "taskhub_fire_lag_seconds_bucket", le="+Inf") == 35
    assert 0 <= value(lag, "taskhub_fire_lag_seconds_sum") / 35 < 30
    latency = m["taskhub_target_latency_seconds"]
    assert value(latency, "taskhub_target_latency_seconds_count") == 30 + 3 + 4
    # The timeouts took about their 2 s; a histogram's buckets are cumulative.
    assert value(latency, "taskhub_target_latency_seconds_bucket", le="1.0") <= 35
    assert value(latency, "taskhub_target_latency_seconds_sum") >= 4 * 1.5
    # In flight: executions sent and not yet written back (none now), per process too.
    assert value(m["taskhub_executions"], "taskhub_executions", status="running") == 0
    in_flight = m["taskhub_process_triggers_in_flight"]
    assert value(in_flight, "taskhub_process_triggers_in_flight", role="all") == 0
    # Every process reports its memory, database pool and query time through the database.
    memory = m["taskhub_process_resident_memory_bytes"]
    for role in ("all", "beat", "api"):
        assert 10e6 < value(memory, "taskhub_process_resident_memory_bytes", role=role) < 2e9
    assert value(m["taskhub_db_pool_size"], "taskhub_db_pool_size", role="all") >= 1
    checked_out = m["taskhub_db_pool_checked_out"]
    assert value(checked_out, "taskhub_db_pool_checked_out", role="all") >= 0
    assert value(m["taskhub_db_queries"], "taskhub_db_queries_total", role="all") > 35
    query_s = value(m["taskhub_db_query_seconds"], "taskhub_db_query_seconds_total", role="all")
    assert 0 < query_s < 60
    # `taskhub stats` reads the same figures from the same database.
    shown = subprocess.run(
        [sys.executable, "-m", "taskhub.cli", "stats", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(shown.stdout)
    assert figures["attempts"] == 37 and figures["timeouts"] == 4 and figures["retries"] == 2
    assert figures["executions"]["dead"] == 2 and figures["due_backlog"] == 0
    assert 0 < figures["success_rate"] < 1 and figures["fire_lag_p99_s"] < 30
    assert {"all", "beat"} <= {p["role"] for p in figures["processes"]}
    view = subprocess.run(
        [sys.executable, "-m", "taskhub.cli", "stats", "--once"],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "timeouts 4" in view and "fire lag" in view
    health = [sys.executable, "-m", "taskhub.cli", "health", "--max-tick-age", "60"]
    assert subprocess.run(health, env=stack.env, capture_output=True).returncode == 0
    stack.stop("beat")
    stale = [*health[:-1], "1"]
    assert wait_until(
        lambda: subprocess.run(stale, env=stack.env, capture_output=True).returncode == 1, 20
    )
    # The API's own requests are counted (this scrape's predecessor included).
    time.sleep(0.1)
    again = scrape(client)
    assert value(again["taskhub_api_requests"], "taskhub_api_requests_total", route="/metrics") >= 1


def test_worker_logs_are_json_lines_with_ids_and_without_secrets(
    metrics_stack: Stack, pg_engine: Engine, target: Target
) -> None:
    stack = metrics_stack
    secret = "e2e-credential-0123456789abcdef"
    now = datetime.now(UTC)
    definition = {
        "name": "logged",
        "schedule": {"at": soon(2)},
        "target": {
            "url": target.url("/missing"),
            "headers": {"Authorization": f"Bearer {secret}"},
            "timeout_seconds": 2,
        },
        "retry": {"max_attempts": 1},
    }
    with pg_engine.begin() as conn:
        task_id = task_service.create_task(
            conn, parse_definition(definition, now), now, load(stack.env)
        )
    stack.env["TASKHUB_LOG_FORMAT"] = "json"
    stack.start("all", "all")
    stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 1), 60), stack.logs()
    assert target.snapshot()[0].headers["Authorization"] == f"Bearer {secret}"
    time.sleep(0.5)
    lines = (stack.log_dir / "all.log").read_text().splitlines()
    # Celery's start-up banner and warnings are printed, not logged; every log record is
    # one JSON object.
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(e["logger"].startswith("taskhub.") for e in entries), lines[:20]
    [failed] = [e for e in entries if e.get("status") == "failed"]
    assert failed["task_id"] == str(task_id) and failed["http_status"] == 404
    assert isinstance(failed["execution_id"], int) and failed["scheduled_for"]
    assert failed["level"] == "WARNING"
    assert secret not in stack.logs()
