"""The task list's keyset paging (``task_queries.list_tasks``): every task once, in
(created_at, id) order, when many tasks share a creation instant and others do not."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from taskhub.core.clock import utcnow
from taskhub.core.definitions import parse_definition
from taskhub.core.settings import load
from taskhub.db import task_queries
from taskhub.service import task_service


def _create(engine: Engine, name: str, now: datetime, tenant: str = "default") -> uuid.UUID:
    data = {"name": name, "schedule": {"interval_seconds": 60}, "target": {"url": "http://x.test"}}
    with engine.begin() as conn:
        return task_service.create_task(conn, parse_definition(data, now), now, load({}), tenant)


def test_pages_hold_every_task_once_in_creation_order(engine: Engine) -> None:
    base = utcnow()
    # Three instants, the middle one shared by five tasks (ties broken by id).
    instants = [base, *[base + timedelta(seconds=1)] * 5, base + timedelta(seconds=2)]
    created = [(at, _create(engine, f"task-{i}", at)) for i, at in enumerate(instants)]
    _create(engine, "other-tenant", base + timedelta(seconds=1), tenant="other")
    seen: list[tuple[datetime, uuid.UUID]] = []
    after = None
    with engine.connect() as conn:
        while True:
            rows = task_queries.list_tasks(conn, "default", task_queries.TaskFilters(), after, 2)
            seen += [(row["created_at"], row["id"]) for row in rows]
            if len(rows) < 2:
                break
            after = (rows[-1]["created_at"], rows[-1]["id"])
    assert seen == sorted(created, key=lambda pair: (pair[0], str(pair[1])))
