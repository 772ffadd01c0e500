"""``taskhub tenant``: an operator's commands about one tenant (its quotas)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from taskhub.cli.common import call, json_option, print_json, settings_or_exit
from taskhub.core.clock import utcnow
from taskhub.core.settings import QUOTA_BOUNDS
from taskhub.service import quotas

F = TypeVar("F", bound=Callable[..., Any])


def _show(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(shown)
        return
    click.echo(f"{'tenant:':<22}{shown['tenant']}")
    for name, limit in shown["limits"].items():
        value = limit["value"]
        off = " (no limit)" if value == 0 and QUOTA_BOUNDS[name][0] == 0 else ""
        source = "its own" if limit["source"] == "tenant" else "the default"
        click.echo(f"{name + ':':<22}{value}{off}, {source}")
    click.echo(f"{'tasks held:':<22}{shown['tasks_held']}")


@click.group("tenant")
def tenant_group() -> None:
    """Tenants: their quotas."""


@tenant_group.group("limits")
def limits_group() -> None:
    """A tenant's quotas: the TASKHUB_TENANT_* settings, unless it has its own."""


@limits_group.command("show")
@click.argument("tenant")
@json_option
def limits_show(tenant: str, as_json: bool) -> None:
    """The limits in force for TENANT, where each comes from, and its tasks held."""
    _show(call(quotas.show, tenant, settings_or_exit()), as_json)


def _limit_option(name: str, help_text: str) -> Callable[[F], F]:
    return click.option(
        f"--{name.replace('_', '-')}",
        name,
        metavar="N|default",
        help=f"{help_text} ('default': the setting's again).",
    )


@limits_group.command("set")
@click.argument("tenant")
@_limit_option("max_tasks", "Tasks the tenant may hold")
@_limit_option(
    "min_interval_seconds",
    "Shortest time between two fires of a schedule ({}-{})".format(
        *QUOTA_BOUNDS["min_interval_seconds"]
    ),
)
@_limit_option("runs_per_minute", "Run-now and redrive API calls per minute; 0: no limit")
@_limit_option("requests_per_second", "API requests per second; 0: no limit")
@json_option
def limits_set(tenant: str, as_json: bool, **limits: str | None) -> None:
    """Give TENANT its own limits; the ones not named are kept. Stored tasks are never
    touched: a lower limit refuses only later creates and schedule changes."""
    changes = {name: value for name, value in limits.items() if value is not None}
    if not changes:
        raise click.UsageError(
            "name at least one limit: "
            + ", ".join(f"--{name.replace('_', '-')}" for name in quotas.LIMIT_NAMES)
        )
    settings = settings_or_exit()
    call(quotas.set_limits, tenant, changes, utcnow(), settings)
    _show(call(quotas.show, tenant, settings), as_json)
