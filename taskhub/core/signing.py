"""Signed requests: the ``X-Taskhub-Signature`` header, made and checked. Pure.

``X-Taskhub-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``, one ``v1`` per active
signing secret of the task's tenant, each ``HMAC-SHA256(secret, f"{t}." + body)`` over
the exact body bytes sent (empty when there is none). The key is the whole secret text,
``whsec_...`` included, as UTF-8. Two ``v1`` values let a tenant rotate: create the new
secret, move receivers to it, revoke the old one. :func:`verify` is what a receiver runs.

A secret has a :class:`Scheme`: this one (``taskhub``, the default) or
``standard-webhooks`` (the ``webhook-*`` headers, made by ``standard_webhooks``). An
attempt carries the headers of each scheme its tenant has active secrets of.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

__all__ = ["HEADER", "SCHEMES", "SECRET_PREFIX", "Scheme", "hint", "new_secret", "sign", "verify"]

HEADER: Final = "X-Taskhub-Signature"
SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32


class Scheme(StrEnum):
    """How a signing secret signs: the headers it puts on each attempt."""

    #: ``X-Taskhub-Signature`` (this module).
    TASKHUB = "taskhub"
    #: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (``standard_webhooks``).
    STANDARD_WEBHOOKS = "standard-webhooks"


#: The schemes as the API spells them, in the order an error message lists them.
SCHEMES: Final = tuple(s.value for s in Scheme)


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


def verify(
    header: str,
    body: bytes,
    secrets: Iterable[str],
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True if ``header`` (X-Taskhub-Signature) signs ``body`` with one of ``secrets``
    and its ``t`` is within ``tolerance_s`` seconds of ``now`` (default: this clock),
    either way. Anything malformed is False, never an exception; every comparison is
    constant-time. Standard library only, so a receiver may copy it as it is."""
    if not isinstance(header, str) or len(header) > 4096:  # two v1 values take ~150
        return False
    stamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            # ASCII digits, and few of them: int() raises on "²" and on 5,000 digits,
            # and no float holds 400 (unix seconds have 10 digits until 2286).
            digits = value.isascii() and value.isdigit() and len(value) <= 15
            if stamp is not None or not digits:
                return False
            stamp = int(value)
        elif key == "v1":
            candidates.append(value.encode("utf-8", "replace"))
    if stamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if not abs(current - stamp) <= tolerance_s:
        return False
    signed = f"{stamp}.".encode("ascii") + body
    matched = False
    for secret in secrets:
        mac = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
        for candidate in candidates:
            # Not short-circuited: every pair is compared.
            matched |= hmac.compare_digest(mac.encode("ascii"), candidate)
    return matched
