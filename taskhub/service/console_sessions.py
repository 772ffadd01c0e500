"""Console sessions: an API key exchanged for a browser session.

The browser never holds the API key. Signing in checks the key as the API does and
stores a session row; the browser gets a cookie naming it: ``<token>.<signature>``,
where the token is random, only its SHA-256 digest is stored, and the signature (an
HMAC with a key derived from the installation's sealing key) lets a forged or mangled
cookie be refused before the database is asked. A session ends when its key is
revoked, when it is signed out (the row is marked, so the old cookie no longer works)
or when it expires. Each session has its own anti-forgery token, which every change
the console makes must carry.

Every function takes an open ``Connection``; the caller owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.engine import Connection

from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings
from taskhub.db import console_session_queries
from taskhub.service import apikeys

#: The cookie that names a console session.
COOKIE_NAME: Final = "taskhub_session"
#: What the cookie's signing key is derived for (see :meth:`Sealer.subkey`).
_SUBKEY_PURPOSE: Final = "taskhub console session cookie"
_TOKEN_BYTES: Final = 32
#: Sessions that expired longer ago than this are deleted at a sign-in.
_FORGET_AFTER: Final = timedelta(days=1)


@dataclass(frozen=True)
class Session:
    """A live session: whose it is, its anti-forgery token, and when it expires."""

    tenant: str
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _signature(token: str, settings: Settings) -> str:
    mac = hmac.new(sealer_for(settings).subkey(_SUBKEY_PURPOSE), token.encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).decode("ascii").rstrip("=")


def _token_of(cookie: str | None, settings: Settings) -> str | None:
    """The token of a cookie whose signature holds, else None."""
    if not cookie or cookie.count(".") != 1:
        return None
    token, signature = cookie.split(".")
    if not hmac.compare_digest(signature, _signature(token, settings)):
        return None
    return token


def sign_in(
    conn: Connection, presented_key: str, now: datetime, settings: Settings
) -> tuple[str, Session] | None:
    """A new session for a valid, unrevoked API key: (the cookie's value, the session);
    None for anything else."""
    found = apikeys.authenticated_key(conn, presented_key.strip(), now)
    if found is None:
        return None
    key_id, tenant = found
    console_session_queries.delete_sessions_before(conn, now - _FORGET_AFTER)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    session = Session(
        tenant=tenant,
        csrf_token=secrets.token_urlsafe(_TOKEN_BYTES),
        expires_at=now + timedelta(hours=settings.console_session_hours),
    )
    console_session_queries.insert_session(
        conn,
        {
            "token_digest": _digest(token),
            "tenant": tenant,
            "api_key_id": key_id,
            "csrf_token": session.csrf_token,
            "created_at": now,
            "expires_at": session.expires_at,
        },
    )
    return f"{token}.{_signature(token, settings)}", session


def session_of(
    conn: Connection, cookie: str | None, now: datetime, settings: Settings
) -> Session | None:
    """The live session a cookie names, else None."""
    token = _token_of(cookie, settings)
    if token is None:
        return None
    row = console_session_queries.live_session(conn, _digest(token), now)
    if row is None:
        return None
    return Session(row["tenant"], row["csrf_token"], row["expires_at"])


def sign_out(conn: Connection, cookie: str | None, now: datetime, settings: Settings) -> None:
    """End the session a cookie names (nothing if it names none)."""
    token = _token_of(cookie, settings)
    if token is not None:
        console_session_queries.end_session(conn, _digest(token), now)


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8"), session.csrf_token.encode("utf-8")
    )
