"""The SQL of keys: API keys, per-tenant signing secrets, and the re-sealing of what is
stored sealed (task headers, signing secrets) under a new key."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.db.models import api_keys, scheduled_tasks, signing_secrets
from taskhub.db.rows import TaskHeaders

T = scheduled_tasks.c

# --- api keys --------------------------------------------------------------------------


K = api_keys.c

#: Every column but the secret's digest: what may leave this module for listings.
_API_KEY_PUBLIC = (K.id, K.tenant, K.prefix, K.created_at, K.revoked_at, K.last_used_at)


def api_key_prefix_taken(conn: Connection, prefix: str) -> bool:
    return conn.execute(sa.select(K.id).where(K.prefix == prefix).limit(1)).first() is not None


def insert_api_key(conn: Connection, values: Mapping[str, Any]) -> RowMapping:
    """Insert one key; returns its public columns (never the digest)."""
    return (
        conn.execute(sa.insert(api_keys).values(**values).returning(*_API_KEY_PUBLIC))
        .mappings()
        .one()
    )


def get_api_key_by_prefix(conn: Connection, prefix: str) -> RowMapping | None:
    """One key with its digest, for authentication."""
    return conn.execute(sa.select(api_keys).where(K.prefix == prefix)).mappings().first()


def get_api_key_public(conn: Connection, key_id: uuid.UUID) -> RowMapping | None:
    return conn.execute(sa.select(*_API_KEY_PUBLIC).where(K.id == key_id)).mappings().first()


def get_api_key_public_by_prefix(conn: Connection, prefix: str) -> RowMapping | None:
    return conn.execute(sa.select(*_API_KEY_PUBLIC).where(K.prefix == prefix)).mappings().first()


def list_api_keys(conn: Connection, tenant: str | None) -> Sequence[RowMapping]:
    """Keys (public columns), newest first; every tenant's when ``tenant`` is None."""
    query = sa.select(*_API_KEY_PUBLIC)
    if tenant is not None:
        query = query.where(K.tenant == tenant)
    return conn.execute(query.order_by(K.created_at.desc(), K.id.desc())).mappings().all()


def revoke_api_key(conn: Connection, key_id: uuid.UUID, now: datetime) -> None:
    """Revoke a key; one already revoked keeps its first ``revoked_at``."""
    conn.execute(
        sa.update(api_keys).where(K.id == key_id, K.revoked_at.is_(None)).values(revoked_at=now)
    )


def touch_api_key(
    conn: Connection, key_id: uuid.UUID, now: datetime, stale_before: datetime
) -> None:
    """Record a use, unless one at or after ``stale_before`` is already recorded (the
    condition also keeps two concurrent requests from moving it backwards)."""
    conn.execute(
        sa.update(api_keys)
        .where(
            K.id == key_id,
            sa.or_(K.last_used_at.is_(None), K.last_used_at < stale_before),
        )
        .values(last_used_at=now)
    )


# --- signing secrets -------------------------------------------------------------------


S = signing_secrets.c

#: Every column but the sealed secret: what may leave this module for listings.
_SIGNING_PUBLIC = (S.id, S.tenant, S.scheme, S.hint, S.created_at, S.revoked_at)


def lock_tenant_signing_secrets(conn: Connection, tenant: str) -> None:
    """Serialise changes to one tenant's secrets until the transaction ends, so two
    concurrent creates cannot both see one active secret and make three. (SQLite's
    ``BEGIN IMMEDIATE`` already serialises every writer.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("signing:" + tenant)))
        )


def count_active_signing_secrets(conn: Connection, tenant: str, scheme: str) -> int:
    """The tenant's active secrets of one scheme."""
    query = sa.select(sa.func.count()).where(
        S.tenant == tenant, S.scheme == scheme, S.revoked_at.is_(None)
    )
    return int(conn.execute(query).scalar_one())


def insert_signing_secret(conn: Connection, values: Mapping[str, Any]) -> RowMapping:
    """Insert one secret; returns its public columns (never the sealed secret)."""
    return (
        conn.execute(sa.insert(signing_secrets).values(**values).returning(*_SIGNING_PUBLIC))
        .mappings()
        .one()
    )


def list_signing_secrets(conn: Connection, tenant: str | None) -> Sequence[RowMapping]:
    """Secrets (public columns), newest first; every tenant's when ``tenant`` is None."""
    query = sa.select(*_SIGNING_PUBLIC)
    if tenant is not None:
        query = query.where(S.tenant == tenant)
    return conn.execute(query.order_by(S.created_at.desc(), S.id.desc())).mappings().all()


def get_signing_secret_public(
    conn: Connection, secret_id: uuid.UUID, tenant: str | None
) -> RowMapping | None:
    query = sa.select(*_SIGNING_PUBLIC).where(S.id == secret_id)
    if tenant is not None:
        query = query.where(S.tenant == tenant)
    return conn.execute(query).mappings().first()


def revoke_signing_secret(conn: Connection, secret_id: uuid.UUID, now: datetime) -> None:
    """Revoke a secret; one already revoked keeps its first ``revoked_at``."""
    conn.execute(
        sa.update(signing_secrets)
        .where(S.id == secret_id, S.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def active_sealed_signing_secrets(
    conn: Connection, tenants: Iterable[str]
) -> dict[str, dict[str, list[str]]]:
    """Each tenant's active secrets, sealed, by scheme, oldest first (what a dispatch
    signs with): ``{tenant: {scheme: [sealed, ...]}}``."""
    names = sorted(set(tenants))
    if not names:
        return {}
    rows = conn.execute(
        sa.select(S.tenant, S.scheme, S.sealed_secret)
        .where(S.tenant.in_(names), S.revoked_at.is_(None))
        .order_by(S.created_at, S.id)
    )
    found: dict[str, dict[str, list[str]]] = {}
    for tenant, scheme, sealed in rows:
        found.setdefault(tenant, {}).setdefault(scheme, []).append(sealed)
    return found


# --- re-sealing ------------------------------------------------------------------------


def tasks_headers_after(
    conn: Connection, after_id: uuid.UUID | None, limit: int
) -> Sequence[RowMapping]:
    """A page of tasks' header columns in id order, locked for the re-seal that follows."""
    query = sa.select(T.id, T.headers, T.sealed_headers).order_by(T.id).limit(limit)
    if after_id is not None:
        query = query.where(T.id > after_id)
    return conn.execute(query.with_for_update()).mappings().all()


def update_task_headers(conn: Connection, rows: Sequence[TaskHeaders]) -> None:
    """Write each task's plain and sealed headers (by its ``id``)."""
    if not rows:
        return
    conn.execute(
        sa.update(scheduled_tasks)
        .where(T.id == sa.bindparam("b_id"))
        .values(headers=sa.bindparam("b_headers"), sealed_headers=sa.bindparam("b_sealed_headers")),
        [
            {"b_id": r.id, "b_headers": r.headers, "b_sealed_headers": r.sealed_headers}
            for r in rows
        ],
    )


def sealed_signing_secrets(conn: Connection) -> Sequence[RowMapping]:
    S = signing_secrets.c
    return (
        conn.execute(sa.select(S.id, S.sealed_secret).order_by(S.id).with_for_update())
        .mappings()
        .all()
    )


def update_sealed_signing_secret(conn: Connection, secret_id: uuid.UUID, sealed: str) -> None:
    S = signing_secrets.c
    conn.execute(sa.update(signing_secrets).where(S.id == secret_id).values(sealed_secret=sealed))
