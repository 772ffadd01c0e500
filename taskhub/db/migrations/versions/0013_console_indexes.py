"""The task list's indexes: a tenant's tasks in creation order, and by name prefix

A page of the task list (the console's and ``GET /tasks``) is a tenant's tasks ordered by
(created_at, id), keyset-paged; search is ``name LIKE 'prefix%'``. Without these, each
page read every task of the table: 100 to 250 ms at 100,000 tasks (see
docs/performance.md, the console scenario). Neither column set is rewritten by a claim,
so its updates stay HOT (migration 0007).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

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


def downgrade() -> None:
    op.drop_index("ix_scheduled_tasks_tenant_name_pattern", "scheduled_tasks")
    op.drop_index("ix_scheduled_tasks_tenant_created_at_id", "scheduled_tasks")
