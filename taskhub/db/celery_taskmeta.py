"""A Celery database result backend's table, read (never written) for tracked Celery
targets: ``celery_taskmeta`` as Celery's SQLAlchemy backend creates it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_TASKMETA: Final = sa.text(
    "SELECT task_id, status, result FROM celery_taskmeta WHERE task_id IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))


def connect(url: str) -> Engine:
    """An engine for the backend's database (``url`` without Celery's ``db+`` prefix)."""
    return sa.create_engine(url, pool_pre_ping=True)


def read_results(engine: Engine, task_ids: Sequence[str]) -> list[tuple[str, str, Any]]:
    """(task id, status, result as stored) of those of ``task_ids`` the backend has."""
    with engine.connect() as conn:
        rows = conn.execute(_TASKMETA, {"ids": list(task_ids)})
        return [(task_id, status, result) for task_id, status, result in rows]
