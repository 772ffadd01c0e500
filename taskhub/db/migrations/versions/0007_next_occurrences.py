"""next occurrences in a table of their own, not in an index on the task row

The due index on ``scheduled_tasks (next_execution_time, id)``, partial on ``is_active
AND NOT is_finished``, made every claim's update of a task row a new tuple with an entry
in all three of the table's indexes, two of them on random keys (the UUID primary key
and ``(tenant, name)``): right after a checkpoint, 1,845 full-page images (8.7 MB of
WAL) per 1,000 claimed tasks. Moved to ``next_occurrences``, the task row's update is
heap-only (fillfactor 90 leaves it room on its page), and a claim writes one narrow row
and one index entry per task instead.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskhub.db.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAN_FALL_DUE = "is_active AND NOT is_finished"


def upgrade() -> None:
    op.create_table(
        "next_occurrences",
        sa.Column("scheduled_for", taskhub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("scheduled_for", "task_id", name=op.f("pk_next_occurrences")),
    )
    op.execute(
        "INSERT INTO next_occurrences (scheduled_for, task_id) "
        "SELECT next_execution_time, id FROM scheduled_tasks "
        f"WHERE {CAN_FALL_DUE} AND next_execution_time IS NOT NULL"
    )
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_index(
            "ix_scheduled_tasks_due",
            postgresql_where=sa.text(CAN_FALL_DUE),
            sqlite_where=sa.text(CAN_FALL_DUE),
        )
    if op.get_context().dialect.name == "postgresql":
        # New pages keep a tenth free: a task row's updates stay on its page.
        op.execute("ALTER TABLE scheduled_tasks SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE scheduled_tasks RESET (fillfactor)")
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.create_index(
            "ix_scheduled_tasks_due",
            ["next_execution_time", "id"],
            unique=False,
            postgresql_where=sa.text(CAN_FALL_DUE),
            sqlite_where=sa.text(CAN_FALL_DUE),
        )
    op.drop_table("next_occurrences")
