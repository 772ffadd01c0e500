"""The pure counting rules: histogram buckets, outcomes, and what a write-back counts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from taskhub.observability import counters

DUE = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@given(
    st.lists(st.floats(min_value=0, max_value=10_000, allow_nan=False), max_size=50),
    st.booleans(),
)
def test_histogram_buckets_are_cumulative_and_end_at_the_count(
    values: list[float], one_by_one: bool
) -> None:
    increments: counters.Increments = {}
    if one_by_one:  # a value at a time, or all at once: the same counts
        for value in values:
            counters.observe(increments, "h", [value], counters.FIRE_LAG_BUCKETS_S)
    else:
        counters.observe(increments, "h", values, counters.FIRE_LAG_BUCKETS_S)
    buckets = sorted(
        (float(counters.parse_labels(labels)["le"]), amount)
        for (name, labels), amount in increments.items()
        if name == "h_bucket"
    )
    counts = [amount for _, amount in buckets]
    assert counts == sorted(counts)
    if values:
        assert buckets[-1] == (math.inf, len(values))
        assert increments[("h_count", "")] == len(values)
        assert math.isclose(increments[("h_sum", "")], sum(values))
        for bound, amount in buckets:
            assert amount == sum(1 for v in values if v <= bound)


def test_outcomes() -> None:
    assert counters.attempt_outcome(204, None) == "success"
    assert counters.attempt_outcome(302, None) == "http_3xx"
    assert counters.attempt_outcome(404, None) == "http_4xx"
    assert counters.attempt_outcome(503, None) == "http_5xx"
    assert counters.attempt_outcome(None, "timeout") == "timeout"


def measure(
    attempt: int, status: str, lag_s: float = 1.5, http: int | None = 200
) -> counters.AttemptMeasure:
    return counters.AttemptMeasure(
        attempt=attempt,
        scheduled_for=DUE,
        started_at=DUE + timedelta(seconds=lag_s),
        duration_ms=250,
        http_status=http,
        error_kind=None,
        status=status,
        first=attempt == 1,
    )


def test_fire_lag_counts_first_attempts_only_and_retries_are_counted() -> None:
    increments = counters.for_attempts(
        [
            measure(1, "queued", http=503),
            measure(2, "succeeded", lag_s=30),
            measure(1, "failed", http=404),
        ]
    )
    assert increments[("taskhub_fire_lag_seconds_count", "")] == 2
    assert increments[("taskhub_fire_lag_seconds_sum", "")] == 3.0
    assert increments[("taskhub_target_latency_seconds_count", "")] == 3
    assert increments[("taskhub_retries_scheduled_total", "")] == 1
    finished = "taskhub_executions_finished_total"
    assert increments[(finished, counters.labels(status="succeeded"))] == 1
    assert increments[(finished, counters.labels(status="failed"))] == 1


def test_every_stored_sample_names_a_known_family() -> None:
    increments = counters.for_tick(0.2) | counters.for_claim(True, 3) | counters.for_claim(False, 1)
    increments |= counters.for_attempts([measure(1, "succeeded")])
    assert {counters.family_of(name) for name, _ in increments} <= set(counters.FAMILIES)
    assert counters.for_claim(True, 0) == {}
