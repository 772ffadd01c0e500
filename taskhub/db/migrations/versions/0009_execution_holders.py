"""executions name the process and the message that hold them

``held_by`` is the heartbeat identity (``worker_heartbeats.process``) of the trigger
process that started the execution's current send, and ``message_id`` the Celery task
id of the message that carried it (its outcome is stored under that id in the result
backend). A dead holder's executions are sent again as soon as its heartbeat stops,
and an outcome that reached the result backend is recorded instead of sent again.
Both are cleared whenever the execution is sent anew.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = "status = 'running'"


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("held_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("message_id", sa.String(64), nullable=True))
        batch.create_index(
            "ix_executions_held_by",
            ["held_by"],
            unique=False,
            postgresql_where=sa.text(RUNNING),
            sqlite_where=sa.text(RUNNING),
        )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_index(
            "ix_executions_held_by",
            postgresql_where=sa.text(RUNNING),
            sqlite_where=sa.text(RUNNING),
        )
        batch.drop_column("message_id")
        batch.drop_column("held_by")
