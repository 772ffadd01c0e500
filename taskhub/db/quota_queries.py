"""The SQL of a tenant's count of tasks held: ``tenant_quotas.tasks_held``, kept in step
by every insert and delete of a task (``task_queries``) in the same transaction, so a
create's ``max_tasks`` check is one row, not a count of the tenant's tasks.

A create through the service takes its place last, just before it commits
(:func:`take_place`): one conditional upsert that locks the tenant's row only from
there to the commit, so creates of one tenant wait on each other for that long, not for
their whole transaction. Plain SQL that both databases run (SQLite 3.35+), built once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: ``count`` more tasks held (a tenant without a row gets one).
_ADD = sa.text(
    "INSERT INTO tenant_quotas (tenant, tasks_held) VALUES (:tenant, :count) "
    "ON CONFLICT (tenant) DO UPDATE SET tasks_held = tenant_quotas.tasks_held + :count"
)
#: One task fewer held.
_REMOVE = sa.text(
    "UPDATE tenant_quotas SET tasks_held = tasks_held - :count WHERE tenant = :tenant"
)
#: One more task held if the tenant holds fewer than its limit (its own, else
#: ``default_max``); no row returned if it holds that many already.
_TAKE = sa.text(
    "INSERT INTO tenant_quotas (tenant, tasks_held) VALUES (:tenant, 1) "
    "ON CONFLICT (tenant) DO UPDATE SET tasks_held = tenant_quotas.tasks_held + 1 "
    "WHERE tenant_quotas.tasks_held < coalesce(tenant_quotas.max_tasks, :default_max) "
    "RETURNING tasks_held"
)
_HELD = sa.text("SELECT tasks_held FROM tenant_quotas WHERE tenant = :tenant")


def add_held(conn: Connection, tenant: str, count: int) -> None:
    """``count`` tasks of ``tenant`` were inserted (a negative count: deleted)."""
    if count > 0:
        conn.execute(_ADD, {"tenant": tenant, "count": count})
    elif count < 0:
        conn.execute(_REMOVE, {"tenant": tenant, "count": -count})


def take_place(conn: Connection, tenant: str, default_max: int) -> bool:
    """Count one more task of ``tenant`` if it holds fewer than its ``max_tasks``
    (``default_max`` unless it has its own); False, nothing changed, if it is full. The
    tenant's row stays locked until the caller's transaction ends."""
    row = conn.execute(_TAKE, {"tenant": tenant, "default_max": default_max}).first()
    return row is not None


def tasks_held(conn: Connection, tenant: str) -> int:
    """The tenant's tasks, every status."""
    held = conn.execute(_HELD, {"tenant": tenant}).scalar()
    return 0 if held is None else int(held)
