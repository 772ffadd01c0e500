"""The messages between processes: a trigger request out, its outcome back.

A :class:`TriggerRequest` travels from the tick (or the staging loop) through the
broker to a trigger worker; a :class:`TriggerOutcome` travels back to the chord's
write-back. Both cross as plain JSON-able dicts (``to_message``/``from_message``), so
every process reads them the same way whatever serializer the broker uses.
:func:`message_bytes` bounds a request's encoded size without encoding it, to cut
messages by size. Pure values: nothing of HTTP, Celery or the database.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from taskhub.core import host_limits
from taskhub.core.celery_calls import CeleryCall

#: Not an attempt: the request was not sent because its host's budget had no slot.
THROTTLED: Final = "throttled"
ERROR_KINDS: Final = frozenset(
    {
        "timeout",
        "connection",
        "dns",
        "blocked_address",
        "invalid_request",
        "tls",
        "configuration",
        THROTTLED,
    }
)


# --------------------------------------------------------------------------- parsing


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already. Instants claimed from the
    database are UTC already and come back as they are (no conversion per request)."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """``2026-11-22T09:00:00Z`` (fractional seconds only when there are some): how an
    occurrence's due time is written in ``X-Taskhub-Scheduled-For`` and in a Celery
    target's ``taskhub_scheduled_for``."""
    return as_utc(value).replace(tzinfo=None).isoformat() + "Z"


@functools.lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    """ISO 8601 in UTC, each instant converted once: a claim's requests share their
    instants (one ``send_by``, occurrences due at the same second)."""
    return as_utc(value).isoformat()


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value)))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- messages


@dataclass(slots=True)
class TriggerRequest:
    """One attempt to make: the task's HTTP call plus what identifies the attempt.

    Treated as immutable, but not ``frozen``: a frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__``, 2.1 µs a request against 1.0 µs, and a
    tick makes one per occurrence. Change one with ``dataclasses.replace``."""

    execution_id: int
    attempt: int
    task_id: str
    scheduled_for: datetime
    idempotency_key: str
    url: str
    method: str
    headers: Mapping[str, str]
    body: str | None
    timeout_s: float
    #: The end of the dispatch lease's grace for sending: a worker that receives the
    #: message later and cannot take the send in the database (``holders.start``) must
    #: not fire it, because by then the database may have sent the execution again.
    send_by: datetime | None = None
    #: Header values that carry credentials, as one sealed JSON object (``sealing``):
    #: the broker never carries them in plaintext; they are unsealed just before sending.
    sealed_headers: str | None = None
    #: The tenant's active signing secrets of the ``taskhub`` scheme, each sealed; every
    #: attempt then carries an ``X-Taskhub-Signature`` with one ``v1`` per secret, timed
    #: when it is sent.
    sealed_signing_secrets: tuple[str, ...] = ()
    #: Its active ``standard-webhooks`` secrets, each sealed: every attempt then carries
    #: ``webhook-id``, ``webhook-timestamp`` and a ``webhook-signature`` with one ``v1``
    #: per secret (``standard_webhooks``).
    sealed_webhook_secrets: tuple[str, ...] = ()
    #: The task's own flow control (None: only its host's setting applies).
    rate_limit: host_limits.HostLimit | None = None
    #: Published ahead of its send time (``publish_lead_s``): not sent before this.
    not_before: datetime | None = None
    #: The task's tenant: its share of a worker's in-flight slots (``lane_shares``).
    tenant: str | None = None
    #: A Celery target: the Celery task to publish instead of an HTTP call (``url``,
    #: ``method``, ``headers`` and ``body`` are then empty).
    celery: CeleryCall | None = None
    #: The task's overlap policy when it is not ``allow`` (``core.overlap``): its
    #: clearance then decides whether it fires, is skipped or waits. None: ``allow``.
    overlap: str | None = None
    #: The id of the broker message that brought it to this worker (never sent): of two
    #: messages carrying one attempt, only the one that holds it in the database is
    #: cleared to fire it (``withdrawal.clear_to_fire``). None: carried by no message.
    carried_by: str | None = None

    def __post_init__(self) -> None:
        # A private copy, so a caller mutating its dict later cannot change this value.
        self.headers = dict(self.headers)
        if type(self.sealed_signing_secrets) is not tuple:  # a tuple is immutable already
            self.sealed_signing_secrets = tuple(self.sealed_signing_secrets)
        if type(self.sealed_webhook_secrets) is not tuple:
            self.sealed_webhook_secrets = tuple(self.sealed_webhook_secrets)

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "execution_id": self.execution_id,
            "attempt": self.attempt,
            "task_id": self.task_id,
            "scheduled_for": _utc_text(self.scheduled_for),
            "idempotency_key": self.idempotency_key,
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "body": self.body,
            "timeout_s": self.timeout_s,
            "send_by": None if self.send_by is None else _utc_text(self.send_by),
            "sealed_headers": self.sealed_headers,
            "sealed_signing_secrets": list(self.sealed_signing_secrets),
        }
        if self.sealed_webhook_secrets:  # only when set: most messages stay as small
            message["sealed_webhook_secrets"] = list(self.sealed_webhook_secrets)
        if self.not_before is not None:
            message["not_before"] = _utc_text(self.not_before)
        if self.tenant is not None:
            message["tenant"] = self.tenant
        if self.rate_limit is not None:  # only when set: most messages stay as small
            message["rate_limit"] = [self.rate_limit.max_in_flight, self.rate_limit.per_second]
        if self.celery is not None:
            message["celery"] = self.celery.to_dict()
        if self.overlap is not None:  # only when set: most messages stay as small
            message["overlap"] = self.overlap
        return message

    @classmethod
    def from_message(cls, data: Mapping[str, Any], carried_by: str | None = None) -> TriggerRequest:
        headers = data.get("headers") or {}
        limit = data.get("rate_limit")
        return cls(
            execution_id=int(data["execution_id"]),
            attempt=int(data["attempt"]),
            task_id=str(data["task_id"]),
            scheduled_for=_parse_time(data["scheduled_for"]),
            idempotency_key=str(data["idempotency_key"]),
            url=str(data["url"]),
            method=str(data["method"]),
            headers={str(k): str(v) for k, v in dict(headers).items()},
            body=_opt_str(data.get("body")),
            timeout_s=float(data["timeout_s"]),
            send_by=None if data.get("send_by") is None else _parse_time(data["send_by"]),
            sealed_headers=_opt_str(data.get("sealed_headers")),
            sealed_signing_secrets=tuple(str(s) for s in data.get("sealed_signing_secrets") or ()),
            sealed_webhook_secrets=tuple(str(s) for s in data.get("sealed_webhook_secrets") or ()),
            rate_limit=None
            if not limit
            else host_limits.HostLimit(_opt_int(limit[0]), _opt_float(limit[1])),
            not_before=None if not data.get("not_before") else _parse_time(data["not_before"]),
            tenant=_opt_str(data.get("tenant")),
            celery=None if not data.get("celery") else CeleryCall.from_dict(data["celery"]),
            overlap=_opt_str(data.get("overlap")),
            carried_by=carried_by,
        )


