"""``taskhub channel`` and ``taskhub notifications``: the real command in a subprocess,
over SQLite, as a script would drive it, sending to a real target and mail server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.smtp import running_smtp
from tests.support.target import Target


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.env["TASKHUB_ALLOW_PRIVATE_TARGETS"] = "1"
    cli("db", "upgrade")
    return cli


def test_channels_from_the_command_line(cli: Cli, target: Target) -> None:
    made = cli.json(
        "channel", "create", "ops", "--kind", "webhook", "--url", target.url("/ok"),
        "--event", "dead_letter,late",
    )  # fmt: skip
    assert (made["kind"], made["events"]) == ("webhook", ["dead_letter", "late"])
    listed = cli("channel", "list").stdout.split()
    assert listed[:5] == ["ID", "NAME", "KIND", "EVENTS", "LAST_MESSAGE_AT"] and "ops" in listed
    assert "url:" in cli("channel", "show", "ops").stdout
    changed = cli.json("channel", "update", made["id"], "--event", "recovered")
    assert changed["events"] == ["recovered"]
    assert "notification" in cli("channel", "test", "ops").stdout
    [received] = target.snapshot()
    assert json.loads(received.body)["channel"] == "ops"
    [sent] = cli.json("notifications")["items"]
    assert (sent["status"], sent["test"]) == ("sent", True)
    assert "sent" in cli("notifications", "--channel", "ops").stdout

    refused = cli("channel", "create", "x", "--kind", "webhook", expect=2)
    assert "url" in refused.stderr
    refused = cli(
        "channel", "create", "y", "--kind", "webhook", "--url", "ftp://e.example/", expect=2
    )
    assert "url" in refused.stderr
    assert "to" in cli("channel", "update", "ops", "--kind", "email", expect=2).stderr
    cli("channel", "delete", "ops")
    assert cli.json("channel", "list")["items"] == []
    assert "channel" in cli("channel", "show", "ops", expect=3).stderr


def test_a_test_email_from_the_command_line(cli: Cli, target: Target) -> None:
    with running_smtp() as inbox:
        cli.env["TASKHUB_SMTP_URL"] = inbox.url
        cli("channel", "create", "mail", "--kind", "email", "--to", "ops@example.com")
        cli("channel", "test", "mail")
        assert [m.recipients for m in inbox.snapshot()] == [["ops@example.com"]]
    # The server gone: the test says so, and fails.
    failed = cli("channel", "test", "mail", expect=1)
    assert "failed" in failed.stdout and "SMTP" in failed.stdout


def test_an_email_channel_needs_a_mail_server(cli: Cli) -> None:
    refused = cli("channel", "create", "m", "--kind", "email", "--to", "a@example.com", expect=2)
    assert "TASKHUB_SMTP_URL" in refused.stderr
