"""History retention: a task's retention_days, the index the prune pass reads, its lease

``scheduled_tasks.retention_days`` (NULL: the installation's default) is a new nullable
column: PostgreSQL adds it without rewriting the table. ``ix_executions_finished_at``
(the ended executions in the order they ended) and ``ix_scheduled_tasks_retention_days``
(the tasks with an override) are built on PostgreSQL with ``CREATE INDEX CONCURRENTLY``,
outside the migration's transaction: claims and write-backs go on while they are built
(docs/operations/retention.md says how long for a large table). A build that was
interrupted leaves an invalid index; running the upgrade again drops and rebuilds it.
``maintenance_leases`` lets one prune pass run at a time.

Revision ID: 0019
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskhub.db.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, column): each partial on ``column IS NOT NULL``.
INDEXES = (
    ("ix_executions_finished_at", "executions", "finished_at"),
    ("ix_scheduled_tasks_retention_days", "scheduled_tasks", "retention_days"),
)


def upgrade() -> None:
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "maintenance_leases",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("held_until", taskhub.db.models.UTCDateTime(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table, column in INDEXES:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.create_index(
                    name,
                    table,
                    [column],
                    postgresql_where=sa.text(f"{column} IS NOT NULL"),
                    postgresql_concurrently=True,
                )
    else:
        for name, table, column in INDEXES:
            op.create_index(name, table, [column], sqlite_where=sa.text(f"{column} IS NOT NULL"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, _table, _column in INDEXES:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    else:
        for name, table, _column in INDEXES:
            op.drop_index(name, table)
    op.drop_table("maintenance_leases")
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_column("retention_days")
