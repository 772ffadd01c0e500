"""Opaque cursors for keyset paging.

A cursor holds the sort key of the last row a page returned; the next page starts
strictly after it. Rows inserted or deleted meanwhile shift nothing, so paging neither
skips nor repeats a row that exists throughout.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from taskhub.core.errors import ValidationError

MIN_LIMIT = 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode(key: list[Any]) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, length: int) -> list[Any]:
    """The sort key inside ``cursor``; anything else is a clear error, never a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        raise ValidationError("cursor", "is not a cursor this API returned") from None
    if not isinstance(key, list) or len(key) != length:
        raise ValidationError("cursor", "is not a cursor this API returned")
    return key


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be between {MIN_LIMIT} and {MAX_LIMIT}")
    return limit
