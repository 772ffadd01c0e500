"""Callbacks

A task gets ``callback`` (``{"url": ..., "on": [...]}``, a JSON object; NULL: none), and
``callback_deliveries`` holds each ended execution's callback, an outbox the write-back
fills and a sender empties. A downgrade drops both: no callback is posted any more.

Revision ID: 0017
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import taskhub.db.models

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json(*, none_as_null: bool = False) -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def upgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(sa.Column("callback", _json(none_as_null=True)))
    op.create_table(
        "callback_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("execution_id", BigId, nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", taskhub.db.models.UTCDateTime()),
        sa.Column("http_status", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("last_attempt_at", taskhub.db.models.UTCDateTime()),
        sa.Column("created_at", taskhub.db.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", taskhub.db.models.UTCDateTime()),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_callback_deliveries_callback_status_known"),
        ),
    )
    op.create_index(
        "ix_callback_deliveries_next_attempt_at",
        "callback_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.create_index("ix_callback_deliveries_execution_id", "callback_deliveries", ["execution_id"])
    op.create_index("ix_callback_deliveries_task_id", "callback_deliveries", ["task_id"])


def downgrade() -> None:
    op.drop_table("callback_deliveries")
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_column("callback")
