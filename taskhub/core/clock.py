"""The one wall clock of taskhub: every "now" that is not given by a caller comes from
here, so that a test or a benchmark can hand a process another clock in one place."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (never a naive ``datetime``)."""
    return datetime.now(UTC)
