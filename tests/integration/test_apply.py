"""``taskhub apply`` as a user runs it: the command in a subprocess, speaking HTTP to the
real API (uvicorn on a loopback port) over SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine

from taskhub.client import Client
from tests.support.api import dump, task_body
from tests.support.cli import Cli
from tests.support.live_api import LiveApi, live_api

TASKS_YAML = """
tasks:
  - name: nightly-report
    schedule: {cron: "0 9 * * 1-5", timezone: Asia/Taipei}
    target:
      url: https://example.com/report
      method: POST
      headers: {X-Team: billing}
      body: '{"kind": "nightly"}'
    retry: {max_attempts: 5}
    tags: {team: billing}
  - name: heartbeat
    schedule: {interval_seconds: 60}
    target: {url: https://example.com/ping, method: GET}
    start_at: 2030-01-01T00:00:00Z
"""


@pytest.fixture
def api(engine: Engine) -> Iterator[LiveApi]:
    with live_api(engine) as running:
        yield running


@pytest.fixture
def cli(api: LiveApi, tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.env["TASKHUB_API_URL"] = api.url
    cli.env["TASKHUB_API_KEY"] = api.new_key("acme")
    return cli


def write(cli: Cli, text: str, name: str = "tasks.yaml") -> str:
    path = cli.directory / name
    path.write_text(text)
    return str(path)


def tasks(api: LiveApi, cli: Cli) -> dict[str, dict[str, Any]]:
    with Client(api.url, cli.env["TASKHUB_API_KEY"]) as client:
        return {t["name"]: t for t in client.list()}


def plan(cli: Cli, *args: str, expect: int = 0) -> dict[str, str]:
    done = cli("apply", *args, "--json", expect=expect)
    return {s["name"]: s["action"] for s in json.loads(done.stdout)["steps"]}


def test_apply_creates_then_is_unchanged_then_updates(api: LiveApi, cli: Cli) -> None:
    path = write(cli, TASKS_YAML)
    out = cli("apply", "-f", path).stdout
    assert "nightly-report  create" in out and "2 created" in out
    stored = tasks(api, cli)
    assert stored["nightly-report"]["retry"]["max_attempts"] == 5
    assert stored["heartbeat"]["start_at"] == "2030-01-01T00:00:00+00:00"
    assert plan(cli, "-f", path) == {"nightly-report": "unchanged", "heartbeat": "unchanged"}

    changed = TASKS_YAML.replace("max_attempts: 5", "max_attempts: 2").replace(
        "method: GET", "method: HEAD"
    )
    out = cli("apply", "-f", write(cli, changed)).stdout
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert "update" in lines["nightly-report"] and "retry.max_attempts" in lines["nightly-report"]
    assert "target.method" in lines["heartbeat"]
    assert tasks(api, cli)["heartbeat"]["target"]["method"] == "HEAD"
    assert tasks(api, cli)["heartbeat"]["id"] == stored["heartbeat"]["id"]


def test_dry_run_prints_the_plan_and_changes_nothing(api: LiveApi, cli: Cli) -> None:
    before = dump(api.engine)
    out = cli("apply", "-f", write(cli, TASKS_YAML), "--dry-run").stdout
    assert "NAME" in out and "ACTION" in out and "CHANGES" in out
    assert "2 to create (dry run: nothing was changed)" in out
    assert dump(api.engine) == before


def test_prune_deletes_what_the_file_does_not_name_and_only_with_prune(
    api: LiveApi, cli: Cli
) -> None:
    with Client(api.url, cli.env["TASKHUB_API_KEY"]) as client:
        client.create(task_body("made-by-hand"))
    path = write(cli, TASKS_YAML)
    assert plan(cli, "-f", path) == {"nightly-report": "create", "heartbeat": "create"}
    assert "made-by-hand" in tasks(api, cli)
    assert plan(cli, "-f", path, "--prune", "--dry-run")["made-by-hand"] == "delete"
    assert "made-by-hand" in tasks(api, cli)
    assert plan(cli, "-f", path, "--prune") == {
        "made-by-hand": "delete",
        "nightly-report": "unchanged",
        "heartbeat": "unchanged",
    }
    assert set(tasks(api, cli)) == {"nightly-report", "heartbeat"}
    # An empty file with --prune empties the tenant.
    assert plan(cli, "-f", write(cli, "tasks: []\n"), "--prune") == {
        "nightly-report": "delete",
        "heartbeat": "delete",
    }
    assert tasks(api, cli) == {}


def test_a_refused_task_is_named_and_nothing_is_changed(api: LiveApi, cli: Cli) -> None:
    bad = TASKS_YAML + '  - name: broken\n    schedule: {cron: "61 * * * *"}\n'
    bad += "    target: {url: https://example.com/x}\n"
    before = dump(api.engine)
    done = cli("apply", "-f", write(cli, bad), expect=2)
    assert "broken" in done.stdout and "refused" in done.stdout and "schedule" in done.stdout
    assert "nothing was changed" in done.stdout
    assert dump(api.engine) == before


def test_json_file_and_another_tenant_key_is_refused(api: LiveApi, cli: Cli) -> None:
    definitions = yaml.safe_load(TASKS_YAML)["tasks"]
    for d in definitions:  # JSON has no dates: the YAML one read as text
        d.update(
            {
                k: str(v).replace(" ", "T").replace("+00:00", "Z")
                for k, v in d.items()
                if k == "start_at"
            }
        )
    path = write(cli, json.dumps(definitions), "tasks.json")
    before = dump(api.engine)
    done = cli("apply", "-f", path, "--tenant", "other", expect=2)
    assert "tenant 'acme', not 'other'" in done.stderr
    assert dump(api.engine) == before
    assert plan(cli, "-f", path, "--tenant", "acme") == {
        "nightly-report": "create",
        "heartbeat": "create",
    }


def test_without_a_key_or_with_a_bad_file_it_says_what_is_wrong(cli: Cli) -> None:
    env = dict(cli.env)
    del cli.env["TASKHUB_API_KEY"]
    assert "TASKHUB_API_KEY" in cli("apply", "-f", "x.yaml", expect=2).stderr
    cli.env.update(env)
    assert "no name" in cli("apply", "-f", write(cli, "- schedule: {}\n"), expect=2).stderr
    assert "twice" in cli("apply", "-f", write(cli, "- name: a\n- name: a\n"), expect=2).stderr
    cli.env["TASKHUB_API_KEY"] = "wrong"
    assert "the API refused" in cli("apply", "-f", write(cli, TASKS_YAML), expect=1).stderr
