"""The SQL of notifications: a tenant's channels, the outbox of events waiting for a
message, and the messages (``notifications``) with their delivery status.

Every step of sending is a conditional update, so two notifiers never both take one
window of a channel, nor both send one message: a channel's window is taken by moving
its ``last_message_at`` from the value read, a message's try by moving its
``next_attempt_at`` (the lease) from the value read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.notifications import PendingEvent, RaisedEvent
from taskhub.core.statuses import NotificationStatus
from taskhub.db.dialects import as_uuid
from taskhub.db.models import (
    notification_channels,
    notification_events,
    notifications,
    scheduled_tasks,
)

C = notification_channels.c
E = notification_events.c
N = notifications.c
T = scheduled_tasks.c

# --- channels -------------------------------------------------------------------------


def insert_channel(conn: Connection, values: Mapping[str, Any]) -> uuid.UUID:
    channel_id = uuid.uuid4()
    conn.execute(sa.insert(notification_channels).values(id=channel_id, **values))
    return channel_id


def get_channel(
    conn: Connection, tenant: str | None, channel_id: uuid.UUID, lock: bool = False
) -> RowMapping | None:
    """The channel (``tenant`` None: whoever's)."""
    query = sa.select(notification_channels).where(C.id == channel_id)
    if tenant is not None:
        query = query.where(C.tenant == tenant)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def channel_named(conn: Connection, tenant: str, name: str) -> RowMapping | None:
    query = sa.select(notification_channels).where(C.tenant == tenant, C.name == name)
    return conn.execute(query).mappings().first()


def list_channels(conn: Connection, tenant: str) -> Sequence[RowMapping]:
    query = sa.select(notification_channels).where(C.tenant == tenant).order_by(C.name)
    return conn.execute(query).mappings().all()


def count_channels(conn: Connection, tenant: str) -> int:
    query = sa.select(sa.func.count()).select_from(notification_channels)
    return int(conn.execute(query.where(C.tenant == tenant)).scalar_one())


def update_channel(conn: Connection, channel_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    conn.execute(sa.update(notification_channels).where(C.id == channel_id).values(**values))


def delete_channel(conn: Connection, channel_id: uuid.UUID) -> None:
    """The channel and its events not yet sent (its messages stay, as history)."""
    conn.execute(sa.delete(notification_events).where(E.channel_id == channel_id))
    conn.execute(sa.delete(notification_channels).where(C.id == channel_id))


def channels_listening(conn: Connection, tenants: Iterable[str]) -> dict[str, list[RowMapping]]:
    """Each tenant's channels (id and events), for the tenants that have any."""
    names = sorted(set(tenants))
    if not names:
        return {}
    rows = conn.execute(
        sa.select(C.id, C.tenant, C.events).where(C.tenant.in_(names)).order_by(C.id)
    ).mappings()
    found: dict[str, list[RowMapping]] = {}
    for row in rows:
        found.setdefault(row["tenant"], []).append(row)
    return found


# --- the outbox -----------------------------------------------------------------------


def record_events(
    conn: Connection, tenant_events: Iterable[tuple[str, RaisedEvent]], now: datetime
) -> int:
    """Add each ``(tenant, event)`` to the outbox of every channel of its tenant that is
    told about its kind, in one insert; nothing (and no query) without events. Returns
    the rows added."""
    pairs = list(tenant_events)
    if not pairs:
        return 0
    listening = channels_listening(conn, (tenant for tenant, _ in pairs))
    if not listening:
        return 0
    rows: list[dict[str, Any]] = []
    for tenant, event in pairs:
        for channel in listening.get(tenant, ()):
            if event.kind.value in channel["events"]:
                rows.append(
                    {
                        "channel_id": channel["id"],
                        "kind": event.kind.value,
                        "task_id": as_uuid(event.task_id),
                        "scheduled_for": event.scheduled_for,
                        "detail": None if event.detail is None else event.detail[:500],
                        "created_at": now,
                    }
                )
    if rows:
        conn.execute(sa.insert(notification_events), rows)
    return len(rows)


def pending_by_channel(conn: Connection) -> Sequence[RowMapping]:
    """Each channel with events waiting (every row of the outbox waits): its id, tenant,
    name, kind and ``last_message_at``, and when its oldest event came (``oldest``)."""
    waiting = (
        sa.select(E.channel_id, sa.func.min(E.created_at).label("oldest"))
        .group_by(E.channel_id)
        .subquery()
    )
    return (
        conn.execute(
            sa.select(C.id, C.tenant, C.name, C.kind, C.last_message_at, waiting.c.oldest)
            .select_from(waiting.join(notification_channels, C.id == waiting.c.channel_id))
            .order_by(waiting.c.oldest)
        )
        .mappings()
        .all()
    )


def take_window(
    conn: Connection, channel_id: uuid.UUID, last_message_at: datetime | None, now: datetime
) -> bool:
    """Take the channel's next message (its window) if no one took it since
    ``last_message_at`` was read."""
    condition = (
        C.last_message_at.is_(None)
        if last_message_at is None
        else C.last_message_at == last_message_at
    )
    result = conn.execute(
        sa.update(notification_channels)
        .where(C.id == channel_id, condition)
        .values(last_message_at=now)
    )
    return result.rowcount == 1


def pending_events(conn: Connection, channel_id: uuid.UUID, limit: int) -> list[PendingEvent]:
    """The channel's waiting events, oldest first, each with its task's name (None if
    the task is gone)."""
    rows = conn.execute(
        sa.select(E.id, E.kind, E.task_id, T.name, E.scheduled_for, E.detail, E.created_at)
        .select_from(notification_events.outerjoin(scheduled_tasks, T.id == E.task_id))
        .where(E.channel_id == channel_id)
        .order_by(E.id)
        .limit(limit)
    )
    return [
        PendingEvent(
            id=row.id,
            kind=row.kind,
            task_id=str(row.task_id),
            task_name=row.name,
            scheduled_for=row.scheduled_for,
            detail=row.detail,
            created_at=row.created_at,
        )
        for row in rows
    ]


def take_events(conn: Connection, event_ids: Sequence[int]) -> None:
    """The events a message took leave the outbox (in slices: a bounded IN list)."""
    for start in range(0, len(event_ids), 1000):
        conn.execute(
            sa.delete(notification_events).where(E.id.in_(event_ids[start : start + 1000]))
        )


# --- messages -------------------------------------------------------------------------


def insert_notification(conn: Connection, values: Mapping[str, Any]) -> int:
    result = conn.execute(sa.insert(notifications).values(**values).returning(N.id))
    return int(result.scalar_one())


def set_payload(conn: Connection, notification_id: int, payload: Mapping[str, Any]) -> None:
    conn.execute(sa.update(notifications).where(N.id == notification_id).values(payload=payload))


def due_notifications(conn: Connection, now: datetime, limit: int) -> Sequence[RowMapping]:
    """Messages to (re)send: pending, and their ``next_attempt_at`` (a retry's time, or a
    dead sender's lease) passed."""
    return (
        conn.execute(
            sa.select(notifications)
            .where(
                N.status == NotificationStatus.PENDING.value,
                N.next_attempt_at <= now,
            )
            .order_by(N.next_attempt_at, N.id)
            .limit(limit)
        )
        .mappings()
        .all()
    )


def lease_notification(
    conn: Connection, notification_id: int, read_next: datetime, lease_until: datetime
) -> bool:
    """Take one try of the message, unless another sender took it since it was read."""
    result = conn.execute(
        sa.update(notifications)
        .where(
            N.id == notification_id,
            N.status == NotificationStatus.PENDING.value,
            N.next_attempt_at == read_next,
        )
        .values(next_attempt_at=lease_until, attempts=N.attempts + 1)
    )
    return result.rowcount == 1


def finish_try(
    conn: Connection,
    notification_id: int,
    lease_until: datetime,
    values: Mapping[str, Any],
) -> bool:
    """Record a try's end, if this sender still holds its lease."""
    result = conn.execute(
        sa.update(notifications)
        .where(
            N.id == notification_id,
            N.status == NotificationStatus.PENDING.value,
            N.next_attempt_at == lease_until,
        )
        .values(**values)
    )
    return result.rowcount == 1


def get_notification(conn: Connection, tenant: str, notification_id: int) -> RowMapping | None:
    query = sa.select(notifications).where(N.tenant == tenant, N.id == notification_id)
    return conn.execute(query).mappings().first()


def list_notifications(
    conn: Connection,
    tenant: str,
    limit: int,
    before_id: int | None = None,
    channel_id: uuid.UUID | None = None,
    status: str | None = None,
    channel_name: str | None = None,
) -> Sequence[RowMapping]:
    """The tenant's messages, newest first (keyset-paged on ``id``)."""
    query = sa.select(notifications).where(N.tenant == tenant)
    if before_id is not None:
        query = query.where(N.id < before_id)
    if channel_id is not None:
        query = query.where(N.channel_id == channel_id)
    if status is not None:
        query = query.where(N.status == status)
    if channel_name is not None:
        query = query.where(N.channel_name == channel_name)
    return conn.execute(query.order_by(N.id.desc()).limit(limit)).mappings().all()
