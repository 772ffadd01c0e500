"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import taskhub.db.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=100), server_default="default", nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("schedule_kind", sa.String(length=16), nullable=False),
        sa.Column("cron_expression", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("run_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("start_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("max_executions", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=10), server_default="POST", nullable=False),
        sa.Column(
            "headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), server_default="30", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("backoff_seconds", sa.Float(), server_default="10", nullable=False),
        sa.Column("max_backoff_seconds", sa.Float(), server_default="600", nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_finished", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "next_execution_time", taskhub.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_execution_time", taskhub.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("occurrence_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("execution_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "schedule_kind IN ('cron', 'interval', 'at')",
            name=op.f("ck_scheduled_tasks_schedule_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_tasks")),
        sa.UniqueConstraint("tenant", "name", name=op.f("uq_scheduled_tasks_tenant_name")),
    )
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scheduled_tasks_due",
            ["next_execution_time", "id"],
            unique=False,
            postgresql_where=sa.text("is_active AND NOT is_finished"),
            sqlite_where=sa.text("is_active AND NOT is_finished"),
        )

    op.create_table(
        "executions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_for", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_dispatch_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dispatch_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("started_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'dead')",
            name=op.f("ck_executions_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["scheduled_tasks.id"],
            name=op.f("fk_executions_task_id_scheduled_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint(
            "task_id", "scheduled_for", name=op.f("uq_executions_task_id_scheduled_for")
        ),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_executions_dispatch",
            ["next_dispatch_at"],
            unique=False,
            postgresql_where=sa.text("next_dispatch_at IS NOT NULL"),
            sqlite_where=sa.text("next_dispatch_at IS NOT NULL"),
        )
        batch_op.create_index("ix_executions_task_id_id", ["task_id", "id"], unique=False)

    op.create_table(
        "attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "execution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_attempts_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("execution_id", "number", name=op.f("uq_attempts_execution_id_number")),
    )


def downgrade() -> None:
    op.drop_table("attempts")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_task_id_id")
        batch_op.drop_index(
            "ix_executions_dispatch",
            postgresql_where=sa.text("next_dispatch_at IS NOT NULL"),
            sqlite_where=sa.text("next_dispatch_at IS NOT NULL"),
        )

    op.drop_table("executions")
    with op.batch_alter_table("scheduled_tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_scheduled_tasks_due",
            postgresql_where=sa.text("is_active AND NOT is_finished"),
            sqlite_where=sa.text("is_active AND NOT is_finished"),
        )

    op.drop_table("scheduled_tasks")
