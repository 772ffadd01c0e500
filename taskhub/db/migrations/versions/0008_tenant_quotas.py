"""tenant quotas: per-tenant limit overrides and the API's rate-limit windows

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskhub.db.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("max_tasks", sa.Integer(), nullable=True),
        sa.Column("min_interval_seconds", sa.Integer(), nullable=True),
        sa.Column("runs_per_minute", sa.Integer(), nullable=True),
        sa.Column("requests_per_second", sa.Integer(), nullable=True),
        sa.Column("updated_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_tenant_quotas")),
    )
    op.create_table(
        "tenant_rate_windows",
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kind", name=op.f("pk_tenant_rate_windows")),
    )


def downgrade() -> None:
    op.drop_table("tenant_rate_windows")
    op.drop_table("tenant_quotas")
