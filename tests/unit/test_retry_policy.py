from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.retry_policy import RetryPolicy, backoff_s, decide
from taskhub.core.statuses import ExecutionStatus

POLICY = RetryPolicy(max_attempts=3, backoff_seconds=10, max_backoff_seconds=600)


@pytest.mark.parametrize(
    ("http_status", "error_kind", "attempt", "expected"),
    [
        (200, None, 1, ExecutionStatus.SUCCEEDED),
        (204, None, 3, ExecutionStatus.SUCCEEDED),
        (299, None, 1, ExecutionStatus.SUCCEEDED),
        (500, None, 1, ExecutionStatus.QUEUED),
        (503, None, 2, ExecutionStatus.QUEUED),
        (503, None, 3, ExecutionStatus.DEAD),
        (408, None, 1, ExecutionStatus.QUEUED),
        (429, None, 1, ExecutionStatus.QUEUED),
        (429, None, 3, ExecutionStatus.DEAD),
        (404, None, 1, ExecutionStatus.FAILED),
        (400, None, 1, ExecutionStatus.FAILED),
        (401, None, 2, ExecutionStatus.FAILED),
        (301, None, 1, ExecutionStatus.FAILED),
        (None, "timeout", 1, ExecutionStatus.QUEUED),
        (None, "connection", 2, ExecutionStatus.QUEUED),
        (None, "dns", 1, ExecutionStatus.QUEUED),
        (None, "timeout", 3, ExecutionStatus.DEAD),
        (None, "blocked_address", 1, ExecutionStatus.FAILED),
        (None, "invalid_request", 1, ExecutionStatus.FAILED),
    ],
)
def test_decision_table(
    http_status: int | None, error_kind: str | None, attempt: int, expected: ExecutionStatus
) -> None:
    decision = decide(
        attempt=attempt,
        http_status=http_status,
        error_kind=error_kind,
        retry_after_s=None,
        policy=POLICY,
        rand=0.5,
    )
    assert decision.status is expected
    assert (decision.retry_in_s is not None) == (expected is ExecutionStatus.QUEUED)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.0, 5.0),
        (1, 1.0, 10.0),
        (2, 0.0, 10.0),
        (2, 1.0, 20.0),
        (3, 0.5, 30.0),
        (10, 1.0, 600.0),
        (10, 0.0, 300.0),
        (200, 1.0, 600.0),
    ],
)
def test_backoff_doubles_with_equal_jitter_and_is_capped(
    attempt: int, rand: float, expected: float
) -> None:
    assert backoff_s(attempt, POLICY, rand) == pytest.approx(expected)


def test_retry_after_only_lengthens_and_is_capped() -> None:
    def wait(retry_after: float | None) -> float | None:
        return decide(
            attempt=1,
            http_status=429,
            error_kind=None,
            retry_after_s=retry_after,
            policy=POLICY,
            rand=1.0,
            retry_after_cap_s=3600,
        ).retry_in_s

    assert wait(None) == 10.0
    assert wait(1.0) == 10.0
    assert wait(120.0) == 120.0
    assert wait(10**9) == 3600.0


@given(
    attempt=st.integers(min_value=1, max_value=100),
    rand=st.floats(min_value=0, max_value=1),
    base=st.floats(min_value=0, max_value=1e4),
    cap=st.floats(min_value=0, max_value=1e5),
)
def test_backoff_stays_within_half_to_full_nominal(
    attempt: int, rand: float, base: float, cap: float
) -> None:
    policy = RetryPolicy(5, base, cap)
    nominal = min(base * 2 ** (attempt - 1), cap)
    delay = backoff_s(attempt, policy, rand)
    assert nominal / 2 - 1e-9 <= delay <= nominal + 1e-9


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        backoff_s(0, POLICY, 0.5)
    with pytest.raises(ValueError):
        backoff_s(1, POLICY, 1.5)
