"""Celery targets: a task's target is an HTTP call or a Celery task to send

``scheduled_tasks.celery`` holds a Celery target (the Celery task's name, arguments,
queue, broker name, whether to track its result, its expiry), and ``url`` is NULL for
such a task: exactly one of the two is set, which a check constraint keeps.
``executions.result_due_by`` is when a tracked Celery task's result is due; the
executions that wait for one are found through a partial index of it.

On SQLite, making ``url`` nullable copies the table (batch mode); the constraints it
holds are copied with it. A downgrade refuses while a Celery task exists: its row has
no URL to keep.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import taskhub.db.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_TARGET_KIND = "(url IS NULL) <> (celery IS NULL)"
RESULT_DUE = "result_due_by IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(
            sa.Column(
                "celery",
                sa.JSON(none_as_null=True).with_variant(
                    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
                ),
                nullable=True,
            )
        )
        batch.alter_column("url", existing_type=sa.Text(), nullable=True)
        batch.create_check_constraint("one_target_kind", ONE_TARGET_KIND)
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column("result_due_by", taskhub.db.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index(
            "ix_executions_result_due_by",
            ["result_due_by"],
            unique=False,
            postgresql_where=sa.text(RESULT_DUE),
            sqlite_where=sa.text(RESULT_DUE),
        )


def downgrade() -> None:
    celery_tasks = op.get_bind().execute(
        sa.text("SELECT count(*) FROM scheduled_tasks WHERE celery IS NOT NULL")
    )
    count = celery_tasks.scalar_one()
    if count:
        raise RuntimeError(
            f"{count} tasks have a Celery target, which the schema before 0011 cannot hold: "
            "delete them (taskhub task delete) before downgrading"
        )
    with op.batch_alter_table("executions") as batch:
        batch.drop_index(
            "ix_executions_result_due_by",
            postgresql_where=sa.text(RESULT_DUE),
            sqlite_where=sa.text(RESULT_DUE),
        )
        batch.drop_column("result_due_by")
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_constraint(op.f("ck_scheduled_tasks_one_target_kind"), type_="check")
        batch.alter_column("url", existing_type=sa.Text(), nullable=False)
        batch.drop_column("celery")
