"""The CLI reads its settings once per command, and again for the next command."""

from __future__ import annotations

import click
from click.testing import CliRunner

from taskhub.cli.common import settings_or_exit
from taskhub.core.settings import Settings


def test_a_command_reads_its_settings_once() -> None:
    seen: list[Settings] = []

    @click.group()
    def outer() -> None:
        seen.append(settings_or_exit())

    @outer.command()
    def inner() -> None:
        seen.extend([settings_or_exit(), settings_or_exit()])

    first = CliRunner().invoke(outer, ["inner"], env={"TASKHUB_TICK_SECONDS": "5"})
    assert first.exit_code == 0, first.output
    assert seen[0] is seen[1] is seen[2] and seen[0].tick_seconds == 5
    second = CliRunner().invoke(outer, ["inner"], env={"TASKHUB_TICK_SECONDS": "7"})
    assert second.exit_code == 0, second.output
    assert seen[3].tick_seconds == 7


def test_an_unusable_setting_is_a_usage_error_naming_it() -> None:
    @click.command()
    def probe() -> None:
        settings_or_exit()

    result = CliRunner().invoke(probe, env={"TASKHUB_TRIGGER_CONCURRENCY": "none"})
    assert result.exit_code == 2
    assert "TASKHUB_TRIGGER_CONCURRENCY must be an integer" in result.output
