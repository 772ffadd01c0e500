"""The SQL of console sessions: a signed-in browser's row, found by its token's digest."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.db.models import api_keys, console_sessions

S = console_sessions.c
K = api_keys.c


def insert_session(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(sa.insert(console_sessions).values(**values))


def live_session(conn: Connection, token_digest: str, now: datetime) -> RowMapping | None:
    """The session if it has not ended or expired and its API key is not revoked."""
    return (
        conn.execute(
            sa.select(S.tenant, S.csrf_token, S.expires_at, S.api_key_id)
            .join(api_keys, K.id == S.api_key_id)
            .where(
                S.token_digest == token_digest,
                S.ended_at.is_(None),
                S.expires_at > now,
                K.revoked_at.is_(None),
            )
        )
        .mappings()
        .first()
    )


def end_session(conn: Connection, token_digest: str, now: datetime) -> None:
    conn.execute(
        sa.update(console_sessions)
        .where(S.token_digest == token_digest, S.ended_at.is_(None))
        .values(ended_at=now)
    )


def delete_sessions_before(conn: Connection, before: datetime) -> int:
    """Forget sessions that expired before ``before``: a sign-in's housekeeping."""
    return conn.execute(sa.delete(console_sessions).where(S.expires_at < before)).rowcount
