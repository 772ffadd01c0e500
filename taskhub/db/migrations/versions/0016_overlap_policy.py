"""The overlap policy: a task's ``overlap`` and an execution's ``overlap_state``

``scheduled_tasks.overlap`` (``allow``, ``skip`` or ``buffer_one``; every existing task
is ``allow``, today's behaviour); ``executions.overlap_state`` (``fired`` or
``waiting``, NULL for an ``allow`` task's executions) with a partial index on the open
ones; and the execution status ``skipped``. On SQLite the constraints change in batch
mode (the tables are copied); on PostgreSQL nothing holds a lock that stops claims or
write-backs for longer than a catalog change (see ``_upgrade_postgresql``). A downgrade
refuses while a skipped execution exists (the schema before 0016 has no such status):
delete them first.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OVERLAP_KNOWN = "overlap IN ('allow', 'skip', 'buffer_one')"
STATUS_KNOWN = "status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'skipped')"
STATUS_KNOWN_BEFORE = "status IN ('queued', 'running', 'succeeded', 'failed', 'dead')"
OVERLAP_OPEN = "overlap_state IS NOT NULL AND status IN ('queued', 'running')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
        return
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.add_column(
            sa.Column("overlap", sa.String(length=16), nullable=False, server_default="allow")
        )
        batch.create_check_constraint("overlap_known", OVERLAP_KNOWN)
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("overlap_state", sa.String(length=8)))
        batch.drop_constraint(op.f("ck_executions_status_known"), type_="check")
        batch.create_check_constraint("status_known", STATUS_KNOWN)
    op.create_index(
        "ix_executions_overlap_open",
        "executions",
        ["task_id"],
        sqlite_where=sa.text(OVERLAP_OPEN),
    )


def _upgrade_postgresql() -> None:
    """Without a long lock on a large executions table: the columns come without a
    rewrite (a constant default), the checks are added NOT VALID (no scan under the
    ALTER's lock) and validated after the commit, under a lock that lets reads and
    writes go on, and the index is built concurrently."""
    op.add_column(
        "scheduled_tasks",
        sa.Column("overlap", sa.String(length=16), nullable=False, server_default="allow"),
    )
    op.add_column("executions", sa.Column("overlap_state", sa.String(length=8)))
    op.execute("ALTER TABLE executions DROP CONSTRAINT ck_executions_status_known")
    checks = (
        ("executions", "ck_executions_status_known", STATUS_KNOWN),
        ("scheduled_tasks", "ck_scheduled_tasks_overlap_known", OVERLAP_KNOWN),
    )
    for table, name, condition in checks:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
    with op.get_context().autocommit_block():
        for table, name, _condition in checks:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_executions_overlap_open")
        op.create_index(
            "ix_executions_overlap_open",
            "executions",
            ["task_id"],
            postgresql_where=sa.text(OVERLAP_OPEN),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    skipped = op.get_bind().execute(
        sa.text("SELECT count(*) FROM executions WHERE status = 'skipped'")
    )
    count = skipped.scalar_one()
    if count:
        raise RuntimeError(
            f"{count} executions are 'skipped', a status the schema before 0016 does not "
            "know: delete them (or the tasks they belong to) before downgrading"
        )
    op.drop_index("ix_executions_overlap_open", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_constraint(op.f("ck_executions_status_known"), type_="check")
        batch.create_check_constraint("status_known", STATUS_KNOWN_BEFORE)
        batch.drop_column("overlap_state")
    with op.batch_alter_table("scheduled_tasks") as batch:
        batch.drop_constraint(op.f("ck_scheduled_tasks_overlap_known"), type_="check")
        batch.drop_column("overlap")
