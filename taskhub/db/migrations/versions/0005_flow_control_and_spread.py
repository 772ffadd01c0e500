"""per-task flow control and jitter window

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(sa.Column("rate_limit_max_in_flight", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rate_limit_per_second", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("spread_seconds", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_column("spread_seconds")
        batch.drop_column("rate_limit_per_second")
        batch.drop_column("rate_limit_max_in_flight")
