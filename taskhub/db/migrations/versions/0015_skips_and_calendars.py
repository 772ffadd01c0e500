"""Skipped occurrences and exclusion calendars

``calendars`` holds each tenant's exclusion calendars by name; ``occurrence_skips`` the
occurrences skipped one by one. A task gets ``exclude_calendars`` (the names, a JSON
list; NULL: none) and ``has_skips`` (so a claim reads the skips of only the tasks that
have some). A downgrade drops them all: the tasks fire on every occurrence again.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import taskhub.db.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json(*, none_as_null: bool = False) -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("dates", _json(), nullable=False),
        sa.Column("created_at", taskhub.db.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", taskhub.db.models.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_table(
        "occurrence_skips",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_for", taskhub.db.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", taskhub.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "scheduled_for"),
    )
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(sa.Column("exclude_calendars", _json(none_as_null=True)))
        batch.add_column(
            sa.Column("has_skips", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_column("has_skips")
        batch.drop_column("exclude_calendars")
    op.drop_table("occurrence_skips")
    op.drop_table("calendars")
