"""The task definitions under ``examples/`` are what docs/task-definition.md shows (an
HTTP target and a Celery target): each one is taken by ``taskhub task add`` as a user
runs it, and reads back as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Cli

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_taskhub_task_add_takes_the_example(example: Path, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("db", "upgrade")
    task_id = cli("task", "add", str(example), "--tenant", "acme").stdout.strip()
    shown: dict[str, Any] = cli.json("task", "show", task_id, "--tenant", "acme")
    written: dict[str, Any] = json.loads(example.read_text())
    assert shown["status"] == "active" and shown["next_execution_time"]
    for field, value in written.items():
        if field in ("start_at", "end_at"):
            assert shown[field] == value.replace("Z", "+00:00"), field
        elif field == "target" and "celery" in value:
            # A Celery target comes back as written, and as nothing else.
            assert shown["target"] == value
        elif field == "target":
            for key, item in value.items():
                if key != "headers":
                    assert shown["target"][key] == item, key
            # Credential headers come back masked, the others as written.
            assert shown["target"]["headers"].keys() == value.get("headers", {}).keys()
        else:
            assert shown[field] == value, field
    # Shown to a person too: the target in one line.
    lines = cli("task", "show", task_id, "--tenant", "acme").stdout.splitlines()
    [target] = [line for line in lines if line.startswith("target:")]
    assert (written["target"].get("url") or written["target"]["celery"]["task"]) in target
