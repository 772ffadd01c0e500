"""``taskhub channel``: notification channels (webhook, email, Slack) that hear of the
tenant's dead letters, auto-pauses, late runs and recoveries, grouped; and ``taskhub
notifications``, what was sent to them."""

from __future__ import annotations

from typing import Any

import click

from taskhub.cli.common import (
    call,
    call_on_engine,
    json_option,
    print_json,
    settings_or_exit,
    show_page,
    table,
    tenant_option,
)
from taskhub.core.clock import utcnow
from taskhub.core.notifications import ChannelKind, EventKind
from taskhub.core.statuses import NotificationStatus
from taskhub.service import notifications

COLUMNS = ["id", "name", "kind", "events", "last_message_at"]
NOTIFICATION_COLUMNS = ["id", "channel", "status", "attempts", "task_count", "counts", "created_at"]
_WIDTH = 17


def _show(channel: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(channel)
        return
    for key in ("id", "name", "kind", "url", "to", "events", "last_message_at"):
        value = channel[key]
        if key in ("url", "to") and not value:
            continue
        shown = ", ".join(value) if isinstance(value, list) else "-" if value is None else value
        click.echo(f"{key + ':':<{_WIDTH}}{shown}")


def _split(values: tuple[str, ...]) -> list[str]:
    """An option given repeatedly, or as comma-separated lists."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


_kind_option = click.option("--kind", type=click.Choice([k.value for k in ChannelKind]))
_url_option = click.option("--url", help="The webhook's, or the Slack incoming webhook's, URL.")
_to_option = click.option(
    "--to", "to", multiple=True, help="An email channel's address; repeat, or use commas."
)
_event_option = click.option(
    "--event",
    "events",
    multiple=True,
    help=f"What it hears of: {', '.join(k.value for k in EventKind)}; repeat, or use commas "
    "(default: all).",
)


def _fields(
    kind: str | None, url: str | None, to: tuple[str, ...], events: tuple[str, ...]
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if kind is not None:
        data["kind"] = kind
    if url is not None:
        data["url"] = url
    if to:
        data["to"] = _split(to)
    if events:
        data["events"] = _split(events)
    return data


@click.group("channel")
def channel_group() -> None:
    """Notification channels: where grouped notifications of the tenant's tasks go (at
    most one message per channel a minute, naming every task it is about)."""


@channel_group.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in ChannelKind]), required=True)
@_url_option
@_to_option
@_event_option
@tenant_option
@json_option
def channel_create(
    name: str,
    kind: str,
    url: str | None,
    to: tuple[str, ...],
    events: tuple[str, ...],
    tenant: str,
    as_json: bool,
) -> None:
    """Create the channel NAME (webhook and slack take --url, email takes --to)."""
    data = {"name": name, **_fields(kind, url, to, events)}
    settings = settings_or_exit()
    _show(call(notifications.create_channel, tenant, data, utcnow(), settings), as_json)


@channel_group.command("list")
@tenant_option
@json_option
def channel_list(tenant: str, as_json: bool) -> None:
    """The tenant's channels, by name."""
    page = call(notifications.list_channels, tenant)
    if as_json:
        print_json(page)
        return
    table([{**c, "events": ",".join(c["events"])} for c in page["items"]], COLUMNS)


@channel_group.command("show")
@click.argument("channel")
@tenant_option
@json_option
def channel_show(channel: str, tenant: str, as_json: bool) -> None:
    """One channel (CHANNEL: its id or name)."""
    _show(call(notifications.get_channel, tenant, channel), as_json)


@channel_group.command("update")
@click.argument("channel")
@click.option("--name", help="A new name.")
@_kind_option
@_url_option
@_to_option
@_event_option
@tenant_option
@json_option
def channel_update(
    channel: str,
    name: str | None,
    kind: str | None,
    url: str | None,
    to: tuple[str, ...],
    events: tuple[str, ...],
    tenant: str,
    as_json: bool,
) -> None:
    """Change a channel; what results is checked whole, as at creation."""
    data = _fields(kind, url, to, events)
    if name is not None:
        data["name"] = name
    if not data:
        raise click.UsageError("give --name, --kind, --url, --to or --event")
    settings = settings_or_exit()
    _show(call(notifications.update_channel, tenant, channel, data, utcnow(), settings), as_json)


@channel_group.command("delete")
@click.argument("channel")
@tenant_option
def channel_delete(channel: str, tenant: str) -> None:
    """Delete a channel (its events not yet sent go with it; what it was sent stays)."""
    call(notifications.delete_channel, tenant, channel)
    click.echo(f"deleted {channel}")


@channel_group.command("test")
@click.argument("channel")
@tenant_option
@json_option
def channel_test(channel: str, tenant: str, as_json: bool) -> None:
    """Send a test message now and say how it went (exit 1 if it failed)."""
    settings = settings_or_exit()
    sent = call_on_engine(notifications.send_test, tenant, channel, utcnow(), settings)
    if as_json:
        print_json(sent)
    else:
        click.echo(f"notification {sent['id']}: {sent['status']}", nl=not sent["error"])
        if sent["error"]:
            click.echo(f" ({sent['error']})")
    if sent["status"] != NotificationStatus.SENT.value:
        raise SystemExit(1)


@click.command("notifications")
@click.option("--channel", help="Only those of this channel (id or name).")
@click.option("--status", type=click.Choice([s.value for s in NotificationStatus]))
@click.option("--limit", type=int)
@click.option("--cursor", help="Continue from a previous page.")
@tenant_option
@json_option
def notifications_list(
    channel: str | None,
    status: str | None,
    limit: int | None,
    cursor: str | None,
    tenant: str,
    as_json: bool,
) -> None:
    """The notifications sent, newest first, with their delivery status."""
    page = call(
        notifications.list_notifications,
        tenant,
        channel=channel,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    if not as_json:
        page = {
            **page,
            "items": [
                {**n, "counts": ",".join(f"{k}:{v}" for k, v in n["counts"].items()) or "test"}
                for n in page["items"]
            ],
        }
    show_page(page, NOTIFICATION_COLUMNS, as_json)
