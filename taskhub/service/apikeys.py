"""API keys: one tenant per key, shown in full once, stored only as a digest.

A key reads ``th_<prefix>_<secret>``. The prefix (8 characters of lower-case base32) is
public: it finds the row, appears in listings and logs, and names the key for
``taskhub apikey revoke``. The secret (32 characters of ``secrets.token_urlsafe``) is
stored only as its SHA-256 digest; the key is random, so a slow hash would add nothing.
The prefix never holds ``_``, so splitting on the first two underscores is unambiguous
even when the secret holds some.

Every function takes an open ``Connection``; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.errors import ValidationError
from taskhub.db import key_queries
from taskhub.db.models import TENANT_MAX_LENGTH
from taskhub.db.rows import dataclass_of

__all__ = [
    "KEY_PREFIX",
    "TENANT_MAX_LENGTH",
    "TENANT_PATTERN",
    "TOUCH_INTERVAL",
    "ApiKey",
    "authenticate",
    "authenticated_key",
    "create_key",
    "list_keys",
    "mask",
    "revoke_key",
    "validate_tenant",
]

#: What every key starts with, so that a leaked one is recognisable (secret scanners).
KEY_PREFIX = "th"
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower case: no "_"
PREFIX_LENGTH = 8
SECRET_BYTES = 24  # token_urlsafe(24) is exactly 32 characters
SECRET_LENGTH = 32

#: A tenant name: 1 to ``TENANT_MAX_LENGTH`` characters (its columns' width), lower-case
#: letters, digits, ".", "_" and "-", starting with a letter or a digit.
TENANT_PATTERN = re.compile(rf"[a-z0-9][a-z0-9._-]{{0,{TENANT_MAX_LENGTH - 1}}}")

#: ``last_used_at`` is written at most this often per key: not a write per request.
TOUCH_INTERVAL = timedelta(minutes=1)

_PREFIX_RE = re.compile(rf"[{PREFIX_ALPHABET}]{{{PREFIX_LENGTH}}}")
_SECRET_RE = re.compile(rf"[A-Za-z0-9_-]{{{SECRET_LENGTH}}}")
_MAX_KEY_LENGTH = len(KEY_PREFIX) + 1 + PREFIX_LENGTH + 1 + SECRET_LENGTH
#: Compared against when the prefix is unknown, so both paths do the same work.
_NO_DIGEST = "0" * 64


@dataclass(frozen=True)
class ApiKey:
    """A key as it may be shown: never its secret, nor the secret's digest."""

    id: uuid.UUID
    tenant: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def masked(self) -> str:
        """How the key may appear in logs and listings: ``th_<prefix>_…``."""
        return f"{KEY_PREFIX}_{self.prefix}_…"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the id as text, times as ISO 8601 with offset."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": str(self.id),
            "tenant": self.tenant,
            "prefix": self.prefix,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


def _api_key(row: RowMapping) -> ApiKey:
    return dataclass_of(ApiKey, row)


