"""Signing secrets: per tenant, shown in full once, stored sealed (they must be usable
to sign, so unlike API keys they cannot be a one-way digest).

Each secret has a scheme (``signing.Scheme``): ``taskhub`` (``X-Taskhub-Signature``, the
default) or ``standard-webhooks`` (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``; ``standard_webhooks``). At most :data:`MAX_ACTIVE` of each scheme
are active per tenant: a new one and the one it replaces, so receivers move over without
downtime. Every attempt to a tenant with active secrets carries, for each scheme it has
secrets of, that scheme's headers with one signature per active secret. The API and the
CLI are thin layers over these functions; each takes an open ``Connection`` (the
caller's transaction). A ``tenant`` of None (the CLI, an operator) means every tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import signing, standard_webhooks
from taskhub.core.errors import Conflict, NotFound, ValidationError
from taskhub.core.sealing import sealer_for
from taskhub.core.settings import Settings
from taskhub.db import key_queries
from taskhub.db.rows import dataclass_of
from taskhub.service.apikeys import validate_tenant

__all__ = [
    "MAX_ACTIVE",
    "SigningSecret",
    "create_secret",
    "list_secrets",
    "parse_create_request",
    "parse_scheme",
    "revoke_secret",
]

MAX_ACTIVE = 2


@dataclass(frozen=True)
class SigningSecret:
    """A secret as it may be shown: its hint, never the secret."""

    id: uuid.UUID
    tenant: str
    scheme: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant": self.tenant,
            "scheme": self.scheme,
            "hint": self.hint,
            "active": self.revoked_at is None,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def _secret(row: RowMapping) -> SigningSecret:
    return dataclass_of(SigningSecret, row)


def parse_scheme(value: Any) -> str:
    """``value`` if it names a scheme, else a :class:`ValidationError` naming ``scheme``."""
    if value not in signing.SCHEMES:
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else "it"
        raise ValidationError("scheme", f"must be one of {', '.join(signing.SCHEMES)}, not {shown}")
    return str(value)


def parse_create_request(data: Any) -> str:
    """The optional body of a create, ``{"scheme": ...}``: the scheme (``taskhub`` when
    the body leaves it out)."""
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object")
    for key in data:
        if key != "scheme":
            raise ValidationError(str(key), "unknown field")
    return parse_scheme(data.get("scheme", signing.Scheme.TASKHUB.value))


def create_secret(
    conn: Connection,
    tenant: str,
    now: datetime,
    settings: Settings,
    scheme: str = signing.Scheme.TASKHUB.value,
) -> tuple[str, SigningSecret]:
    """A new active secret of ``scheme`` for ``tenant``: the plaintext (never obtainable
    again) and its public fields. A third active secret of one scheme is a
    :class:`Conflict`: revoke one first. A scheme unknown is a :class:`ValidationError`,
    checked before anything is written."""
    validate_tenant(tenant)
    scheme = parse_scheme(scheme)
    key_queries.lock_tenant_signing_secrets(conn, tenant)
    if key_queries.count_active_signing_secrets(conn, tenant, scheme) >= MAX_ACTIVE:
        raise Conflict(
            f"the tenant already has {MAX_ACTIVE} active {scheme} signing secrets (the most "
            "at once, for rotation): revoke the old one first",
            "tenant",
        )
    secret = (
        standard_webhooks.new_secret()
        if scheme == signing.Scheme.STANDARD_WEBHOOKS
        else signing.new_secret()
    )
    row = key_queries.insert_signing_secret(
        conn,
        {
            "id": uuid.uuid4(),
            "tenant": tenant,
            "scheme": scheme,
            "sealed_secret": sealer_for(settings).seal(secret),
            "hint": signing.hint(secret),
            "created_at": now,
        },
    )
    return secret, _secret(row)


def list_secrets(conn: Connection, tenant: str | None = None) -> list[SigningSecret]:
    """Secrets, newest first, revoked ones included (with ``revoked_at``)."""
    if tenant is not None:
        validate_tenant(tenant)
    return [_secret(row) for row in key_queries.list_signing_secrets(conn, tenant)]


def revoke_secret(
    conn: Connection, secret_id: str | uuid.UUID, now: datetime, tenant: str | None = None
) -> SigningSecret:
    """Revoke a secret (idempotent: a revoked one keeps its first ``revoked_at``). Another
    tenant's id is :class:`NotFound`, exactly like a missing one."""
    try:
        key = secret_id if isinstance(secret_id, uuid.UUID) else uuid.UUID(str(secret_id))
    except ValueError:
        raise NotFound("no such signing secret") from None
    row = key_queries.get_signing_secret_public(conn, key, tenant)
    if row is None:
        raise NotFound("no such signing secret")
    if row["revoked_at"] is None:
        key_queries.lock_tenant_signing_secrets(conn, row["tenant"])
        key_queries.revoke_signing_secret(conn, key, now)
        row = key_queries.get_signing_secret_public(conn, key, tenant)
        assert row is not None
    return _secret(row)
