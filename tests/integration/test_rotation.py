"""Completing a key rotation: `taskhub reseal` re-seals every stored secret under the
first key, so the old key can be dropped; on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from taskhub.core.sealing import SealingError, sealer_for
from taskhub.core.settings import Settings, load
from taskhub.db.models import scheduled_tasks
from taskhub.db.models import signing_secrets as signing_secrets_table
from taskhub.service import reseal, signing_secrets, task_service, task_views

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
TOKEN = "Bearer 0123456789abcdefghijklmnop"


def settings_with(tmp_path: Path, keys: str, secret_headers: str = "") -> Settings:
    return load(
        {
            "TASKHUB_ENCRYPTION_KEYS": keys,
            "TASKHUB_SECRET_HEADERS": secret_headers,
            "TASKHUB_DATA_DIR": str(tmp_path),
        }
    )


def test_reseal_lets_the_old_key_go_and_moves_newly_secret_headers(
    engine: Engine, tmp_path: Path
) -> None:
    old = settings_with(tmp_path, OLD)
    definition = {
        "name": "hook",
        "schedule": {"interval_seconds": 60},
        "target": {
            "url": "https://example.com/hook",
            "headers": {"Authorization": TOKEN, "X-Partner-Ref": "custom-0123456789abcdef"},
        },
    }
    with engine.begin() as conn:
        task = task_service.add_task(conn, "acme", definition, NOW, old)
        secret, _ = signing_secrets.create_secret(conn, "acme", NOW, old)

    rotated = settings_with(tmp_path, f"{NEW},{OLD}", "x-partner-ref")
    report = reseal.reseal(engine, rotated, batch_size=1)
    assert (report.tasks_resealed, report.headers_moved, report.signing_secrets_resealed) == (
        1,
        1,
        1,
    )
    again = reseal.reseal(engine, rotated, batch_size=1)
    assert again.headers_moved == 0 and again.tasks_resealed == 1

    only_new = settings_with(tmp_path, NEW, "x-partner-ref")
    with engine.connect() as conn:
        row = conn.execute(sa.select(scheduled_tasks)).mappings().one()
        sealed_secret = conn.execute(sa.select(signing_secrets_table.c.sealed_secret)).scalar_one()
    assert row["headers"] == {}  # nothing credential-like is left in plain storage
    assert sealer_for(only_new).unseal_json(row["sealed_headers"]) == {
        "Authorization": TOKEN,
        "X-Partner-Ref": "custom-0123456789abcdef",
    }
    assert sealer_for(only_new).unseal(sealed_secret) == secret
    with pytest.raises(SealingError):
        sealer_for(settings_with(tmp_path, OLD)).unseal(sealed_secret)
    shown = task_views.task_view(row, only_new)["target"]["headers"]
    assert shown == {"Authorization": "Bearer ****mnop", "X-Partner-Ref": "****cdef"}
    assert task["id"] == str(row["id"])
