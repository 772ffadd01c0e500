"""metric counters and worker heartbeats

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskhub.db.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("labels", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_metric_counters")),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("process", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("started_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rss_bytes", sa.BigInteger(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("db_pool_size", sa.Integer(), nullable=False),
        sa.Column("db_pool_checked_out", sa.Integer(), nullable=False),
        sa.Column("db_queries", sa.BigInteger(), nullable=False),
        sa.Column("db_query_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    op.drop_table("metric_counters")
