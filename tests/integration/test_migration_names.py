"""Migration 0010 renames executions' columns and keeps what they hold, both ways."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from taskhub.db import engines, schema

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _columns(engine: sa.Engine) -> tuple[set[str], set[str | None]]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        columns = {c["name"] for c in inspector.get_columns("executions")}
        indexes = {ix["name"] for ix in inspector.get_indexes("executions")}
    return columns, indexes


def test_migration_0010_renames_next_attempt_and_publish_count(database_url: str) -> None:
    schema.upgrade(database_url, "0009")
    engine = engines.create_engine(database_url)
    due = NOW + timedelta(minutes=5)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO executions (task_id, scheduled_for, idempotency_key, status,"
                    " attempts, next_dispatch_at, dispatch_count, attempt_offset, created_at)"
                    " VALUES (:task, :at, 'k', 'queued', 0, :due, 3, 0, :at)"
                ),
                {
                    "task": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                    "at": NOW.replace(tzinfo=None) if engine.dialect.name == "sqlite" else NOW,
                    "due": due.replace(tzinfo=None) if engine.dialect.name == "sqlite" else due,
                },
            )
        schema.upgrade(database_url)
        schema.check(database_url)  # the models name what the migration made
        columns, indexes = _columns(engine)
        assert {"next_attempt_at", "publish_count"} <= columns
        assert not {"next_dispatch_at", "dispatch_count"} & columns
        assert "ix_executions_next_attempt_at" in indexes
        with engine.connect() as conn:
            [(count, next_attempt)] = conn.execute(
                sa.text("SELECT publish_count, next_attempt_at FROM executions")
            ).all()
        assert count == 3
        assert next_attempt is not None
        command.downgrade(schema.alembic_config(database_url), "0009")
        columns, indexes = _columns(engine)
        assert {"next_dispatch_at", "dispatch_count"} <= columns
        assert "ix_executions_dispatch" in indexes
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT dispatch_count FROM executions")).scalar() == 3
        schema.upgrade(database_url)
    finally:
        engine.dispose()
