"""Cutting claimed occurrences into chords and messages.

A chunk is one chord (its callback writes the chunk's state in one transaction); a
message is one trigger task inside it, carrying several requests that one worker fires
concurrently. Messages are also cut by size so that none comes near a broker's limit
(SQS: 1 MiB after kombu's base64).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def pack(
    items: Sequence[T], *, max_count: int, max_bytes: int, size_of: Callable[[T], int]
) -> list[list[T]]:
    """Greedy, order-keeping packing into lists of at most ``max_count`` items and
    ``max_bytes`` total; an item larger than ``max_bytes`` travels alone."""
    if max_count < 1 or max_bytes < 1:
        raise ValueError("max_count and max_bytes must be at least 1")
    packed: list[list[T]] = []
    current: list[T] = []
    current_bytes = 0
    for item in items:
        item_bytes = size_of(item)
        if current and (len(current) >= max_count or current_bytes + item_bytes > max_bytes):
            packed.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += item_bytes
    if current:
        packed.append(current)
    return packed
