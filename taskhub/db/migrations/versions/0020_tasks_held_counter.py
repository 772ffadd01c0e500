"""tasks held: a counter on the tenant's quota row instead of a count of its tasks

``tenant_quotas.tasks_held`` is the number of tasks a tenant holds, kept in step by
every insert and delete of a task in the same transaction (``taskhub.db.quota_queries``):
a create checks ``max_tasks`` against it rather than counting the tenant's tasks, which
took time in proportion to how many it held. The upgrade gives every tenant holding
tasks a row and counts them once (an index-only scan of ``(tenant, name)``); stop the
older API processes first, since a task they create after the upgrade is not counted.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_quotas") as batch:
        batch.add_column(sa.Column("tasks_held", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "INSERT INTO tenant_quotas (tenant) SELECT DISTINCT tenant FROM scheduled_tasks "
        "WHERE tenant NOT IN (SELECT tenant FROM tenant_quotas)"
    )
    op.execute(
        "UPDATE tenant_quotas SET tasks_held = (SELECT count(*) FROM scheduled_tasks "
        "WHERE scheduled_tasks.tenant = tenant_quotas.tenant)"
    )


def downgrade() -> None:
    with op.batch_alter_table("tenant_quotas") as batch:
        batch.drop_column("tasks_held")
