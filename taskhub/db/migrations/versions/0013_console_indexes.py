"""The console's indexes: a tenant's tasks in creation order and by name prefix; the
dead letters

A page of the task list (the console's and ``GET /tasks``) is a tenant's tasks ordered by
(created_at, id), keyset-paged; search is ``name LIKE 'prefix%'``. Without these, each
page read every task of the table: 100 to 250 ms at 100,000 tasks (see
docs/performance.md, the console scenario). Neither column set is rewritten by a claim,
so its updates stay HOT (migration 0007).

Counting a tenant's dead letters (the overview, a bulk redrive's count) read every
execution: 460 ms at 1,100,000; from the partial index, 65 ms. An execution gets an
entry only when it becomes dead, so the write-back's other updates do not pay for it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_scheduled_tasks_tenant_created_at_id",
        "scheduled_tasks",
        ["tenant", "created_at", "id"],
    )
    op.create_index(
        "ix_scheduled_tasks_tenant_name_pattern",
        "scheduled_tasks",
        ["tenant", "name"],
        postgresql_ops={"name": "varchar_pattern_ops"},
    )
    op.create_index(
        "ix_executions_dead_letters",
        "executions",
        ["id", "task_id"],
        postgresql_where=sa.text("status = 'dead'"),
        sqlite_where=sa.text("status = 'dead'"),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_dead_letters", "executions")
    op.drop_index("ix_scheduled_tasks_tenant_name_pattern", "scheduled_tasks")
    op.drop_index("ix_scheduled_tasks_tenant_created_at_id", "scheduled_tasks")
