"""Notification channels and the notifications sent: the service functions the API and
the CLI are thin layers over.

A channel is named by its id or its name (unique per tenant). A Slack channel's URL is
the credential of its incoming webhook: it is stored sealed and shown masked. A test
message is sent at once (one try) and recorded like any other notification.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Connection, Engine, RowMapping

from taskhub.core import limits, notifications
from taskhub.core.errors import Conflict, NotFound, QuotaExceeded, ValidationError
from taskhub.core.notifications import CHANNEL_FIELDS, ChannelDefinition, ChannelKind
from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings
from taskhub.core.statuses import NotificationStatus
from taskhub.db import notification_queries
from taskhub.engine import notifier

DEFAULT_PAGE = 50
MAX_PAGE = 500


def masked_url(url: str) -> str:
    """A Slack webhook URL as shown: its scheme and host, the secret path hidden."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/\u2026"


def channel_view(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    last = row["last_message_at"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "kind": row["kind"],
        "url": row["url"],
        "to": list(row["recipients"] or []),
        "events": list(row["events"]),
        "last_message_at": None if last is None else last.isoformat(),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _columns(definition: ChannelDefinition, settings: Settings) -> dict[str, Any]:
    slack = definition.kind is ChannelKind.SLACK
    url = definition.url
    return {
        "name": definition.name,
        "kind": definition.kind.value,
        "url": masked_url(url) if slack and url is not None else url,
        "sealed_url": sealer_for(settings).seal(url) if slack and url is not None else None,
        "recipients": list(definition.to) or None,
        "events": [e.value for e in definition.events],
    }


def _parse(data: Any, settings: Settings) -> ChannelDefinition:
    return notifications.parse_channel(
        data, settings.address_policy, smtp_configured=settings.smtp_url is not None
    )


def find_channel(
    conn: Connection, tenant: str, ref: str | uuid.UUID, lock: bool = False
) -> RowMapping:
    """The tenant's channel by id or by name (404 if neither)."""
    row = None
    try:
        channel_id = ref if isinstance(ref, uuid.UUID) else uuid.UUID(str(ref))
    except ValueError:
        channel_id = None
    if channel_id is not None:
        row = notification_queries.get_channel(conn, tenant, channel_id, lock=lock)
    if row is None and not isinstance(ref, uuid.UUID):
        found = notification_queries.channel_named(conn, tenant, str(ref))
        if found is not None and lock:
            found = notification_queries.get_channel(conn, tenant, found["id"], lock=True)
        row = found
    if row is None:
        raise NotFound("no such notification channel")
    return row


def create_channel(
    conn: Connection, tenant: str, data: Any, now: datetime, settings: Settings
) -> dict[str, Any]:
    definition = _parse(data, settings)
    if notification_queries.channel_named(conn, tenant, definition.name) is not None:
        raise Conflict("a notification channel with this name exists", "name")
    if notification_queries.count_channels(conn, tenant) >= limits.MAX_CHANNELS_PER_TENANT:
        raise QuotaExceeded(
            f"the tenant has {limits.MAX_CHANNELS_PER_TENANT} notification channels, the most "
            "it may hold; delete one first"
        )
    channel_id = notification_queries.insert_channel(
        conn,
        {**_columns(definition, settings), "tenant": tenant, "created_at": now, "updated_at": now},
    )
    return get_channel(conn, tenant, channel_id)


def get_channel(conn: Connection, tenant: str, ref: str | uuid.UUID) -> dict[str, Any]:
    return channel_view(find_channel(conn, tenant, ref))


def list_channels(conn: Connection, tenant: str) -> dict[str, Any]:
    return {"items": [channel_view(r) for r in notification_queries.list_channels(conn, tenant)]}


def update_channel(
    conn: Connection, tenant: str, ref: str, data: Any, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Change any of a channel's fields; the result is checked whole, as at creation (a
    channel that changes kind gives the new kind's ``url`` or ``to``)."""
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key not in CHANNEL_FIELDS:
            raise ValidationError(str(key), "unknown field")
    row = find_channel(conn, tenant, ref, lock=True)
    current: dict[str, Any] = {
        "name": row["name"],
        "kind": row["kind"],
        "events": list(row["events"]),
    }
    if "kind" not in data or data["kind"] == row["kind"]:
        if row["kind"] == ChannelKind.EMAIL.value:
            current["to"] = list(row["recipients"] or [])
        else:
            current["url"] = notifier.channel_url(row, settings)
    definition = _parse({**current, **data}, settings)
    if definition.name != row["name"]:
        other = notification_queries.channel_named(conn, tenant, definition.name)
        if other is not None:
            raise Conflict("a notification channel with this name exists", "name")
    notification_queries.update_channel(
        conn, row["id"], {**_columns(definition, settings), "updated_at": now}
    )
    return get_channel(conn, tenant, row["id"])


def delete_channel(conn: Connection, tenant: str, ref: str) -> None:
    """The channel and its events not yet sent; what it was sent stays listed."""
    row = find_channel(conn, tenant, ref, lock=True)
    notification_queries.delete_channel(conn, row["id"])


# --- notifications --------------------------------------------------------------------


def notification_view(
    row: RowMapping | Mapping[str, Any], with_payload: bool = False
) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    pending = row["status"] == NotificationStatus.PENDING.value
    view: dict[str, Any] = {
        "id": row["id"],
        "channel_id": str(row["channel_id"]),
        "channel": row["channel_name"],
        "kind": row["channel_kind"],
        "test": row["is_test"],
        "status": row["status"],
        "attempts": row["attempts"],
        "error": row["error"],
        "counts": dict(row["counts"]),
        "task_count": len(row["task_ids"]),
        "task_ids": list(row["task_ids"]),
        "created_at": iso(row["created_at"]),
        "sent_at": iso(row["sent_at"]),
        "next_attempt_at": iso(row["next_attempt_at"]) if pending else None,
    }
    if with_payload:
        view["payload"] = row["payload"]
    return view


def list_notifications(
    conn: Connection,
    tenant: str,
    *,
    channel: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The tenant's notifications, newest first, ``limit`` a page; ``next_cursor``
    continues (null on the last page)."""
    size = DEFAULT_PAGE if limit is None else limit
    if not 1 <= size <= MAX_PAGE:
        raise ValidationError("limit", f"must be between 1 and {MAX_PAGE}")
    statuses = [s.value for s in NotificationStatus]
    if status is not None and status not in statuses:
        raise ValidationError("status", f"must be one of {', '.join(statuses)}")
    before: int | None = None
    if cursor is not None:
        if not cursor.isdigit():
            raise ValidationError("cursor", "is not a cursor this list gave")
        before = int(cursor)
    # By id or by the name the channel had: a deleted channel's messages stay listed.
    channel_id: uuid.UUID | None = None
    channel_name: str | None = None
    if channel is not None:
        try:
            channel_id = uuid.UUID(channel)
        except ValueError:
            channel_name = channel
    rows = notification_queries.list_notifications(
        conn, tenant, size + 1, before, channel_id, status, channel_name
    )
    items = [notification_view(r) for r in rows[:size]]
    more = len(rows) > size
    return {"items": items, "next_cursor": str(items[-1]["id"]) if more and items else None}


def get_notification(conn: Connection, tenant: str, notification_id: int) -> dict[str, Any]:
    row = notification_queries.get_notification(conn, tenant, notification_id)
    if row is None:
        raise NotFound("no such notification")
    return notification_view(row, with_payload=True)


def send_test(
    engine: Engine, tenant: str, ref: str, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Send a test message to the channel now (one try, no retry) and record it; the
    answer is the notification, ``sent`` or ``failed`` with its error."""
    lease_until = now + timedelta(seconds=notifications.LEASE_S)
    with engine.begin() as conn:
        channel = find_channel(conn, tenant, ref)
        notification_id = notification_queries.insert_notification(
            conn,
            {
                "tenant": tenant,
                "channel_id": channel["id"],
                "channel_name": channel["name"],
                "channel_kind": channel["kind"],
                "is_test": True,
                "status": NotificationStatus.PENDING.value,
                "attempts": 1,
                "next_attempt_at": lease_until,
                "counts": {},
                "task_ids": [],
                "payload": {},
                "created_at": now,
            },
        )
        document = notifications.trial_payload(notification_id, channel["name"], now)
        notification_queries.set_payload(conn, notification_id, document)
    delivery = notifier.deliver(engine, channel, notification_id, 1, document, settings)
    with engine.begin() as conn:
        notifier.record_try(conn, notification_id, lease_until, 1, delivery, now, final=True)
        return get_notification(conn, tenant, notification_id)
