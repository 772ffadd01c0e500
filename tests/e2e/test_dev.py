"""`taskhub dev` as a user runs it, following the README's quick tour: embedded defaults
(SQLite, the filesystem broker), an API key from the CLI, a task created through the
API, fired at a real target, its executions read back, Ctrl-C stopping everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import free_port, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow

TASKHUB = [sys.executable, "-m", "taskhub.cli"]


def test_the_quick_tour_on_taskhub_dev(tmp_path: Path, target: Target) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
    # The README's narrow way to reach a local server: loopback and nothing else.
    env.update(
        {"TASKHUB_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8,::1/128", "TASKHUB_TICK_SECONDS": "1"}
    )

    def taskhub(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*TASKHUB, *args],
            cwd=tmp_path,
            env=env,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    taskhub("db", "upgrade")
    key = taskhub("apikey", "create", "--tenant", "acme")
    # Every 2 s is below the default min_interval_seconds: the operator allows it for acme.
    taskhub("tenant", "limits", "set", "acme", "--min-interval-seconds", "1")
    # A task added from the CLI, for the same tenant, fires too.
    taskhub(
        "task",
        "add",
        "-",
        "--tenant",
        "acme",
        stdin=json.dumps(
            {
                "name": "every-2s",
                "schedule": {"interval_seconds": 2},
                "target": {"url": target.url("/ok"), "method": "GET"},
            }
        ),
    )

    port = free_port()
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    dev = subprocess.Popen(
        [*TASKHUB, "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )

    def api_up() -> bool:
        try:
            return api.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(api_up, 60), (tmp_path / "dev.log").read_text()
        at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        created = api.post(
            "/v1/tasks",
            json={
                "name": "once",
                "schedule": {"at": at},
                "target": {"url": target.url("/ok"), "body": '{"hello": 1}'},
            },
        )
        assert created.status_code == 201, created.text
        task: dict[str, Any] = created.json()
        assert api.get("/v1/tasks", headers={"Authorization": "Bearer nope"}).status_code == 401

        def fired() -> bool:
            executions = api.get(f"/v1/tasks/{task['id']}/executions").json()["items"]
            return [e["status"] for e in executions] == ["succeeded"]

        assert wait_until(fired, 90), (tmp_path / "dev.log").read_text()
        assert wait_until(lambda: len([r for r in target.snapshot() if r.method == "GET"]) >= 3, 30)
        shown = api.get(f"/v1/tasks/{task['id']}").json()
        assert (shown["status"], shown["last_status"], shown["execution_count"]) == (
            "finished",
            "succeeded",
            1,
        )
    finally:
        api.close()
        dev.send_signal(signal.SIGINT)
        code = dev.wait(60)
    assert code == 0, (tmp_path / "dev.log").read_text()
    posts = [r for r in target.snapshot() if r.method == "POST"]
    assert len(posts) == 1 and posts[0].body == '{"hello": 1}'
    assert posts[0].headers["X-Taskhub-Task-Id"] == task["id"]
