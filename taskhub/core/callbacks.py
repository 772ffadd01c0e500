"""A task's callback: a signed POST of an execution's outcome once it has ended.

``"callback": {"url": "https://…", "on": ["success", "failure", "dead"]}`` on a task;
``on`` names the endings that are reported (``success``: the execution ended
``succeeded``, ``failure``: ``failed``, ``dead``: attempts exhausted, a dead letter) and
defaults to all three, as a QStash user, who gives a callback and a failure callback,
hears of every ending. The document posted, the delivery's retry schedule and its
lease are decided here, in one place.

Pure: no database, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from taskhub.core import limits
from taskhub.core.addresses import AddressPolicy, TargetURLError, parse_target_url, target_refusal
from taskhub.core.errors import ValidationError
from taskhub.core.fields import object_of
from taskhub.core.messages import as_utc
from taskhub.core.statuses import CallbackStatus, ExecutionStatus

#: The endings a callback may report, as ``on`` names them.
SUCCESS: Final = "success"
FAILURE: Final = "failure"
DEAD: Final = "dead"
EVENTS: Final = (SUCCESS, FAILURE, DEAD)
#: ``on`` left out: every ending is reported.
DEFAULT_ON: Final = EVENTS
CALLBACK_FIELDS: Final = ("url", "on")

#: The event of each terminal execution status.
EVENT_OF_STATUS: Final[Mapping[str, str]] = {
    ExecutionStatus.SUCCEEDED.value: SUCCESS,
    ExecutionStatus.FAILED.value: FAILURE,
    ExecutionStatus.DEAD.value: DEAD,
}

#: The keys of the document posted, exactly these.
DOCUMENT_KEYS: Final = (
    "task_id",
    "execution_id",
    "scheduled_for",
    "status",
    "attempts",
    "http_status",
    "duration_ms",
    "response_excerpt",
)

# --- a delivery's budget: every constant of the sender ----------------------------------

#: Attempts one delivery makes before it is recorded ``failed``.
MAX_ATTEMPTS: Final = 3
#: The wait after the first failed attempt; each later wait doubles it.
BACKOFF_S: Final = 5.0
#: The longest wait between two attempts.
MAX_BACKOFF_S: Final = 60.0
#: One attempt's timeout (connect, response and body).
TIMEOUT_S: Final = 10.0
#: How long a sender holds a delivery it took: another sender takes it again only after
#: this (its first sender died between sending and recording). Longer than an attempt.
LEASE_S: Final = 60.0
#: Deliveries a sender takes at a time, and sends at once.
BATCH_SIZE: Final = 8
#: How often a sender looks for due deliveries.
POLL_INTERVAL_S: Final = 1.0
#: Error kinds that no retry can change (the URL is refused as it stands).
PERMANENT_ERROR_KINDS: Final = frozenset({"blocked_address", "invalid_request"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Callback:
    url: str
    on: tuple[str, ...] = DEFAULT_ON

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "on": list(self.on)}

    def reports(self, status: str) -> bool:
        """Whether an execution that ended ``status`` is reported."""
        return EVENT_OF_STATUS.get(status) in self.on


def callback_of(value: Mapping[str, Any] | None) -> Callback | None:
    """A stored callback (``to_dict``'s shape) as a value; None: the task has none."""
    if not value:
        return None
    return Callback(str(value["url"]), tuple(value.get("on") or DEFAULT_ON))


def parse_callback(value: Any, address_policy: AddressPolicy | None = None) -> Callback | None:
    """A task's ``callback``; null or left out: none. The URL is checked as a target URL
    is (``address_policy`` refuses an IP-literal host in a blocked address class and a
    port not allowed; a host name is checked when it resolves, at send time)."""
    if value is None:
        return None
    data = object_of(value, "callback", CALLBACK_FIELDS)
    url = data.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("callback.url", "is required")
    if len(url) > limits.MAX_URL_CHARS:
        raise ValidationError("callback.url", f"at most {limits.MAX_URL_CHARS} characters")
    if _CONTROL.search(url) or " " in url:
        raise ValidationError("callback.url", "must not contain spaces or control characters")
    try:
        target = parse_target_url(url)
    except TargetURLError as error:
        raise ValidationError("callback.url", error.message) from None
    if address_policy is not None:
        refusal = target_refusal(target, address_policy)
        if refusal is not None:
            raise ValidationError("callback.url", refusal)
    return Callback(url, parse_on(data.get("on")))


def parse_on(value: Any) -> tuple[str, ...]:
    """``on``: a non-empty list of events, each once, kept in :data:`EVENTS`' order."""
    if value is None:
        return DEFAULT_ON
    if not isinstance(value, list) or not value:
        raise ValidationError("callback.on", f"must be a non-empty list of {', '.join(EVENTS)}")
    for item in value:
        if item not in EVENTS:
            shown = repr(item[:40]) if isinstance(item, str) else "a non-string"
            raise ValidationError(
                "callback.on", f"holds {shown}: each must be one of {', '.join(EVENTS)}"
            )
    return tuple(event for event in EVENTS if event in value)


def document(
    *,
    task_id: str,
    execution_id: int,
    scheduled_for: datetime,
    status: str,
    attempts: int,
    http_status: int | None,
    duration_ms: int | None,
    response_excerpt: str | None,
) -> dict[str, Any]:
    """The JSON document a callback posts: exactly :data:`DOCUMENT_KEYS`."""
    return {
        "task_id": task_id,
        "execution_id": execution_id,
        "scheduled_for": as_utc(scheduled_for).isoformat(),
        "status": status,
        "attempts": attempts,
        "http_status": http_status,
        "duration_ms": duration_ms,
        "response_excerpt": response_excerpt,
    }


def retry_in_s(attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, …) before the next one."""
    return min(MAX_BACKOFF_S, BACKOFF_S * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class Verdict:
    """What one attempt leaves a delivery as: its status, and when to try again (only
    while ``pending``)."""

    status: CallbackStatus
    retry_in_s: float | None = None


def judge(attempt: int, http_status: int | None, error_kind: str | None) -> Verdict:
    """A 2xx delivers; anything else is tried again after :func:`retry_in_s` until
    :data:`MAX_ATTEMPTS` attempts, or at once recorded ``failed`` when no retry can
    change it (:data:`PERMANENT_ERROR_KINDS`)."""
    if http_status is not None and 200 <= http_status < 300:
        return Verdict(CallbackStatus.DELIVERED)
    if error_kind in PERMANENT_ERROR_KINDS or attempt >= MAX_ATTEMPTS:
        return Verdict(CallbackStatus.FAILED)
    return Verdict(CallbackStatus.PENDING, retry_in_s(attempt))


def idempotency_key(delivery_id: int) -> str:
    """The ``Idempotency-Key`` (and ``webhook-id``) of every attempt of one delivery:
    unique to it, the same on each of its attempts."""
    return f"taskhub-callback-{delivery_id}"
