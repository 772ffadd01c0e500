"""The SQL of heartbeats: each process's row of ``worker_heartbeats``, written while it
runs, read for the fleet's view and to find processes that died."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.db.dialects import insert
from taskhub.db.models import worker_heartbeats


def write_heartbeat(conn: Connection, values: Mapping[str, Any]) -> None:
    statement = insert(conn, worker_heartbeats).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["process"],
        set_={k: statement.excluded[k] for k in values if k not in ("process", "started_at")},
    )
    conn.execute(statement)


def live_heartbeats(conn: Connection, seen_since: datetime) -> Sequence[RowMapping]:
    """Processes seen since ``seen_since``; rows of processes gone longer are deleted."""
    conn.execute(sa.delete(worker_heartbeats).where(worker_heartbeats.c.seen_at < seen_since))
    query = sa.select(worker_heartbeats).order_by(
        worker_heartbeats.c.role, worker_heartbeats.c.process
    )
    return conn.execute(query).mappings().all()


def stale_processes(conn: Connection, seen_before: datetime, seen_since: datetime) -> list[str]:
    """Processes whose last heartbeat is older than ``seen_before`` but not older than
    ``seen_since``."""
    query = sa.select(worker_heartbeats.c.process).where(
        worker_heartbeats.c.seen_at < seen_before, worker_heartbeats.c.seen_at >= seen_since
    )
    return [row[0] for row in conn.execute(query)]
