"""What every command group shares: the settings, one service call, the exit codes of a
refusal, the output (JSON or a table) and the ``--tenant``/``--json`` options."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from taskhub.core.errors import TaskhubError
from taskhub.core.sealing import SealingError
from taskhub.core.settings import Settings, SettingsError, load
from taskhub.service import database


def settings_or_exit() -> Settings:
    """The settings, read from the environment once per command (kept in the click
    context, which every nested command shares) and passed to every service call."""
    context = click.get_current_context(silent=True)
    if context is not None and _SETTINGS in context.meta:
        settings: Settings = context.meta[_SETTINGS]
        return settings
    try:
        settings = load()
    except SettingsError as error:
        raise click.UsageError(str(error)) from None
    if context is not None:
        context.meta[_SETTINGS] = settings
    return settings


_SETTINGS = "taskhub.settings"


class ServiceError(click.ClickException):
    """A refused request, printed as ``Error: <field>: <message>``.

    Exit codes scripts can rely on (README): 0 done, 1 any other failure, 2 bad input
    (the message names the field), 3 not found, 4 conflict.
    """

    exit_code = 1


class InvalidInput(ServiceError):
    exit_code = 2


class NotFoundError(ServiceError):
    exit_code = 3


class ConflictError(ServiceError):
    exit_code = 4


_ERRORS: dict[str, type[ServiceError]] = {
    "invalid": InvalidInput,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "quota_exceeded": ConflictError,
}


def service_error(error: TaskhubError) -> ServiceError:
    return _ERRORS.get(error.code, ServiceError)(str(error))


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one service function in one transaction, as the API does."""
    settings = settings_or_exit()
    try:
        with database.engine_for(settings.database_url).begin() as conn:
            return function(conn, *args, **kwargs)
    except TaskhubError as error:
        raise service_error(error) from None
    except SealingError as error:
        raise ServiceError(str(error)) from None


def call_on_engine(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a service function that opens its own transactions (a bulk redrive's batches)."""
    settings = settings_or_exit()
    try:
        return function(database.engine_for(settings.database_url), *args, **kwargs)
    except TaskhubError as error:
        raise service_error(error) from None


def request_tick() -> None:
    from taskhub.worker.celery_app import request_tick  # the broker only when needed

    request_tick()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def show_queued(execution: dict[str, Any], as_json: bool) -> None:
    """An execution just queued (a run-now, a redrive): the tick that sends it is asked
    for at once, then the execution is shown."""
    request_tick()
    print_json(execution) if as_json else click.echo(f"execution {execution['id']} queued")


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def show_page(page: dict[str, Any], columns: list[str], as_json: bool) -> None:
    if as_json:
        print_json(page)
        return
    table(page["items"], columns)
    if page["next_cursor"]:
        click.echo(f"(more: --cursor {page['next_cursor']})", err=True)


DEFAULT_TENANT = "default"


def _tenant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """``--tenant``, else ``TASKHUB_TENANT``, else ``default``, said on standard error:
    an API key made for another tenant sees other tasks, and an empty list must not
    look like an empty tenant."""
    if value:
        return value
    click.echo(
        f"using tenant {DEFAULT_TENANT!r} (set --tenant or TASKHUB_TENANT)",
        err=True,
    )
    return DEFAULT_TENANT


tenant_option = click.option(
    "--tenant",
    envvar="TASKHUB_TENANT",
    callback=_tenant,
    help=f"The tenant whose tasks these are; else TASKHUB_TENANT, else {DEFAULT_TENANT!r}.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
