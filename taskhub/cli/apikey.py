"""``taskhub apikey``: the API keys that let their holders use the REST API."""

from __future__ import annotations

from datetime import datetime

import click
from sqlalchemy.engine import Connection

from taskhub.cli.common import NotFoundError
from taskhub.cli.shown_once import Kind, add_commands
from taskhub.service import apikeys


@click.group("apikey")
def apikey_group() -> None:
    """API keys: each lets its holder use the REST API as one tenant."""


def _revoke(conn: Connection, key_id_or_prefix: str, now: datetime) -> apikeys.ApiKey:
    key = apikeys.revoke_key(conn, key_id_or_prefix, now)
    if key is None:
        # A whole key may have been pasted: never echo its secret.
        pasted_key = key_id_or_prefix.count("_") >= 2
        shown = apikeys.mask(key_id_or_prefix) if pasted_key else key_id_or_prefix[:40]
        raise NotFoundError(f"no API key with id or prefix {shown!r}")
    return key


def _revoked(key: apikeys.ApiKey) -> str:
    when = key.revoked_at.isoformat() if key.revoked_at else ""
    return f"{key.masked} (id {key.id}, tenant {key.tenant!r}) at {when}"


add_commands(
    apikey_group,
    Kind(
        create=apikeys.create_key,
        listing=apikeys.list_keys,
        revoke=_revoke,
        columns=["id", "prefix", "tenant", "created_at", "last_used_at", "revoked_at"],
        created=lambda key: (
            f"API key {key.masked} (id {key.id}) for tenant {key.tenant!r}: "
            "store it now, it is not shown again."
        ),
        revoked=_revoked,
        create_help=(
            """Print a new API key for TENANT (only the key, on standard output).

    The key is shown this once; only its digest is stored.""",
            "The tenant the key acts as.",
        ),
        list_help=("API keys, newest first (never their secrets).", "Only this tenant's keys."),
        revoke_help=(
            "Revoke a key, by its id or its prefix: it stops working at once.",
            "key_id_or_prefix",
        ),
    ),
)
