"""Backfill through the API and the CLI, on SQLite and on PostgreSQL: each occurrence of
a past range fired once, whatever the calls overlap; refusals name their field and store
nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.occurrences import idempotency_key
from taskhub.db.models import executions
from tests.support.api import T0, Api, dump, with_env
from tests.support.cli import Cli

HOUR = timedelta(hours=1)


def iso(instant: datetime) -> str:
    return instant.isoformat()


def backfilled(engine: Engine, task_id: str) -> list[dict[str, Any]]:
    """The task's executions, oldest occurrence first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(executions).order_by(executions.c.scheduled_for)).mappings()
        return [dict(row) for row in rows if str(row["task_id"]) == task_id]


def test_a_range_fires_each_occurrence_once_and_a_repeat_fires_none(engine: Engine) -> None:
    api = Api(engine, T0)
    task = api.task("hourly", schedule={"interval_seconds": 3600})
    anchor = datetime.fromisoformat(task["created_at"])  # an interval counts from creation
    api.clock.now = T0 + 24 * HOUR
    # Begins before the task was created (it has no start_at): the interval reaches back.
    body = {"start": iso(anchor - 2 * HOUR), "end": iso(anchor + 3 * HOUR)}
    first = api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body)
    assert first.status_code == 202 and first.json() == {"count": 6}
    assert api.ticks == ["tick"]
    rows = backfilled(engine, task["id"])
    assert [r["scheduled_for"] for r in rows] == [anchor + k * HOUR for k in range(-2, 4)]
    assert {r["status"] for r in rows} == {"queued"}
    assert all(
        r["idempotency_key"] == idempotency_key(task["id"], r["scheduled_for"]) for r in rows
    )
    # Due at once, like a run-now: sent by the tick, never withdrawn as staged.
    assert all(r["next_attempt_at"] == r["created_at"] for r in rows)

    again = api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body)
    assert again.status_code == 202 and again.json() == {"count": 0}
    assert api.ticks == ["tick"]  # nothing new: no tick asked for

    overlapping = {"start": iso(anchor + 2 * HOUR), "end": iso(anchor + 5 * HOUR)}
    assert api.a.post(f"/v1/tasks/{task['id']}/backfill", json=overlapping).json() == {"count": 2}
    assert len(backfilled(engine, task["id"])) == 8

    shown = api.a.get(f"/v1/tasks/{task['id']}").json()
    assert shown["next_execution_time"] == task["next_execution_time"]  # schedule untouched


def test_an_end_in_the_future_is_taken_as_now(engine: Engine) -> None:
    api = Api(engine, T0)
    task = api.task("hourly", schedule={"cron": "0 * * * *"})
    api.clock.now = T0 + 2 * HOUR + timedelta(minutes=1)
    body = {"start": iso(T0 - HOUR), "end": iso(T0 + 30 * HOUR)}
    assert api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body).json() == {"count": 4}


def test_a_paused_task_is_backfilled(engine: Engine) -> None:
    api = Api(engine, T0)
    task = api.task("hourly", schedule={"cron": "0 * * * *"})
    api.a.post(f"/v1/tasks/{task['id']}/pause")
    api.clock.now = T0 + 5 * HOUR
    body = {"start": iso(T0), "end": iso(T0 + 4 * HOUR)}
    assert api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body).json() == {"count": 5}


def test_skipped_occurrences_and_calendar_dates_are_not_backfilled(engine: Engine) -> None:
    api = Api(engine, T0)
    holiday = {"name": "holiday", "timezone": "UTC", "dates": [T0.date().isoformat()]}
    assert api.a.post("/v1/calendars", json=holiday).status_code == 201
    task = api.task("hourly", schedule={"cron": "0 * * * *"}, exclude_calendars=["holiday"])
    skipped = T0 + 25 * HOUR
    skip = api.a.post(f"/v1/tasks/{task['id']}/skip", json={"scheduled_for": iso(skipped)})
    assert skip.status_code == 200, skip.text
    api.clock.now = T0 + 27 * HOUR
    # 22:00 and 23:00 are on the holiday, 01:00 the next day is skipped.
    body = {"start": iso(T0 + 22 * HOUR), "end": iso(T0 + 26 * HOUR)}
    assert api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body).json() == {"count": 2}
    fired = [r["scheduled_for"] for r in backfilled(engine, task["id"])]
    assert fired == [T0 + 24 * HOUR, T0 + 26 * HOUR]


