"""The real ``taskhub`` command in a subprocess, over a SQLite database, as a script
would drive it: output, --json and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskhub.db import engines
from tests.support.cli import Cli
from tests.support.engine import make_dead


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli("db", "upgrade")
    return cli


@pytest.fixture
def cli_on_each_backend(tmp_path: Path, database_url: str) -> Cli:
    """The command over SQLite, then over PostgreSQL."""
    cli = Cli(tmp_path)
    cli.env["TASKHUB_DATABASE_URL"] = database_url
    cli("db", "upgrade")
    return cli


def definition(name: str, **extra: Any) -> str:
    return json.dumps(
        {
            "name": name,
            "schedule": {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"},
            "target": {"url": "https://example.com/hook"},
            **extra,
        }
    )


def lines(text: str) -> list[list[str]]:
    """Each line's words: what a person reads, whatever the column widths."""
    return [line.split() for line in text.splitlines()]


def test_task_show_reads_as_words_never_as_python(cli: Cli) -> None:
    task_id = cli("task", "add", "-", stdin=definition("plain")).stdout.strip()
    shown = cli("task", "show", task_id).stdout
    assert "None" not in shown
    assert ["auto_pause_after_failures:", "never"] in lines(shown)
    assert ["last_status:", "-"] in lines(shown)
    assert ["tags:", "{}"] in lines(shown)
    cli("task", "add", "-", stdin=definition("guarded", auto_pause_after_failures=3))
    [guarded] = cli.json("task", "list", "--name", "guarded")["items"]
    assert ["auto_pause_after_failures:", "3"] in lines(cli("task", "show", guarded["id"]).stdout)


