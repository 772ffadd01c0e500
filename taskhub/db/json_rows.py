"""Rows sent to PostgreSQL as one JSON parameter (read by ``json_to_recordset``): the
hot writes' way of sending a thousand rows in one statement, without a placeholder per
value to build and parse."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


def encode_plain(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as one JSON parameter for ``json_to_recordset``: one string, encoded in C,
    where arrays (``unnest``) cost psycopg a Python call per element to dump. The values
    are plain JSON values already (instants as text, see :func:`instant_text`); flat
    rows, so no cycle to look for."""
    return json.dumps(rows, separators=(",", ":"), check_circular=False)


@functools.lru_cache(maxsize=4096)
def instant_text(value: datetime | None) -> str | None:
    """:func:`json_value`'s text of an instant, each distinct instant converted once (a
    claim's rows share their due times, leases and ``now``)."""
    return None if value is None else str(json_value(value))


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            return value.isoformat()
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: taskhub stores aware instants only")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as a JSON row")