@dataclass(frozen=True)
class TriggerOutcome:
    """What happened to one attempt.

    Exactly one of ``http_status``, ``error_kind`` and ``accepted`` is set: a response
    that arrived (status line, headers and the body up to the byte cap) has its status,
    whatever the status; a Celery target's message that its broker accepted is
    ``accepted`` (there is no HTTP status); anything else has an ``error_kind``.
    ``result_due_by`` is set only with ``accepted``, for a tracked Celery call. ``error``
    is human-readable and never echoes request headers, the body or the URL's path,
    query or credentials (nor a broker's URL); ``response_excerpt`` holds none of the
    request's own credential values.
    """

    execution_id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    http_status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    retry_after_s: float | None = None
    response_excerpt: str | None = None
    #: Seconds this request waited for its host's flow-control slot.
    flow_wait_s: float = 0.0
    #: A Celery target's message its broker accepted (written, or confirmed where the
    #: transport confirms): the attempt succeeded without an HTTP status.
    accepted: bool = False
    #: With ``accepted``, for a tracked Celery call: the latest its result may arrive;
    #: until then the execution stays running and only the result check ends it.
    result_due_by: datetime | None = None

    @classmethod
    def throttled(
        cls,
        request: TriggerRequest,
        at: datetime,
        error: str,
        retry_after_s: float,
        flow_wait_s: float = 0.0,
    ) -> TriggerOutcome:
        """Not sent, so not an attempt (no status, no duration): the database sends it
        again after ``retry_after_s``, with the same attempt number."""
        return cls(
            request.execution_id,
            request.attempt,
            at,
            0,
            error_kind=THROTTLED,
            error=error,
            retry_after_s=retry_after_s,
            flow_wait_s=flow_wait_s,
        )

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "execution_id": self.execution_id,
            "attempt": self.attempt,
            "started_at": as_utc(self.started_at).isoformat(),
            "duration_ms": self.duration_ms,
            "http_status": self.http_status,
            "error_kind": self.error_kind,
            "error": self.error,
            "retry_after_s": self.retry_after_s,
            "response_excerpt": self.response_excerpt,
            "flow_wait_s": self.flow_wait_s,
        }
        if self.accepted:  # only for a Celery target: an HTTP outcome stays as small
            message["accepted"] = True
            if self.result_due_by is not None:
                message["result_due_by"] = as_utc(self.result_due_by).isoformat()
        return message

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> TriggerOutcome:
        return cls(
            execution_id=int(data["execution_id"]),
            attempt=int(data["attempt"]),
            started_at=_parse_time(data["started_at"]),
            duration_ms=int(data["duration_ms"]),
            http_status=_opt_int(data.get("http_status")),
            error_kind=_opt_str(data.get("error_kind")),
            error=_opt_str(data.get("error")),
            retry_after_s=_opt_float(data.get("retry_after_s")),
            response_excerpt=_opt_str(data.get("response_excerpt")),
            flow_wait_s=float(data.get("flow_wait_s") or 0.0),
            accepted=bool(data.get("accepted", False)),
            result_due_by=None
            if data.get("result_due_by") is None
            else _parse_time(data["result_due_by"]),
        )


# --------------------------------------------------------------------------- sizing


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
    if request.sealed_webhook_secrets:
        size += len(', "sealed_webhook_secrets": []')
        size += sum(json_str_bytes(s) + 2 for s in request.sealed_webhook_secrets)
    if request.not_before is not None:
        size += _NOT_BEFORE
    if request.tenant is not None:
        size += len(', "tenant": ') + json_str_bytes(request.tenant)
    if request.rate_limit is not None:
        limit = request.rate_limit
        size += len(', "rate_limit": [, ]') + len(json.dumps(limit.max_in_flight))
        size += len(json.dumps(limit.per_second))
    if request.celery is not None:  # rare and bounded by its limits: encoded
        size += len(', "celery": ') + len(json.dumps(request.celery.to_dict()))
    if request.overlap is not None:
        size += len(', "overlap": ') + json_str_bytes(request.overlap)
    return size
