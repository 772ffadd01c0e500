"""What to do after an attempt: succeed, retry later, or give up.

Pure functions: the caller passes the random number, so every decision is
reproducible in tests. The rule: 2xx succeeds; 408, 429 (honouring ``Retry-After``), 5xx,
timeouts and connection errors are retried with exponential backoff and jitter up to
``max_attempts``; any other status fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskhub.core import limits
from taskhub.core.statuses import ExecutionStatus

RETRYABLE_STATUSES = frozenset({408, 429})
#: ``410 Gone``: fails at once like any other 4xx, and pauses its task (the write-back:
#: ``paused_by`` ``target_gone``), as Standard Webhooks asks of a sender.
GONE = 410
#: Failures before any response that are worth another attempt. A blocked address or an
#: invalid request will not get better by waiting; a worker that cannot unseal the
#: request's credentials ("configuration", e.g. mid key rotation) may be replaced by one
#: that can.
RETRYABLE_ERROR_KINDS = frozenset({"timeout", "connection", "dns", "tls", "configuration"})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = limits.DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float = limits.DEFAULT_BACKOFF_S
    max_backoff_seconds: float = limits.DEFAULT_MAX_BACKOFF_S


@dataclass(frozen=True)
class Decision:
    """The execution's next status; ``retry_in_s`` is set only when it is ``queued``."""

    status: ExecutionStatus
    retry_in_s: float | None = None


def is_success(http_status: int | None) -> bool:
    return http_status is not None and 200 <= http_status < 300


def is_retryable(http_status: int | None, error_kind: str | None) -> bool:
    if http_status is None:
        return error_kind in RETRYABLE_ERROR_KINDS
    return http_status in RETRYABLE_STATUSES or 500 <= http_status < 600


def backoff_s(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Exponential backoff with "equal jitter" after attempt number ``attempt`` (1-based).

    Half the capped exponential delay is kept, the other half is random, so retries of
    many executions that failed together spread out but never come back sooner than half
    the nominal delay.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if not 0.0 <= rand <= 1.0:
        raise ValueError("rand must be in [0, 1]")
    # 2.0**1023 is the largest finite power; a product past float range is inf, which
    # the cap then bounds, so no attempt number can overflow or under-delay.
    growth = 2.0 ** min(attempt - 1, 1023)
    nominal = min(policy.backoff_seconds * growth, policy.max_backoff_seconds)
    return nominal / 2.0 + rand * nominal / 2.0


def decide(
    *,
    attempt: int,
    http_status: int | None,
    error_kind: str | None,
    retry_after_s: float | None,
    policy: RetryPolicy,
    rand: float,
    retry_after_cap_s: float = 3600.0,
) -> Decision:
    """The status an execution takes after attempt number ``attempt`` ended this way.

    ``Retry-After`` can only lengthen the wait (never below our own backoff), and is
    capped so that a hostile or mistaken header cannot park an execution for days.
    """
    if is_success(http_status):
        return Decision(ExecutionStatus.SUCCEEDED)
    if not is_retryable(http_status, error_kind):
        return Decision(ExecutionStatus.FAILED)
    if attempt >= policy.max_attempts:
        return Decision(ExecutionStatus.DEAD)
    delay = backoff_s(attempt, policy, rand)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, retry_after_cap_s))
    return Decision(ExecutionStatus.QUEUED, retry_in_s=delay)
