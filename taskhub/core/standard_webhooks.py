"""Standard Webhooks (https://www.standardwebhooks.com): the ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` headers, made and checked. Pure.

The scheme of Svix, Zapier, Twilio, Supabase, ngrok and others, so a receiver can verify
taskhub's requests with a library it may already use (``standardwebhooks`` on PyPI, npm,
Go, ...). ``webhook-signature`` is a space-separated list of ``v1,<base64>``, one per
active secret of the scheme (two during a rotation), each ``HMAC-SHA256(key,
f"{id}.{timestamp}." + body)`` over the exact body bytes sent. A secret is
``whsec_<base64 of SECRET_BYTES random bytes>``; the key is the base64-decoded part,
not the text (unlike ``signing``'s ``X-Taskhub-Signature``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "HEADERS",
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "key_of",
    "new_secret",
    "sign",
    "signed_headers",
    "verify",
]

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
#: Lower case: a task's own header of one of these names is dropped when taskhub sets it.
HEADERS: Final = frozenset({ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER})

SECRET_PREFIX: Final = "whsec_"
#: The spec asks for 24 to 64 random bytes; 32 is the key size of HMAC-SHA256.
SECRET_BYTES: Final = 32
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
VERSION: Final = "v1"


def new_secret() -> str:
    """``whsec_`` + 32 random bytes, standard base64 (as the reference libraries read it)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key of ``secret``: its base64 part decoded. ValueError if it is not
    ``whsec_`` and base64 of 24 to 64 bytes (a secret taskhub made always is)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is whsec_ and base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"a Standard Webhooks key has {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(mac).decode('ascii')}"


def sign(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    return " ".join(_signature(key_of(s), msg_id, int(timestamp), body) for s in secrets_)


def signed_headers(
    secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of a request sent at ``timestamp`` (unix seconds)."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: sign(secrets_, msg_id, timestamp, body),
    }


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets_: Iterable[str],
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True if ``headers`` (any case) sign ``body`` with one of ``secrets_`` and their
    timestamp is within ``tolerance_s`` of ``now`` (default: this clock). Anything
    malformed is False, never an exception; every comparison is constant-time. What a
    receiver runs, for taskhub's own tests; receivers are better served by the
    reference library."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    stamp = lowered.get(TIMESTAMP_HEADER)
    signature = lowered.get(SIGNATURE_HEADER)
    if not (isinstance(msg_id, str) and isinstance(stamp, str) and isinstance(signature, str)):
        return False
    if not msg_id or len(signature) > 4096 or not (stamp.isascii() and stamp.isdigit()):
        return False
    if len(stamp) > 15:  # unix seconds have 10 digits until 2286
        return False
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if not abs(current - timestamp) <= tolerance_s:
        return False
    candidates = [c.encode("utf-8", "replace") for c in signature.split(" ") if c]
    matched = False
    for secret in secrets_:
        try:
            key = key_of(secret)
        except ValueError:
            continue
        expected = _signature(key, msg_id, timestamp, body).encode("ascii")
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)  # every pair compared
    return matched
