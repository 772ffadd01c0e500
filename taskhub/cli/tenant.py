"""``taskhub tenant``: an operator's commands about one tenant (its quotas)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from taskhub.core.errors import TaskhubError
from taskhub.core.settings import SettingsError, load
from taskhub.service import database, quotas

F = TypeVar("F", bound=Callable[..., Any])


class Refused(click.ClickException):
    """A refused request, printed as ``Error: <field>: <message>``."""


class InvalidInput(Refused):
    """Bad input: exit 2, as every other command (README, "Commands")."""

    exit_code = 2


def _call(function: Any, *args: Any) -> Any:
    """One service call in one transaction, as the other commands make it."""
    try:
        settings = load()
    except SettingsError as error:
        raise click.UsageError(str(error)) from None
    try:
        with database.engine_for(settings.database_url).begin() as conn:
            return function(conn, *args, settings)
    except TaskhubError as error:
        raise (InvalidInput if error.code == "invalid" else Refused)(str(error)) from None


def _show(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(shown, indent=2, sort_keys=True))
        return
    click.echo(f"{'tenant:':<22}{shown['tenant']}")
    for name, limit in shown["limits"].items():
        value = limit["value"]
        off = " (no limit)" if value == 0 and quotas.BOUNDS[name][0] == 0 else ""
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def limits_show(tenant: str, as_json: bool) -> None:
    """The limits in force for TENANT, where each comes from, and its tasks held."""
    _show(_call(quotas.show, tenant), as_json)


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
@_limit_option("min_interval_seconds", "Shortest time between two fires of a schedule (1-86400)")
@_limit_option("runs_per_minute", "Run-now and redrive API calls per minute; 0: no limit")
@_limit_option("requests_per_second", "API requests per second; 0: no limit")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def limits_set(tenant: str, as_json: bool, **limits: str | None) -> None:
    """Give TENANT its own limits; the ones not named are kept. Stored tasks are never
    touched: a lower limit refuses only later creates and schedule changes."""
    changes = {name: value for name, value in limits.items() if value is not None}
    if not changes:
        raise click.UsageError(
            "name at least one limit: "
            + ", ".join(f"--{name.replace('_', '-')}" for name in quotas.LIMIT_NAMES)
        )
    now = datetime.now(UTC)
    _call(lambda conn, settings: quotas.set_limits(conn, tenant, changes, now, settings))
    _show(_call(quotas.show, tenant), as_json)
