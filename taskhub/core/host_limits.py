"""A target host's budget (requests in flight, requests per second): the pure rules.

How a budget is parsed from ``TASKHUB_HOST_LIMITS``, combined with a task's own
``rate_limit``, and how a token bucket refills; counting slots across processes is
``taskhub.engine.flow_control``'s business.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class HostLimit:
    """A host's budget; None means no limit of that kind."""

    max_in_flight: int | None = None
    per_second: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_in_flight is None and self.per_second is None


_N = TypeVar("_N", int, float)


def _tighter(a: _N | None, b: _N | None) -> _N | None:
    return b if a is None else a if b is None else min(a, b)


def combine(host: HostLimit | None, task: HostLimit | None) -> HostLimit:
    """The limit one request obeys: the tighter of its host's setting and its task's."""
    host = host or HostLimit()
    task = task or HostLimit()
    return HostLimit(
        _tighter(host.max_in_flight, task.max_in_flight),
        _tighter(host.per_second, task.per_second),
    )


def parse_host_limits(text: str) -> dict[str, HostLimit]:
    """``TASKHUB_HOST_LIMITS``: ``host=IN_FLIGHT/PER_SECOND`` items, comma-separated;
    either number may be left out (``a.example=5``, ``b.example=/20``). Raises
    ValueError naming the item."""
    limits: dict[str, HostLimit] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, spec = item.partition("=")
        host = host.strip().lower()
        if not sep or not host:
            raise ValueError(f"{item!r} is not host=IN_FLIGHT/PER_SECOND")
        in_flight_text, _, rate_text = spec.partition("/")
        try:
            in_flight = int(in_flight_text) if in_flight_text.strip() else None
            rate = float(rate_text) if rate_text.strip() else None
        except ValueError:
            raise ValueError(f"{item!r}: the limits must be numbers") from None
        if in_flight is not None and in_flight < 1:
            raise ValueError(f"{item!r}: in flight must be at least 1")
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"{item!r}: per second must be a positive number")
        limits[host] = HostLimit(in_flight, rate)
    return limits


@dataclass(frozen=True)
class Bucket:
    """A token bucket's state: ``tokens`` at ``at_s`` (any monotonic clock)."""

    tokens: float
    at_s: float


def take_token(
    bucket: Bucket | None, now_s: float, per_second: float
) -> tuple[bool, Bucket, float]:
    """Try to take one token from a bucket refilled at ``per_second`` and holding at
    most ``max(1, per_second)`` (one second's worth: a burst, not a backlog).

    Returns (taken, the bucket after, seconds until a token will be there if not taken).
    A new bucket starts full.
    """
    capacity = max(1.0, per_second)
    if bucket is None:
        tokens = capacity
    else:
        elapsed = max(0.0, now_s - bucket.at_s)
        tokens = min(capacity, bucket.tokens + elapsed * per_second)
    if tokens >= 1.0:
        return True, Bucket(tokens - 1.0, now_s), 0.0
    return False, Bucket(tokens, now_s), (1.0 - tokens) / per_second


def limit_for(
    host: str, host_limits: Mapping[str, HostLimit], task_limit: HostLimit | None
) -> HostLimit:
    return combine(host_limits.get(host.lower()), task_limit)
