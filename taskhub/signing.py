"""Signed requests: the ``X-Taskhub-Signature`` header, made and checked. Pure.

``X-Taskhub-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``, one ``v1`` per active
signing secret of the task's tenant, each ``HMAC-SHA256(secret, f"{t}." + body)`` over
the exact body bytes sent (empty when there is none). The key is the whole secret text,
``whsec_...`` included, as UTF-8. Two ``v1`` values let a tenant rotate: create the new
secret, move receivers to it, revoke the old one. :func:`verify` is what a receiver runs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Final

__all__ = ["HEADER", "SECRET_PREFIX", "hint", "new_secret", "sign", "verify"]

HEADER: Final = "X-Taskhub-Signature"
SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
DEFAULT_TOLERANCE_S: Final = 300
#: A header longer than this is not one taskhub sent (two v1 values take ~150 bytes).
_MAX_HEADER_CHARS: Final = 4096


def new_secret() -> str:
    """``whsec_`` + 32 random bytes, urlsafe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hint(secret: str) -> str:
    """Enough to tell two secrets apart in a listing, never enough to sign."""
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secrets_: Iterable[str], body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    parts = [f"t={int(timestamp)}"]
    parts.extend(f"v1={_mac(secret, int(timestamp), body)}" for secret in secrets_)
    return ",".join(parts)


def _parse(header: str) -> tuple[int, list[str]] | None:
    if not isinstance(header, str) or len(header) > _MAX_HEADER_CHARS:
        return None
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return None
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        return None
    return timestamp, macs


def verify(
    header: str,
    body: bytes,
    secrets_: Iterable[str],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True if ``header`` signs ``body`` with one of ``secrets_`` and its timestamp is
    within ``tolerance_s`` of ``now`` (either way). Malformed input is False, never an
    exception. Every comparison is constant-time."""
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, macs = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    matched = False
    for secret in secrets_:
        expected = _mac(secret, timestamp, body).encode("ascii")
        for candidate in macs:
            # Not short-circuited: every pair is compared.
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8"))
    return matched