def validate_tenant(tenant: str) -> str:
    """``tenant`` if it is a valid tenant name, else a ValidationError naming ``tenant``.

    Upper case is refused, not folded: ``Acme`` and ``acme`` would otherwise look like
    two tenants to whoever typed them."""
    if not isinstance(tenant, str) or not tenant:
        raise ValidationError("tenant", "is required")
    if len(tenant) > TENANT_MAX_LENGTH:
        raise ValidationError("tenant", f"must be at most {TENANT_MAX_LENGTH} characters")
    if TENANT_PATTERN.fullmatch(tenant):
        return tenant
    if TENANT_PATTERN.fullmatch(tenant.lower()):
        raise ValidationError("tenant", f"must be lower case: use {tenant.lower()!r}")
    raise ValidationError(
        "tenant",
        "must start with a letter or a digit and hold only a-z, 0-9, '.', '_' and '-' "
        f"(got {tenant[:40]!r})",
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    if not isinstance(key, str) or len(key) != _MAX_KEY_LENGTH:
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    _, prefix, secret = parts
    if not _PREFIX_RE.fullmatch(prefix) or not _SECRET_RE.fullmatch(secret):
        return None
    return prefix, secret


def _new_prefix(conn: Connection) -> str:
    # 32**8 (about 10**12) prefixes: a collision is rare; look first rather than let a
    # unique violation abort the caller's transaction.
    for _ in range(10):
        prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
        if not key_queries.api_key_prefix_taken(conn, prefix):
            return prefix
    raise RuntimeError("could not find a free API key prefix")  # pragma: no cover


def create_key(conn: Connection, tenant: str, now: datetime) -> tuple[str, ApiKey]:
    """A new key for ``tenant``: the plaintext, which is never obtainable again, and the
    stored key's public fields."""
    validate_tenant(tenant)
    prefix = _new_prefix(conn)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    row = key_queries.insert_api_key(
        conn,
        {
            "id": uuid.uuid4(),
            "tenant": tenant,
            "prefix": prefix,
            "secret_hash": _digest(secret),
            "created_at": now,
        },
    )
    return f"{KEY_PREFIX}_{prefix}_{secret}", _api_key(row)


def list_keys(conn: Connection, tenant: str | None = None) -> list[ApiKey]:
    """Keys, newest first: one tenant's, or every tenant's when ``tenant`` is None."""
    if tenant is not None:
        validate_tenant(tenant)
    return [_api_key(row) for row in key_queries.list_api_keys(conn, tenant)]


def _find(conn: Connection, key_id_or_prefix: str) -> ApiKey | None:
    """A key by its id, its prefix, its masked form ``th_<prefix>_…`` or the key itself."""
    text = key_id_or_prefix.strip() if isinstance(key_id_or_prefix, str) else ""
    if not text:
        return None
    try:
        key_id = uuid.UUID(text)
    except ValueError:
        pass
    else:
        row = key_queries.get_api_key_public(conn, key_id)
        return None if row is None else _api_key(row)
    parts = text.split("_", 2)
    prefix = parts[1] if len(parts) >= 2 and parts[0] == KEY_PREFIX else text
    if not _PREFIX_RE.fullmatch(prefix):
        return None
    row = key_queries.get_api_key_public_by_prefix(conn, prefix)
    return None if row is None else _api_key(row)


def revoke_key(conn: Connection, key_id_or_prefix: str, now: datetime) -> ApiKey | None:
    """Revoke a key found by id or prefix; None if there is none. Idempotent: revoking a
    revoked key changes nothing and returns it with its first ``revoked_at``."""
    key = _find(conn, key_id_or_prefix)
    if key is None or key.revoked:
        return key
    key_queries.revoke_api_key(conn, key.id, now)
    row = key_queries.get_api_key_public(conn, key.id)
    return None if row is None else _api_key(row)


def authenticate(conn: Connection, presented: str, now: datetime) -> str | None:
    """The tenant of ``presented`` if it is a valid, unrevoked key, else None."""
    found = authenticated_key(conn, presented, now)
    return None if found is None else found[1]


def authenticated_key(
    conn: Connection, presented: str, now: datetime
) -> tuple[uuid.UUID, str] | None:
    """(key id, tenant) of ``presented`` if it is a valid, unrevoked key, else None.

    Anything malformed is None, never an exception, and never reaches the database.
    ``last_used_at`` is written at most once per :data:`TOUCH_INTERVAL` per key."""
    parts = _split(presented)
    if parts is None:
        return None
    prefix, secret = parts
    row = key_queries.get_api_key_by_prefix(conn, prefix)
    expected = _NO_DIGEST if row is None else str(row["secret_hash"])
    matches = hmac.compare_digest(_digest(secret), expected)
    if row is None or not matches or row["revoked_at"] is not None:
        return None
    last_used: datetime | None = row["last_used_at"]
    stale_before = now - TOUCH_INTERVAL
    if last_used is None or last_used < stale_before:
        key_queries.touch_api_key(conn, row["id"], now, stale_before)
    return row["id"], str(row["tenant"])


def mask(key: str) -> str:
    """A key as it may be logged: ``th_<prefix>_…``, never any of the secret. Text that
    is not a recognisable key is masked entirely."""
    parts = key.split("_", 2) if isinstance(key, str) else []
    if len(parts) >= 2 and parts[0] == KEY_PREFIX and _PREFIX_RE.fullmatch(parts[1]):
        return f"{KEY_PREFIX}_{parts[1]}_…"
    return "…"
