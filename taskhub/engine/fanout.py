"""Turning claimed requests into Celery canvases: one flat chord per chunk.

``chord(group(fire_triggers.s(message) ...), record_chunk.s(chunk_id))``: every
message carries up to ``triggers_per_message`` requests that one worker fires
concurrently (a Celery task costs milliseconds of worker CPU, an HTTP request through a
pooled async client a fraction of one), and is cut by size to stay far below any
broker's message limit. The callback writes the chunk's outcomes in one transaction.

Each request is serialised once, by Celery: its size is bounded from its fields
(:func:`message_bytes`), not measured by encoding it a first time.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from celery import chord, group

from taskhub.core.chunking import chunks, pack
from taskhub.core.settings import Settings
from taskhub.engine.firing import TriggerRequest


def json_str_bytes(text: str) -> int:
    """Exactly ``len(json.dumps(text))``, without encoding the common case (plain ASCII).

    JSON escapes, in ASCII, ``"``, ``\\`` and what is not printable (the controls and
    DEL): three C-speed checks, cheaper than a regular expression's search."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text))


_LONGEST_TIME: Final = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_STRINGS: Final = 6  # task_id, idempotency_key, url, method, body, sealed_headers
#: A message with every string empty, both integers 0, a timeout of 0.0 and its instants
#: at their longest ISO 8601 form: what every message has besides its variable parts.
_BASE: Final = len(
    json.dumps(
        TriggerRequest(
            execution_id=0,
            attempt=0,
            task_id="",
            scheduled_for=_LONGEST_TIME,
            idempotency_key="",
            url="",
            method="",
            headers={},
            body="",
            timeout_s=0.0,
            send_by=_LONGEST_TIME,
            sealed_headers="",
        ).to_message()
    )
) - (2 * _STRINGS + len("0") + len("0") + len("0.0"))
_NOT_BEFORE: Final = len(', "not_before": ') + len(json.dumps(_LONGEST_TIME.isoformat()))


def float_bytes(value: float) -> int:
    """Exactly ``len(json.dumps(value))``: JSON writes a finite float as its ``repr``."""
    if math.isfinite(value):
        return len(repr(float(value)))
    return len(json.dumps(value))


def _optional_str_bytes(text: str | None) -> int:
    return 4 if text is None else json_str_bytes(text)  # null


def message_bytes(request: TriggerRequest) -> int:
    """An upper bound of the request's JSON size (``to_message``, ASCII-escaped), within
    a few bytes of it: enough to cut messages by size, at a fraction of encoding it."""
    size = _BASE + len(str(request.execution_id)) + len(str(request.attempt))
    size += float_bytes(request.timeout_s)
    size += json_str_bytes(request.task_id) + json_str_bytes(request.idempotency_key)
    size += json_str_bytes(request.url) + json_str_bytes(request.method)
    size += _optional_str_bytes(request.body) + _optional_str_bytes(request.sealed_headers)
    # Each item with its separator: "key": "value", (the last has none: a bound).
    size += sum(json_str_bytes(k) + json_str_bytes(v) + 4 for k, v in request.headers.items())
    size += sum(json_str_bytes(s) + 2 for s in request.sealed_signing_secrets)
    if request.not_before is not None:
        size += _NOT_BEFORE
    if request.tenant is not None:
        size += len(', "tenant": ') + json_str_bytes(request.tenant)
    if request.rate_limit is not None:
        limit = request.rate_limit
        size += len(', "rate_limit": [, ]') + len(json.dumps(limit.max_in_flight))
        size += len(json.dumps(limit.per_second))
    return size


def _argsrepr(requests: Sequence[TriggerRequest]) -> str:
    """What Flower and task events show of a message: its size and executions, instead of
    a repr of every request (which Celery would otherwise compute for each message)."""
    return f"({len(requests)} requests: executions {requests[0].execution_id}..)"


def build_chords(
    requests: Sequence[TriggerRequest], settings: Settings, fire: Any, record: Any
) -> list[chord]:
    """``fire`` and ``record`` are the Celery tasks (passed in, so this module does not
    import the app and tests can inspect the canvas)."""
    canvases: list[chord] = []
    for chunk in chunks(requests, settings.chunk_size):
        messages = pack(
            chunk,
            max_count=settings.triggers_per_message,
            max_bytes=settings.max_message_bytes,
            size_of=message_bytes,
        )
        header = group(
            fire.s([r.to_message() for r in message]).set(argsrepr=_argsrepr(message))
            for message in messages
        )
        canvases.append(chord(header, record.s(chunk_id=str(uuid.uuid4()))))
    return canvases
