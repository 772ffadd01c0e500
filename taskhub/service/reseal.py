"""Re-sealing every stored secret under the first encryption key, so that a retired key
can be dropped from ``TASKHUB_ENCRYPTION_KEYS``; and moving credential headers that a
new ``TASKHUB_SECRET_HEADERS`` name now covers out of the plain ``headers`` column.

Runs in batches, one transaction each, rows locked while they are rewritten; running it
twice is harmless (the second run re-seals the same plaintext again).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from taskhub.core import credentials
from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings
from taskhub.db import key_queries
from taskhub.db.rows import TaskHeaders

BATCH_SIZE = 500


@dataclass
class ResealReport:
    tasks_resealed: int = 0
    headers_moved: int = 0
    signing_secrets_resealed: int = 0


def reseal(engine: Engine, settings: Settings, batch_size: int = BATCH_SIZE) -> ResealReport:
    sealer = sealer_for(settings)
    report = ResealReport()
    after: uuid.UUID | None = None
    while True:
        with engine.begin() as conn:
            rows = key_queries.tasks_headers_after(conn, after, batch_size)
            updates = []
            for row in rows:
                stored = dict(row["headers"])
                if row["sealed_headers"]:
                    stored.update(sealer.unseal_json(row["sealed_headers"]))
                plain, secret = credentials.split(stored, settings.secret_headers)
                if not secret and not row["sealed_headers"]:
                    continue
                report.headers_moved += sum(1 for name in row["headers"] if name in secret)
                updates.append(
                    TaskHeaders(row["id"], plain, sealer.seal_json(secret) if secret else None)
                )
            key_queries.update_task_headers(conn, updates)
            report.tasks_resealed += len(updates)
        if len(rows) < batch_size:
            break
        after = rows[-1]["id"]
    with engine.begin() as conn:
        for row in key_queries.sealed_signing_secrets(conn):
            resealed = sealer.seal(sealer.unseal(row["sealed_secret"]))
            key_queries.update_sealed_signing_secret(conn, row["id"], resealed)
            report.signing_secrets_resealed += 1
    return report