def test_refusals_name_the_field_and_store_nothing(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_BACKFILL_MAX_OCCURRENCES="10"))
    start_at = T0 + HOUR
    task = api.task("windowed", schedule={"cron": "*/5 * * * *"}, start_at=iso(start_at))
    api.clock.now = T0 + 10 * HOUR
    before = dump(engine)
    url = f"/v1/tasks/{task['id']}/backfill"
    cases: list[tuple[Any, str]] = [
        ({"start": iso(T0), "end": iso(T0 + 2 * HOUR)}, "start"),  # before start_at
        ({"start": iso(start_at), "end": iso(start_at + HOUR)}, "end"),  # 13 > 10
        ({"start": iso(T0 + 11 * HOUR), "end": iso(T0 + 12 * HOUR)}, "start"),  # future
        ({"start": iso(start_at + HOUR), "end": iso(start_at)}, "end"),
        ({"start": "soon", "end": iso(start_at)}, "start"),
        ({"start": iso(start_at)}, "end"),
        ({"start": iso(start_at), "end": iso(start_at + HOUR), "overlap": "skip"}, "overlap"),
    ]
    for body, field in cases:
        assert api.error(api.a.post(url, json=body), 422)["field"] == field, body
    assert api.error(api.a.post(url, content=b"[]"), 422)["field"] is None  # the body
    # Another tenant's task is as missing as a task that never was.
    ok = {"start": iso(start_at), "end": iso(start_at + 40 * timedelta(minutes=1))}
    assert api.error(api.b.post(url, json=ok), 404)["code"] == "not_found"
    missing = "/v1/tasks/00000000-0000-4000-8000-000000000000/backfill"
    assert api.error(api.a.post(missing, json=ok), 404)
    assert dump(engine) == before
    assert api.a.post(url, json=ok).json() == {"count": 9}


def test_a_backfill_counts_against_runs_per_minute(engine: Engine) -> None:
    api = Api(engine, T0, with_env(TASKHUB_TENANT_RUNS_PER_MINUTE="1"))
    task = api.task("hourly", schedule={"interval_seconds": 3600})
    api.clock.now = T0 + 3 * HOUR
    body = {"start": iso(T0), "end": iso(T0 + HOUR)}
    assert api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body).status_code == 202
    refused = api.a.post(f"/v1/tasks/{task['id']}/backfill", json=body)
    assert refused.status_code == 429 and refused.headers["Retry-After"]


def test_the_cli_backfills_once_and_refuses_naming_the_field(
    tmp_path: Path, database_url: str
) -> None:
    cli = Cli(tmp_path)
    cli.env["TASKHUB_DATABASE_URL"] = database_url
    cli("db", "upgrade")
    task_id = cli(
        "task",
        "add",
        "-",
        stdin=json.dumps(
            {
                "name": "every-minute",
                "schedule": {"cron": "* * * * *"},
                "target": {"url": "https://example.com/hook"},
                "start_at": "2026-01-01T00:00:00Z",
            }
        ),
    ).stdout.strip()
    args = ("task", "backfill", task_id, "--start", "2026-01-01T00:00Z", "--end")
    assert cli.json(*args, "2026-01-01T00:09Z") == {"count": 10}
    assert cli(*args, "2026-01-01T00:19Z").stdout.strip() == "10 occurrences queued"
    assert cli.json(*args, "2026-01-01T00:19Z") == {"count": 0}
    refused = cli(
        "task",
        "backfill",
        task_id,
        "--start",
        "2025-12-31T00:00Z",
        "--end",
        "2026-01-01T00:00Z",
        expect=2,
    )
    assert "start" in refused.stderr
    cli("task", "backfill", task_id, "--start", "2026-01-01T00:00Z", expect=2)
    cli(
        "task",
        "backfill",
        task_id,
        "--start",
        "2026-01-01T00:00Z",
        "--end",
        "2026-01-01T00:01Z",
        "--tenant",
        "other",
        expect=3,
    )
    history = cli.json("executions", "--task", task_id, "--limit", "100")
    assert len(history["items"]) == 20
