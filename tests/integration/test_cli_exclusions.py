"""``taskhub calendar`` and ``taskhub task skip|unskip``: the real command in a
subprocess, over SQLite, as a script would drive it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.cli import Cli

DAILY = json.dumps(
    {
        "name": "daily",
        "schedule": {"cron": "0 9 * * *", "timezone": "UTC"},
        "target": {"url": "https://example.com/hook"},
    }
)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli("db", "upgrade")
    return cli


def test_calendars_from_the_command_line(cli: Cli) -> None:
    made = cli.json(
        "calendar", "create", "tw-holidays", "--timezone", "Asia/Taipei",
        "--date", "2031-01-01,2031-02-01", "--date", "2031-03-01",
    )  # fmt: skip
    assert made["dates"] == ["2031-01-01", "2031-02-01", "2031-03-01"]
    assert [c["name"] for c in cli.json("calendar", "list")["items"]] == ["tw-holidays"]
    listed = cli("calendar", "list").stdout.split()
    assert listed[:4] == ["NAME", "TIMEZONE", "DATES", "UPDATED_AT"] and "tw-holidays" in listed
    changed = cli.json("calendar", "update", "tw-holidays", "--clear-dates")
    assert changed["dates"] == []
    assert "dates:" in cli("calendar", "show", "tw-holidays").stdout
    refused = cli("calendar", "create", "Bad Name", "--timezone", "UTC", expect=2)
    assert "name" in refused.stderr
    refused = cli("calendar", "create", "x", "--timezone", "Nowhere/Zone", expect=2)
    assert "timezone" in refused.stderr
    cli("calendar", "delete", "tw-holidays")
    assert cli.json("calendar", "list")["items"] == []
    assert "calendar" in cli("calendar", "show", "tw-holidays", expect=3).stderr


def test_skip_and_unskip_from_the_command_line(cli: Cli) -> None:
    task_id = cli("task", "add", "-", stdin=DAILY).stdout.strip()
    first = cli.json("task", "show", task_id)["next_execution_time"]
    second = cli.json("task", "preview", task_id, "--count", "2")["fire_times"][1]["utc"]
    done = cli.json("task", "skip", task_id, "--at", first)
    assert done == {"task_id": task_id, "scheduled_for": first, "skipped": True}
    assert cli.json("task", "show", task_id)["next_execution_time"] == second
    preview = cli("task", "preview", task_id, "--count", "2").stdout
    assert "skip" in preview.splitlines()[1]
    assert "unskip" not in preview
    cli("task", "unskip", task_id, "--at", first)
    assert cli.json("task", "show", task_id)["next_execution_time"] == first
    off = datetime.fromisoformat(first).replace(minute=30).isoformat()
    assert "scheduled_for" in cli("task", "skip", task_id, "--at", off, expect=2).stderr
