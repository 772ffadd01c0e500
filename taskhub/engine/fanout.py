"""Turning claimed requests into Celery canvases: one flat chord per chunk.

``chord(group(fire_triggers.s(message) ...), record_chunk.s(chunk_id))``: every
message carries up to ``triggers_per_message`` requests that one worker fires
concurrently (a Celery task costs milliseconds of worker CPU, an HTTP request through a
pooled async client a fraction of one), and is cut by size to stay far below any
broker's message limit. The callback writes the chunk's outcomes in one transaction.

Each request is serialised once, by Celery: its size is bounded from its fields
(``taskhub.core.messages.message_bytes``), not measured by encoding it a first time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from celery import chord, group

from taskhub.core.chunking import chunks, pack
from taskhub.core.messages import TriggerRequest, message_bytes
from taskhub.core.settings import Settings


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
