"""Credential headers a test task carries, and what the database keeps of them: the
security tests and the credential-origin tests check the same secrets."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core.settings import load
from taskhub.db.models import scheduled_tasks
from taskhub.service import task_views

TOKEN = "Bearer sk_live_0123456789abcdefWXYZ"
COOKIE = "session=0123456789abcdef-cookie"
HEADERS = {"X-Team": "billing", "Authorization": TOKEN, "Cookie": COOKIE}


def stored(engine: Engine, task_id: str) -> dict[str, Any]:
    """The task's row as stored (sealed headers and all)."""
    with engine.connect() as conn:
        query = sa.select(scheduled_tasks).where(scheduled_tasks.c.id == uuid.UUID(task_id))
        return dict(conn.execute(query).mappings().one())


def secrets_of(engine: Engine, task_id: str) -> dict[str, str]:
    """The credential headers sealed in the task's row, opened."""
    return task_views.stored_secrets(stored(engine, task_id), load())
