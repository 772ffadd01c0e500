"""misfire policy, auto-pause, sealed headers, signing secrets

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskhub.db.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("hint", sa.String(length=32), nullable=False),
        sa.Column("created_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_secrets")),
    )
    with op.batch_alter_table("signing_secrets", schema=None) as batch_op:
        batch_op.create_index("ix_signing_secrets_tenant", ["tenant"], unique=False)

    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_headers", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "misfire_policy", sa.String(length=16), server_default="fire_once", nullable=False
            )
        )
        batch_op.add_column(sa.Column("auto_pause_after_failures", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paused_by", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("paused_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_check_constraint(
            "misfire_policy_known", "misfire_policy IN ('fire_once', 'skip', 'fire_each')"
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_scheduled_tasks_misfire_policy_known"), type_="check")
        batch_op.drop_column("paused_at")
        batch_op.drop_column("paused_reason")
        batch_op.drop_column("paused_by")
        batch_op.drop_column("auto_pause_after_failures")
        batch_op.drop_column("misfire_policy")
        batch_op.drop_column("sealed_headers")

    with op.batch_alter_table("signing_secrets", schema=None) as batch_op:
        batch_op.drop_index("ix_signing_secrets_tenant")

    op.drop_table("signing_secrets")
