"""``taskhub calendar``: exclusion calendars, dates on which the tasks naming them (in
their ``exclude_calendars``) do not fire."""

from __future__ import annotations

from typing import Any

import click

from taskhub.cli.common import call, json_option, print_json, table, tenant_option
from taskhub.core.clock import utcnow
from taskhub.service import exclusions

COLUMNS = ["name", "timezone", "dates", "updated_at"]


def _show(calendar: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(calendar)
        return
    click.echo(f"{'name:':<10}{calendar['name']}")
    click.echo(f"{'timezone:':<10}{calendar['timezone']}")
    click.echo(f"{'dates:':<10}{', '.join(calendar['dates']) or '-'}")


def _dates(values: tuple[str, ...]) -> list[str]:
    """``--date`` given repeatedly, or as comma-separated lists."""
    return [d.strip() for value in values for d in value.split(",") if d.strip()]


_date_option = click.option(
    "--date",
    "dates",
    multiple=True,
    help="YYYY-MM-DD; repeat, or separate with commas.",
)


@click.group("calendar")
def calendar_group() -> None:
    """Exclusion calendars: a task's exclude_calendars skips every occurrence whose date,
    in the calendar's time zone, is one of its dates."""


@calendar_group.command("create")
@click.argument("name")
@click.option("--timezone", required=True, help="An IANA time zone, e.g. Asia/Taipei.")
@_date_option
@tenant_option
@json_option
def calendar_create(
    name: str, timezone: str, dates: tuple[str, ...], tenant: str, as_json: bool
) -> None:
    """Create the calendar NAME."""
    data = {"name": name, "timezone": timezone, "dates": _dates(dates)}
    _show(call(exclusions.create_calendar, tenant, data, utcnow()), as_json)


@calendar_group.command("list")
@tenant_option
@json_option
def calendar_list(tenant: str, as_json: bool) -> None:
    """The tenant's calendars, by name."""
    page = call(exclusions.list_calendars, tenant)
    if as_json:
        print_json(page)
        return
    table(
        [{**c, "dates": len(c["dates"])} for c in page["items"]],
        COLUMNS,
    )


@calendar_group.command("show")
@click.argument("name")
@tenant_option
@json_option
def calendar_show(name: str, tenant: str, as_json: bool) -> None:
    """One calendar, with its dates."""
    _show(call(exclusions.get_calendar, tenant, name), as_json)


@calendar_group.command("update")
@click.argument("name")
@click.option("--timezone", help="A new IANA time zone.")
@_date_option
@click.option("--clear-dates", is_flag=True, help="Remove every date.")
@tenant_option
@json_option
def calendar_update(
    name: str,
    timezone: str | None,
    dates: tuple[str, ...],
    clear_dates: bool,
    tenant: str,
    as_json: bool,
) -> None:
    """Change a calendar's time zone, or replace its dates (--date, or --clear-dates);
    the next runs of the tasks naming it are recomputed."""
    data: dict[str, Any] = {}
    if timezone is not None:
        data["timezone"] = timezone
    if dates or clear_dates:
        data["dates"] = _dates(dates)
    if not data:
        raise click.UsageError("give --timezone, --date or --clear-dates")
    _show(call(exclusions.update_calendar, tenant, name, data, utcnow()), as_json)


@calendar_group.command("delete")
@click.argument("name")
@tenant_option
def calendar_delete(name: str, tenant: str) -> None:
    """Delete a calendar (refused while a task names it)."""
    call(exclusions.delete_calendar, tenant, name)
    click.echo(f"deleted {name}")
