"""Notifications: channels, the outbox of events, and the messages sent

``notification_channels`` holds each tenant's channels by name; ``notification_events``
the events waiting for a message (the outbox);
``notifications`` every message with its delivery status. A task gets
``max_lag_seconds``. A downgrade drops them all: nothing is notified any more.

Revision ID: 0018
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import taskhub.db.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json(*, none_as_null: bool = False) -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def upgrade() -> None:
    utc = taskhub.db.models.UTCDateTime
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text()),
        sa.Column("sealed_url", sa.Text()),
        sa.Column("recipients", _json(none_as_null=True)),
        sa.Column("events", _json(), nullable=False),
        sa.Column("last_message_at", utc()),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_for", utc()),
        sa.Column("detail", sa.Text()),
        sa.Column("created_at", utc(), nullable=False),
    )
    op.create_index(
        "ix_notification_events_channel_id_id", "notification_events", ["channel_id", "id"]
    )
    op.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("channel_name", sa.String(length=64), nullable=False),
        sa.Column("channel_kind", sa.String(length=16), nullable=False),
        sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", utc()),
        sa.Column("error", sa.Text()),
        sa.Column("counts", _json(), nullable=False),
        sa.Column("task_ids", _json(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("sent_at", utc()),
    )
    op.create_index("ix_notifications_tenant_id", "notifications", ["tenant", "id"])
    op.create_index(
        "ix_notifications_status_next_attempt_at", "notifications", ["status", "next_attempt_at"]
    )
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(sa.Column("max_lag_seconds", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_column("max_lag_seconds")
    op.drop_table("notifications")
    op.drop_table("notification_events")
    op.drop_table("notification_channels")