def test_a_task_through_its_whole_life(cli: Cli) -> None:
    task_id = cli("task", "add", "-", stdin=definition("nightly", tags={"team": "billing"}))
    task_id_text = task_id.stdout.strip()
    listed = cli("task", "list").stdout
    assert "nightly" in listed and task_id_text in listed and "NEXT_EXECUTION_TIME" in listed
    assert [t["id"] for t in cli.json("task", "list", "--tag", "team:billing")["items"]] == [
        task_id_text
    ]
    assert cli.json("task", "list", "--tag", "team:other")["items"] == []
    shown = cli.json("task", "show", task_id_text)
    assert shown["schedule"] == {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"}
    assert shown["status"] == "active" and shown["misfire_policy"] == "fire_once"
    preview = cli.json("task", "preview", task_id_text, "--count", "3")
    assert len(preview["fire_times"]) == 3
    assert all(t["local"].endswith("09:00:00+08:00") for t in preview["fire_times"])
    paused = cli.json("task", "pause", task_id_text, "--reason", "holiday")
    assert (paused["status"], paused["paused_by"], paused["paused_reason"]) == (
        "paused",
        "user",
        "holiday",
    )
    assert "paused_reason:" in cli("task", "show", task_id_text).stdout
    assert cli.json("task", "list", "--status", "paused")["items"][0]["id"] == task_id_text
    assert cli.json("task", "resume", task_id_text)["status"] == "active"
    run = cli.json("task", "run", task_id_text)
    assert run["status"] == "queued" and run["task_id"] == task_id_text
    history = cli.json("executions", "--task", task_id_text)
    assert [e["id"] for e in history["items"]] == [run["id"]]
    cli("task", "delete", task_id_text)
    cli("task", "show", task_id_text, expect=3)


def test_bad_input_exits_2_naming_the_field_and_stores_nothing(cli: Cli) -> None:
    refused = cli(
        "task",
        "add",
        "-",
        stdin=json.dumps(
            {
                "name": "x",
                "schedule": {"cron": "0 9 * * *", "timezone": "Mars/Base"},
                "target": {"url": "https://example.com/"},
            }
        ),
        expect=2,
    )
    assert "schedule.timezone" in refused.stderr
    cli("task", "add", "-", stdin="{not json", expect=2)
    assert cli.json("task", "list")["items"] == []
    cli("task", "list", "--next-before", "yesterday", expect=2)


def test_conflicts_and_unknown_ids_have_their_exit_codes(cli: Cli) -> None:
    cli("task", "add", "-", stdin=definition("once"))
    assert "name" in cli("task", "add", "-", stdin=definition("once"), expect=4).stderr
    cli("task", "show", "00000000-0000-4000-8000-000000000000", expect=3)
    cli("task", "pause", "not-a-uuid", expect=3)
    cli("dlq", "redrive", "12345", expect=3)


def test_tenants_do_not_see_each_other(cli: Cli) -> None:
    task_id = cli("task", "add", "-", "--tenant", "acme", stdin=definition("a")).stdout.strip()
    assert cli.json("task", "list", "--tenant", "other")["items"] == []
    cli("task", "show", task_id, "--tenant", "other", expect=3)
    cli("task", "delete", task_id, "--tenant", "other", expect=3)
    assert cli.json("task", "show", task_id, "--tenant", "acme")["name"] == "a"


SAID = "using tenant 'default' (set --tenant or TASKHUB_TENANT)"


def test_the_tenant_is_given_or_taken_from_the_environment_or_said(cli: Cli) -> None:
    # The quick tour: a key for acme, then the CLI with TASKHUB_TENANT=acme.
    cli("apikey", "create", "--tenant", "acme")
    cli.env["TASKHUB_TENANT"] = "acme"
    added = cli("task", "add", "-", stdin=definition("toured"))
    task_id = added.stdout.strip()
    assert "using tenant" not in added.stderr
    assert [t["id"] for t in cli.json("task", "list")["items"]] == [task_id]
    run = cli.json("task", "run", task_id)
    history = cli("executions", "--task", task_id, "--json")
    assert [e["id"] for e in json.loads(history.stdout)["items"]] == [run["id"]]
    assert "using tenant" not in history.stderr
    assert cli.json("task", "list", "--tenant", "other")["items"] == []  # --tenant wins

    # Neither given: the default tenant, said on standard error (stdout stays parseable).
    del cli.env["TASKHUB_TENANT"]
    for args in (("task", "list", "--json"), ("executions", "--json"), ("dlq", "list", "--json")):
        done = cli(*args)
        assert SAID in done.stderr.splitlines(), args
        assert json.loads(done.stdout)["items"] == []
    shown = cli("task", "show", task_id, expect=3)  # acme's task, not default's
    assert SAID in shown.stderr
    assert "using tenant" not in cli("task", "list", "--tenant", "acme").stderr
    cli.env["TASKHUB_TENANT"] = ""
    assert SAID in cli("task", "list").stderr.splitlines()


def test_unsaved_schedule_preview_shows_the_dst_rule(cli: Cli) -> None:
    # 02:30 on the day New York springs forward (2027-03-14) does not exist: 03:00 EDT.
    schedule = '{"cron": "30 2 14 3 *", "timezone": "America/New_York"}'
    preview = cli.json("task", "preview", "--schedule", schedule, "--count", "1")
    assert preview["fire_times"] == [
        {
            "utc": "2027-03-14T07:00:00+00:00",
            "local": "2027-03-14T03:00:00-04:00",
            "skipped": False,
            "reason": None,
        }
    ]
    cli("task", "preview", "--schedule", '{"cron": "61 * * * *"}', expect=2)
    cli("task", "preview", expect=2)


def test_dead_letters_are_listed_and_redriven_with_their_key(cli: Cli) -> None:
    task_id = cli("task", "add", "-", stdin=definition("flaky", retry={"max_attempts": 1}))
    execution = cli.json("task", "run", task_id.stdout.strip())
    engine = engines.create_engine(cli.env["TASKHUB_DATABASE_URL"])
    make_dead(engine, execution["id"])
    engine.dispose()
    [dead] = cli.json("dlq", "list")["items"]
    assert (dead["id"], dead["status"], dead["error"]) == (execution["id"], "dead", "HTTP 503")
    [listed] = cli.json("task", "list", "--last-status", "dead")["items"]
    assert (listed["id"], listed["last_status"]) == (task_id.stdout.strip(), "dead")
    assert ["last_status:", "dead"] in lines(cli("task", "show", listed["id"]).stdout)
    redriven = cli.json("dlq", "redrive", str(dead["id"]))
    assert redriven["status"] == "queued"
    assert redriven["idempotency_key"] == execution["idempotency_key"]
    assert cli.json("dlq", "list")["items"] == []
    cli("dlq", "redrive", str(dead["id"]), expect=4)  # no longer dead
    assert datetime.fromisoformat(redriven["next_attempt_at"]) <= datetime.now(UTC) + timedelta(
        seconds=1
    )


def test_dead_letters_filtered_and_redriven_in_bulk(cli_on_each_backend: Cli) -> None:
    cli = cli_on_each_backend
    billing = cli(
        "task",
        "add",
        "-",
        stdin=definition(
            "billing",
            retry={"max_attempts": 1},
            tags={"team": "billing"},
            auto_pause_after_failures=2,
        ),
    ).stdout.strip()
    other = cli("task", "add", "-", stdin=definition("other", retry={"max_attempts": 1})).stdout
    foreign = cli(
        "task", "add", "-", "--tenant", "acme", stdin=definition("x", retry={"max_attempts": 1})
    ).stdout.strip()
    ran = [cli.json("task", "run", billing)["id"], cli.json("task", "run", billing)["id"]]
    ran.append(cli.json("task", "run", other.strip())["id"])
    ran.append(cli.json("task", "run", foreign, "--tenant", "acme")["id"])
    engine = engines.create_engine(cli.env["TASKHUB_DATABASE_URL"])
    for execution_id in ran:
        make_dead(engine, execution_id)
    engine.dispose()

    shown = cli("task", "show", billing).stdout
    assert "auto_pause" in shown and "auto-paused after 2 consecutive failures" in shown
    listed = cli("dlq", "list", "--tag", "team:billing").stdout
    assert "HTTP_STATUS" in listed and "HTTP 503" in listed
    assert (
        sorted(e["id"] for e in cli.json("dlq", "list", "--tag", "team:billing")["items"])
        == (ran[:2])
    )
    cli("dlq", "redrive", expect=2)  # neither an id nor a filter
    cli("dlq", "redrive", str(ran[0]), "--all", expect=2)
    cli("dlq", "redrive", "--tag", "no-colon", expect=2)
    cli("dlq", "redrive", "--task", foreign, expect=3)  # another tenant's
    assert cli.json("dlq", "redrive", "--tag", "team:billing") == {"redriven": 2}
    assert [e["id"] for e in cli.json("dlq", "list")["items"]] == [ran[2]]
    assert cli("dlq", "redrive", "--all").stdout.strip() == "1 dead letters redriven"
    assert cli.json("dlq", "list")["items"] == []
    assert [e["id"] for e in cli.json("dlq", "list", "--tenant", "acme")["items"]] == [ran[3]]
