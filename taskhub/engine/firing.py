"""The one module that makes outbound HTTP requests: fire a batch of trigger attempts.

It knows HTTP and nothing of cron, Celery or databases, and it decides nothing about
retries: every attempt ends as a :class:`TriggerOutcome` value, whatever the target or
the network did. :func:`fire` never raises for anything a request can do.

Concurrency model. One asyncio event loop per process runs in a daemon thread, created
lazily on first use and re-created after ``fork`` (the pid is compared on every call).
One :class:`aiohttp.ClientSession` per address policy lives on that loop and is only ever
touched from the loop thread; :func:`fire` is synchronous and may be called from many
threads at once (Celery's ``threads`` pool) or from prefork children. Attempts in flight
are bounded per process in two lanes (:class:`_Lanes`): ``max_in_flight_per_process``
young ones, and ``max_slow_in_flight_per_process`` more that have run longer than
``slow_after_s``, so hanging targets never hold the slots a burst needs. Each target
host and each tenant holds at most a share of either lane (``lane_shares``); a request
past its share is not sent, its outcome is ``throttled`` (the database sends it again
later), so one tenant's hung targets never delay another's. An attempt's
clock (``started_at``, ``duration_ms``, the ``timeout_s`` deadline) starts when it gets
a slot, so waiting behind other targets is never blamed on this target.

Per attempt: a connect timeout of ``min(connect_timeout_s, timeout_s)``, a per-read
timeout and a wall-clock deadline of ``timeout_s`` around the whole attempt including
the body, at most ``max_response_bytes`` of body read (then the connection is closed,
not pooled), no redirects followed, no cookies kept, no proxy from the environment,
no automatic decompression.

SSRF guard (``taskhub.core.addresses``; loosened by ``settings.allow_private_targets`` and
``settings.allowed_target_networks``, never for the cloud metadata services): the URL is
read by the same function that checked it at creation; its port is checked, an
IP-literal host is checked before connecting, and a host name inside the connector's
resolver, which refuses the request if ANY resolved address is blocked, so the connection
can only go to an address that was checked (the connector's DNS cache only ever holds
checked answers).

Flow control (``flow_control``): a request to a host with a limit (``TASKHUB_HOST_LIMITS``
or the task's ``rate_limit``) first awaits a slot of that host's budget, shared by the
fleet through Redis. Only that request's coroutine waits; the other requests of its
batch, to other hosts, go on. One that gets no slot within
``flow_control_max_wait_s`` is not sent: its outcome is ``throttled`` (not an attempt;
the database sends it again later). A 429 from a limited host pauses that host's budget
for ``Retry-After`` (1 s without one); unlimited hosts cost no flow-control call at all.

Clearance (``withdrawal``): with a ``clear`` function, a request is sent only if the
database clears it when its send time has come: one call for every request of a batch
due by then, run off the loop, and shared with the other batches of the process that ask
meanwhile (:class:`_Clearances`). A request not cleared (its task was paused, changed or
deleted since it was published, or the database could not be asked) is dropped and has
no outcome.

Credentials: a request's credential headers and its tenant's signing secrets travel
sealed (``sealing``) and are unsealed on the loop just before the attempt is sent; the
``X-Taskhub-Signature`` (``signing``) is computed then, at send time. They are stripped
from the response excerpt before the outcome leaves this module (a target that echoes
request headers), so no copy reaches the result backend, the database or a log.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import dataclasses
import email.utils
import functools
import ipaddress
import json
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from taskhub.core import credentials, host_limits, signing
from taskhub.core.addresses import (
    AddressPolicy,
    TargetURLError,
    a_or_an,
    blocked_reason,
    parse_target_url,
)
from taskhub.core.sealing import SealingError, sealer_for
from taskhub.core.settings import Settings
from taskhub.engine import flow_control, lane_shares

__all__ = [
    "BlockedAddressError",
    "TriggerOutcome",
    "TriggerRequest",
    "attempt_headers",
    "blocked_reason",
    "fire",
    "in_flight",
    "parse_retry_after",
    "shutdown",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
#: The longest a request published ahead is held (the lead is at most 30 s).
MAX_HOLD_S: Final = 30.0
#: The longest a batch waits for its clearance before it drops what it asked about.
CLEAR_TIMEOUT_S: Final = 10.0
#: The longest a request refused for its host's or tenant's lane share waits in the
#: database before it is sent again (its own timeout when shorter).
SHARE_FULL_RETRY_MAX_S: Final = 10.0
#: How long a host's budget pauses after a 429 without a usable ``Retry-After``.
DEFAULT_429_PAUSE_S: Final = 1.0
EXCERPT_BYTES: Final = 1024
USER_AGENT: Final = "taskhub"
KEEPALIVE_S: Final = 4.0

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
TASK_ID: Final = "X-Taskhub-Task-Id"
SCHEDULED_FOR: Final = "X-Taskhub-Scheduled-For"
ATTEMPT: Final = "X-Taskhub-Attempt"
CONTENT_TYPE: Final = "Content-Type"
#: Sent with a body that parses as JSON when the task gives no Content-Type of its own.
JSON_CONTENT_TYPE: Final = "application/json"
_TASKHUB_HEADERS: Final = frozenset(
    h.lower() for h in (IDEMPOTENCY_KEY, TASK_ID, SCHEDULED_FOR, ATTEMPT)
)
# Message framing is aiohttp's job: a task's own Content-Length / Transfer-Encoding
# could only contradict the body actually sent.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_RE: Final = re.compile(r"[\r\n\x00]")
_DELTA_SECONDS_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?")


# --------------------------------------------------------------------------- values


def _as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already. Instants claimed from the
    database are UTC already and come back as they are (no conversion per request)."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    """ISO 8601 in UTC, each instant converted once: a claim's requests share their
    instants (one ``send_by``, occurrences due at the same second)."""
    return _as_utc(value).isoformat()


def _iso_z(value: datetime) -> str:
    """``2026-11-22T09:00:00Z`` (fractional seconds only when there are some)."""
    return _as_utc(value).replace(tzinfo=None).isoformat() + "Z"


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _as_utc(value)
    return _as_utc(datetime.fromisoformat(str(value)))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


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
    #: The tenant's active signing secrets, each sealed; every attempt then carries an
    #: ``X-Taskhub-Signature`` with one ``v1`` per secret, timed when it is sent.
    sealed_signing_secrets: tuple[str, ...] = ()
    #: The task's own flow control (None: only its host's setting applies).
    rate_limit: host_limits.HostLimit | None = None
    #: Published ahead of its send time (``publish_lead_s``): not sent before this.
    not_before: datetime | None = None
    #: The task's tenant: its share of a worker's in-flight slots (``lane_shares``).
    tenant: str | None = None

    def __post_init__(self) -> None:
        # A private copy, so a caller mutating its dict later cannot change this value.
        self.headers = dict(self.headers)
        if type(self.sealed_signing_secrets) is not tuple:  # a tuple is immutable already
            self.sealed_signing_secrets = tuple(self.sealed_signing_secrets)

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
        if self.not_before is not None:
            message["not_before"] = _utc_text(self.not_before)
        if self.tenant is not None:
            message["tenant"] = self.tenant
        if self.rate_limit is not None:  # only when set: most messages stay as small
            message["rate_limit"] = [self.rate_limit.max_in_flight, self.rate_limit.per_second]
        return message

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> TriggerRequest:
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
            rate_limit=None
            if not limit
            else host_limits.HostLimit(_opt_int(limit[0]), _opt_float(limit[1])),
            not_before=None if not data.get("not_before") else _parse_time(data["not_before"]),
            tenant=_opt_str(data.get("tenant")),
        )


@dataclass(frozen=True)
class TriggerOutcome:
    """What happened to one attempt.

    Exactly one of ``http_status`` and ``error_kind`` is set: a response that arrived
    (status line, headers and the body up to the byte cap) has its status and no
    ``error_kind``, whatever the status; anything else has an ``error_kind`` and no
    status. ``error`` is human-readable and never echoes request headers, the body or
    the URL's path, query or credentials; ``response_excerpt`` holds none of the
    request's own credential values.
    """

    execution_id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    http_status: int | None
    error_kind: str | None
    error: str | None
    retry_after_s: float | None
    response_excerpt: str | None
    #: Seconds this request waited for its host's flow-control slot.
    flow_wait_s: float = 0.0

    def to_message(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "attempt": self.attempt,
            "started_at": _as_utc(self.started_at).isoformat(),
            "duration_ms": self.duration_ms,
            "http_status": self.http_status,
            "error_kind": self.error_kind,
            "error": self.error,
            "retry_after_s": self.retry_after_s,
            "response_excerpt": self.response_excerpt,
            "flow_wait_s": self.flow_wait_s,
        }

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
        )


# --------------------------------------------------------------------------- pure parts


def attempt_headers(
    request: TriggerRequest, secret_headers: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The headers one attempt sends: the task's own (``secret_headers`` being its
    unsealed credentials), then taskhub's (which win).

    A task header with the same name as a taskhub header (compared case-insensitively)
    is dropped, as are ``Content-Length`` and ``Transfer-Encoding`` (the HTTP client
    frames the body itself). A body that parses as JSON, sent without a
    ``Content-Type``, goes as ``application/json``: decided here, at send time, so
    tasks stored before this rule benefit and their stored headers stay as given.
    """
    own = {**request.headers, **(secret_headers or {})}
    headers = {
        name: value
        for name, value in own.items()
        if name.lower() not in _TASKHUB_HEADERS
        and name.lower() not in _FRAMING_HEADERS
        and name.lower() != signing.HEADER.lower()
    }
    if (
        request.body is not None
        and not any(name.lower() == "content-type" for name in headers)
        and _is_json(request.body)
    ):
        headers[CONTENT_TYPE] = JSON_CONTENT_TYPE
    headers[IDEMPOTENCY_KEY] = request.idempotency_key
    headers[TASK_ID] = request.task_id
    headers[SCHEDULED_FOR] = _iso_z(request.scheduled_for)
    headers[ATTEMPT] = str(request.attempt)
    return headers


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _is_json(body: str) -> bool:
    """Strict JSON (RFC 8259): Python's ``NaN`` and ``Infinity`` extensions are not."""
    try:
        json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return False
    return True


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    Returns None when the value is absent or unparseable, and never a negative number
    (a date in the past means 0). A naive ``now`` is taken to be UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS_RE.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # older Pythons return None instead of raising
        return None
    delta = (_as_utc(when) - _as_utc(now)).total_seconds()
    return max(0.0, delta)


# --------------------------------------------------------------------------- SSRF resolver


class BlockedAddressError(OSError):
    """A host name resolved to an address taskhub refuses to connect to."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {a_or_an(reason)}")
        self.host = host
        self.reason = reason


class _GuardedResolver(AbstractResolver):
    """Resolve with ``inner``, then refuse the whole answer if ANY address is blocked.

    The connector connects to the addresses returned here (and caches only them), so
    what was checked is what is connected to.
    """

    def __init__(self, inner: AbstractResolver, policy: AddressPolicy | None = None) -> None:
        self._inner = inner
        self._policy = policy or AddressPolicy()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                raise BlockedAddressError(host, "address that cannot be checked") from None
            reason = self._policy.refusal(address)
            if reason is not None:
                raise BlockedAddressError(host, reason)
        return results

    async def close(self) -> None:
        await self._inner.close()


# --------------------------------------------------------------------------- one attempt


class _Refused(Exception):
    """An attempt refused before any connection: (error_kind, message)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _check_request(request: TriggerRequest, policy: AddressPolicy) -> URL:
    """The URL to request, or :class:`_Refused` naming what is wrong with it.

    The URL is read by :func:`addresses.parse_target_url`, the check a task's URL passed
    when it was created, so a URL refused here was refused there too (or was stored
    before a rule changed)."""
    try:
        target = parse_target_url(request.url)
    except TargetURLError as error:
        raise _Refused("invalid_request", f"the URL {error.message}") from None
    if not _TOKEN_RE.fullmatch(request.method) or request.method.upper() == "CONNECT":
        raise _Refused("invalid_request", "the method is not a valid HTTP method name")
    for name, value in request.headers.items():
        if not _TOKEN_RE.fullmatch(name):
            raise _Refused("invalid_request", "a header name is not a valid HTTP token")
        if _BAD_VALUE_RE.search(value):
            raise _Refused("invalid_request", "a header value contains a line break or NUL")
    if not (math.isfinite(request.timeout_s) and request.timeout_s > 0):
        raise _Refused("invalid_request", "the timeout must be a positive number of seconds")
    port_reason = policy.port_refusal(target.port)
    if port_reason is not None:
        raise _Refused("blocked_address", f"blocked_address: {port_reason}")
    if target.address is not None:
        reason = policy.refusal(target.address)
        if reason is not None:
            raise _Refused(
                "blocked_address", f"blocked_address: {target.address} is {a_or_an(reason)}"
            )
    return target.url


def _unseal(request: TriggerRequest, settings: Settings) -> tuple[dict[str, str], list[str]]:
    """The request's credential headers and signing secrets, in plaintext, just before
    sending; :class:`_Refused` ("configuration") if this process cannot unseal them. The
    message names the setting, never a value."""
    if request.sealed_headers is None and not request.sealed_signing_secrets:
        return {}, []
    try:
        sealer = sealer_for(settings)
        headers: dict[str, str] = {}
        if request.sealed_headers is not None:
            headers = sealer.unseal_json(request.sealed_headers)
        secrets = [sealer.unseal(s) for s in request.sealed_signing_secrets]
    except SealingError as error:
        raise _Refused("configuration", str(error)) from None
    for name, value in headers.items():
        if not _TOKEN_RE.fullmatch(name) or _BAD_VALUE_RE.search(value):
            raise _Refused("invalid_request", "a secret header is not a valid HTTP header")
    return headers, secrets


def _excerpt(body: bytes | bytearray, more: bool = False, secrets: Sequence[str] = ()) -> str:
    """The start of the body, without the request's own credentials (``secrets``): a
    target that echoes request headers must not put them into the execution history,
    the result backend or a log. ``more``: the body went on past what was read."""
    if not secrets or not body:
        # NUL cannot be stored in a PostgreSQL text column.
        text = bytes(body[:EXCERPT_BYTES]).decode("utf-8", errors="replace")
        return text.replace("\x00", "\ufffd")
    # Read far enough past the cut that a credential starting before it is whole (an
    # escaped form is at most 6 bytes a character: \uXXXX).
    window = EXCERPT_BYTES + 6 * max(len(s.encode("utf-8")) for s in secrets)
    text = bytes(body[:window]).decode("utf-8", errors="replace")
    text = credentials.strip_values(text, secrets, cut=more or len(body) > window)
    text = text.encode("utf-8")[:EXCERPT_BYTES].decode("utf-8", errors="ignore")
    return text.replace("\x00", "\ufffd")


def _own_secrets(
    request: TriggerRequest,
    secret_headers: Mapping[str, str],
    signing_secrets: Sequence[str],
    settings: Settings,
) -> list[str]:
    """The credential values this request carries: its unsealed headers, any plain header
    named like a credential (a task stored before the name counted as one), and its
    tenant's signing secrets."""
    plain = [
        value
        for name, value in request.headers.items()
        if credentials.is_secret(name, settings.secret_headers)
    ]
    return [*secret_headers.values(), *plain, *signing_secrets]


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if isinstance(exc.errno, int) and exc.errno > 0 and not isinstance(exc, ssl.SSLError):
            return os.strerror(exc.errno)  # "Connection refused", not the raw address tuple
        if exc.strerror:
            return exc.strerror
    text = str(exc)
    return text or type(exc).__name__


def _classify(exc: Exception, url: URL, phase: str, timeout_s: float) -> tuple[str, str]:
    """(error_kind, message) for an exception raised while attempting ``url``."""
    where = f"{url.host}:{url.port}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timeout", f"could not connect to {where} within the connect timeout"
    if isinstance(exc, TimeoutError):  # the deadline, a read timeout (asyncio's is this)
        if phase == "body":
            return "timeout", f"response body not read within {timeout_s:g} s"
        return "timeout", f"no response within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        cause = exc.os_error
        if isinstance(cause, BlockedAddressError):
            return "blocked_address", f"blocked_address: {cause}"
        return "dns", f"DNS lookup failed for {url.host}: {_os_reason(cause)}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "tls", f"TLS certificate error with {where}: {_os_reason(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | ssl.CertificateError):
        cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
        return "tls", f"TLS error with {where}: {_os_reason(cause)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection", f"cannot connect to {where}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        if phase == "body":
            return "connection", f"{where} closed the connection while sending the body"
        return "connection", f"{where} closed the connection without a response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection", f"{where} sent a malformed or incomplete response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "connection", f"{where} sent an invalid HTTP response"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "invalid_request", "the URL is not a valid http(s) URL"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "connection", f"connection to {where} failed: {_os_reason(exc)}"
    if isinstance(exc, ValueError):  # e.g. a header value with CR/LF, an unencodable name
        return "invalid_request", "the request cannot be sent (invalid header or method)"
    raise exc


#: An attempt in the lanes: its lane, and its host's and tenant's holdings.
_InFlight = lane_shares.Place


class _Lanes:
    """This process's slots for attempts in flight, in two lanes.

    An attempt starts in the fast lane (``max_in_flight`` slots). One still running
    after ``slow_after_s`` moves to the slow lane (``max_slow_in_flight`` slots) and
    hands its fast slot to the next request. Why two: a burst to fast targets wants few
    connections at once (each costs more than a request), while slow and hanging
    targets want many slots that cost nothing but memory (~25 KB each). One limit
    cannot serve both; with two, hung targets wait out their timeouts in the slow lane
    and never hold the slots a burst needs. A full slow lane keeps an attempt in the
    fast lane, so the total stays bounded.

    Each host and each tenant holds at most its share of either lane
    (``lane_shares``): a request whose host or tenant has no room is refused at once
    (:meth:`admit` returns None, the caller ends it ``throttled``), so one tenant's hung
    targets never hold the slots another tenant's requests need. Shares of 100 % switch
    this off: then every request waits for a slot, whoever holds the others.
    """

    def __init__(
        self,
        fast: int,
        slow: int,
        slow_after_s: float,
        fast_share_percent: float = 100.0,
        slow_share_percent: float = 100.0,
    ) -> None:
        self.fast = asyncio.Semaphore(fast)
        self.slow_free = slow
        self.slow_allowed = slow > 0
        self.slow_after_s = slow_after_s
        self.shares = (
            lane_shares.Shares(fast, slow, fast_share_percent, slow_share_percent)
            if min(fast_share_percent, slow_share_percent) < 100
            else None
        )
        #: Attempts past ``slow_after_s`` waiting for a slow slot, oldest first.
        self.to_promote: collections.deque[_InFlight] = collections.deque()
        #: Set when a fast slot frees or an attempt moves on or gets stuck (for WAIT).
        self._changed: asyncio.Future[None] | None = None

    async def admit(self, host: str, tenant: str | None) -> _InFlight | None:
        """Take a fast slot and a place in the host's and tenant's shares, to hand to
        :meth:`run`; None if the host or tenant has no room (not sent: ``throttled``).

        Waits for a fast slot, as every request does when the lane is full, and at most
        ``slow_after_s`` more while the host's or tenant's own fast slots are held by
        young attempts (they end or move on by then)."""
        shares = self.shares
        if shares is None:
            await self.fast.acquire()
            return _InFlight(None, None)
        deadline: float | None = None
        while True:
            verdict = shares.verdict(host, tenant, self.slow_free)
            if verdict == lane_shares.ADMIT:
                if not self.fast.locked():  # returns at once: nothing runs in between
                    await self.fast.acquire()
                    return shares.take(host, tenant)
                await self.fast.acquire()
                verdict = shares.verdict(host, tenant, self.slow_free)
                if verdict == lane_shares.ADMIT:
                    return shares.take(host, tenant)
                self._release_fast()
            if verdict == lane_shares.REFUSE:
                return None
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.slow_after_s
            elif loop.time() >= deadline:
                return None
            await self._wait_for_change(deadline)

    async def _wait_for_change(self, deadline: float) -> None:
        changed = self._changed
        if changed is None or changed.done():
            changed = self._changed = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(changed)
        except TimeoutError:
            pass

    def _wake(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            if not changed.done():
                changed.set_result(None)

    def _release_fast(self) -> None:
        self.fast.release()
        self._wake()

    async def run(self, work: Callable[[], Awaitable[_T]], attempt: _InFlight) -> _T:
        """Run ``work`` for an attempt :meth:`admit` gave a fast slot.

        The move to the slow lane is a timer callback on the loop, not a second task:
        this runs once per request, on the one thread that fires them all.
        """
        timer = None
        if self.slow_allowed or self.shares is not None:  # shares count stuck attempts
            timer = asyncio.get_running_loop().call_later(self.slow_after_s, self._promote, attempt)
        try:
            return await work()
        finally:
            if timer is not None:
                timer.cancel()
            attempt.ended = True
            if self.shares is not None:
                self.shares.ended(attempt)
            if attempt.slow:
                self.slow_free += 1
                self._promote_waiting()
            else:
                self._release_fast()

    def _promote(self, attempt: _InFlight) -> None:
        if attempt.ended:
            return
        if self.slow_free > 0 and self._may_move(attempt):
            self._move(attempt)
        else:  # no room in the slow lane: it keeps its fast slot until one frees
            if self.shares is not None:
                self.shares.stuck(attempt)
                self._wake()
            if self.slow_allowed:
                self.to_promote.append(attempt)

    def _may_move(self, attempt: _InFlight) -> bool:
        return self.shares is None or self.shares.may_move(attempt)

    def _move(self, attempt: _InFlight) -> None:
        self.slow_free -= 1
        if self.shares is not None:
            self.shares.moved(attempt)
        else:
            attempt.slow = True
        self._release_fast()

    def _promote_waiting(self) -> None:
        """Move the oldest stuck attempts whose host and tenant have room again."""
        if not self.to_promote:
            return
        kept: collections.deque[_InFlight] = collections.deque()
        while self.to_promote and self.slow_free > 0:
            attempt = self.to_promote.popleft()
            if attempt.ended:
                continue
            if self._may_move(attempt):
                self._move(attempt)
            else:
                kept.append(attempt)
        if kept:
            kept.extend(self.to_promote)
            self.to_promote = kept


@dataclass
class _Client:
    session: aiohttp.ClientSession
    lanes: _Lanes


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether there was more."""
    body = bytearray()
    while True:
        chunk = await response.content.readany()
        if not chunk:
            return bytes(body), False
        room = limit - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True
        body += chunk


def _host_of(request: TriggerRequest) -> str | None:
    try:
        host = URL(request.url).host
    except (ValueError, TypeError, UnicodeError):
        return None
    return host.lower() if host else None


def _throttled(
    request: TriggerRequest, error: str, retry_in_s: float, waited_s: float = 0.0
) -> TriggerOutcome:
    """Not sent (not an attempt): the database sends it again after ``retry_in_s``."""
    return TriggerOutcome(
        execution_id=request.execution_id,
        attempt=request.attempt,
        started_at=datetime.now(UTC),
        duration_ms=0,
        http_status=None,
        error_kind=THROTTLED,
        error=error,
        retry_after_s=retry_in_s,
        response_excerpt=None,
        flow_wait_s=waited_s,
    )


#: Which execution ids of these requests may be sent now (``withdrawal.clear_to_send``).
Clear = Callable[[Sequence[TriggerRequest]], Collection[int]]


class _Clearances:
    """The clearances this process's batches ask for, asked of ``clear`` together.

    Every message held for one send time wakes at that instant; asked one by one, a
    burst of 10,000 in 40 messages costs 40 statements at the moment the targets should
    be called, queued on the loop's few executor threads. Here the batches that ask
    while a call is running wait for it to end and are asked about in one call, so one
    send time costs one or two statements per process. Lives on the loop thread.
    """

    def __init__(self, clear: Clear) -> None:
        self.clear = clear
        self.waiting: list[tuple[list[TriggerRequest], asyncio.Future[set[int]]]] = []
        self.asking = False

    async def ask(self, requests: Sequence[TriggerRequest]) -> set[int]:
        """What ``clear`` lets go of ``requests``; nothing if it fails or does not answer
        within ``CLEAR_TIMEOUT_S``."""
        answer: asyncio.Future[set[int]] = asyncio.get_running_loop().create_future()
        self.waiting.append((list(requests), answer))
        if not self.asking:
            self.asking = True
            # Soon, not now: the batches that wake in this same loop turn join this call.
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._run()))
        try:
            return await asyncio.wait_for(asyncio.shield(answer), CLEAR_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "no clearance for %d requests within %.0f s; not sending them (their leases"
                " send them again)",
                len(requests),
                CLEAR_TIMEOUT_S,
            )
            return set()

    async def _run(self) -> None:
        try:
            while self.waiting:
                await self._ask_once()
        finally:
            self.asking = False

    async def _ask_once(self) -> None:
        """One call for what waits, but never two requests of one execution expecting
        different attempts (the call answers per execution): those wait for the next."""
        expected: dict[int, int] = {}
        taken: list[tuple[list[TriggerRequest], asyncio.Future[set[int]]]] = []
        later: list[tuple[list[TriggerRequest], asyncio.Future[set[int]]]] = []
        for requests, answer in self.waiting:
            if any(expected.get(r.execution_id, r.attempt) != r.attempt for r in requests):
                later.append((requests, answer))
                continue
            expected.update((r.execution_id, r.attempt) for r in requests)
            taken.append((requests, answer))
        self.waiting = later
        asked = {r.execution_id: r for requests, _ in taken for r in requests}
        loop = asyncio.get_running_loop()
        try:
            cleared = set(await loop.run_in_executor(None, self.clear, list(asked.values())))
        except Exception:
            log.warning(
                "could not clear %d requests to send; not sending them (their leases send"
                " them again)",
                len(asked),
                exc_info=True,
            )
            cleared = set()
        for requests, answer in taken:
            if not answer.done():
                answer.set_result({r.execution_id for r in requests} & cleared)


def _due_by(requests: Sequence[TriggerRequest], order: Sequence[int], start: int) -> int:
    """The end of the run of ``order`` from ``start`` (at least one) whose send time has
    come: they are cleared together."""
    now = datetime.now(UTC)
    end = start + 1
    while end < len(order):
        not_before = requests[order[end]].not_before
        if not_before is not None and not_before > now:
            break
        end += 1
    return end


def _share_full(request: TriggerRequest) -> TriggerOutcome:
    """Not sent: its host or tenant holds its share of this process's slots. Sent again
    by the database once some of those may have ended: after its own timeout (what the
    slots it waits for are held at most, for a target like its own), at most
    ``SHARE_FULL_RETRY_MAX_S``; never sooner than 1 s."""
    retry_in_s = min(max(request.timeout_s, 1.0), SHARE_FULL_RETRY_MAX_S)
    return _throttled(
        request,
        "not sent: its host or tenant held its share of the worker's in-flight slots",
        retry_in_s if math.isfinite(retry_in_s) else SHARE_FULL_RETRY_MAX_S,
    )


def _host_key(url: str) -> str:
    """The host a request goes to, for its share of the lanes, without parsing the URL
    (~0.3 µs, a twelfth of a URL parse): the name between ``//`` and the path, without
    credentials or port, in lower case. A URL too odd for this only lands in a share of
    its own, and its tenant's share still holds it."""
    netloc = url.partition("//")[2]
    for end in "/?#":
        netloc = netloc.partition(end)[0]
    netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc.partition("]")[0][1:].lower()
    return netloc.partition(":")[0].lower()


async def _hold(request: TriggerRequest) -> None:
    """Until a request published ahead may be sent (at most ``MAX_HOLD_S``)."""
    if request.not_before is not None:
        hold_s = (request.not_before - datetime.now(UTC)).total_seconds()
        if hold_s > 0:
            await asyncio.sleep(min(hold_s, MAX_HOLD_S))


def _flow_limit(
    request: TriggerRequest, settings: Settings
) -> tuple[str, host_limits.HostLimit] | None:
    """The host and budget this request must wait for; None when it has none (most)."""
    if request.rate_limit is None and not settings.host_limit_map:
        return None  # nothing is limited anywhere: no URL to parse for it
    host = _host_of(request)
    if host is None:  # _send refuses it with the reason
        return None
    limit = host_limits.limit_for(host, settings.host_limit_map, request.rate_limit)
    return None if limit.unlimited else (host, limit)


async def _attempt(
    client: _Client,
    request: TriggerRequest,
    settings: Settings,
    limiter: flow_control.Limiter,
    host: str,
    limit: host_limits.HostLimit,
) -> TriggerOutcome:
    """Flow control around an attempt to a limited host: wait for the host's slot (this
    coroutine only), send, hand the slot back, and pause the budget after a 429."""
    max_wait_s = settings.flow_control_max_wait_s
    if request.send_by is not None:
        max_wait_s = min(max_wait_s, (request.send_by - datetime.now(UTC)).total_seconds())
    lease_s = request.timeout_s + flow_control.LEASE_MARGIN_S
    slot, waited_s, retry_in_s = await flow_control.acquire(
        limiter, host, limit, lease_s, max(0.0, max_wait_s)
    )
    if slot is None:
        return _throttled(
            request,
            f"not sent: its host's flow-control budget had no slot for {waited_s:.1f} s",
            retry_in_s,
            waited_s,
        )
    try:
        outcome = await _send(client, request, settings)
    finally:
        await limiter.release(slot)
    if outcome.http_status == 429:
        await limiter.pause(host, outcome.retry_after_s or DEFAULT_429_PAUSE_S)
    if waited_s > 0:
        outcome = dataclasses.replace(outcome, flow_wait_s=waited_s)
    return outcome


async def _fire_batch(
    client: _Client,
    requests: Sequence[TriggerRequest],
    settings: Settings,
    limiter: flow_control.Limiter,
    clearances: _Clearances | None = None,
) -> list[TriggerOutcome]:
    """Every request of one message, started in send-time order as slots free up; with
    ``clearances``, only those cleared (the others have no outcome).

    A request gets a task only once it holds a fast slot (or, to a limited host, to wait
    for that host's budget, so other hosts go on): a burst of 10,000 requests held in
    a worker costs a hundred waiting batches, not 10,000 waiting tasks (~2 KB each).
    """
    far_past = datetime.min.replace(tzinfo=UTC)
    order = sorted(range(len(requests)), key=lambda i: requests[i].not_before or far_past)
    tasks: list[asyncio.Future[TriggerOutcome] | TriggerOutcome] = []
    started: list[int] = []  # the index of each task's request
    cleared: set[int] = set()
    cleared_until = 0  # the positions of ``order`` before this one were asked about
    try:
        for position, i in enumerate(order):
            request = requests[i]
            await _hold(request)
            if clearances is not None:
                if position >= cleared_until:
                    cleared_until = _due_by(requests, order, position)
                    due = [requests[j] for j in order[position:cleared_until]]
                    cleared |= await clearances.ask(due)
                if request.execution_id not in cleared:
                    continue
            started.append(i)
            limited = _flow_limit(request, settings)
            if limited is not None:
                attempt = _attempt(client, request, settings, limiter, *limited)
                tasks.append(asyncio.ensure_future(attempt))
                continue
            admitted = await client.lanes.admit(_host_key(request.url), request.tenant)
            if admitted is None:  # its host or tenant holds its share: not sent
                tasks.append(_share_full(request))
                continue
            # The task owns the slot from here: it is scheduled before this batch's
            # next step, so it has started (and will release) by any cancellation.
            send = _send(client, request, settings, admitted)
            tasks.append(asyncio.ensure_future(send))
        outcomes = [task if isinstance(task, TriggerOutcome) else await task for task in tasks]
    finally:  # what is left when the batch itself is cancelled (the loop is going away)
        for task in tasks:
            if not isinstance(task, TriggerOutcome):
                task.cancel()
    by_index = dict(zip(started, outcomes, strict=True))
    return [by_index[i] for i in range(len(requests)) if i in by_index]


async def _send(
    client: _Client,
    request: TriggerRequest,
    settings: Settings,
    admitted: _InFlight | None = None,
) -> TriggerOutcome:
    """The attempt in the lanes; ``admitted``: the fast slot the caller already holds."""
    if admitted is None:
        admitted = await client.lanes.admit(_host_key(request.url), request.tenant)
        if admitted is None:
            return _share_full(request)
    return await client.lanes.run(lambda: _exchange(client, request, settings), admitted)


async def _exchange(client: _Client, request: TriggerRequest, settings: Settings) -> TriggerOutcome:
    """One attempt, from the moment it has a slot: its clock starts here."""
    started_at = datetime.now(UTC)
    t0 = time.monotonic()

    def outcome(
        status: int | None,
        kind: str | None,
        error: str | None,
        retry_after: float | None = None,
        excerpt: str | None = None,
    ) -> TriggerOutcome:
        return TriggerOutcome(
            execution_id=request.execution_id,
            attempt=request.attempt,
            started_at=started_at,
            duration_ms=max(0, round((time.monotonic() - t0) * 1000)),
            http_status=status,
            error_kind=kind,
            error=error,
            retry_after_s=retry_after,
            response_excerpt=excerpt,
        )

    try:
        url = _check_request(request, settings.address_policy)
        secret_headers, signing_secrets = _unseal(request, settings)
    except _Refused as refused:
        return outcome(None, refused.kind, refused.message)

    timeout_s = request.timeout_s
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=None,
        sock_connect=min(settings.connect_timeout_s, timeout_s),
        sock_read=timeout_s,
    )
    data = None if request.body is None else request.body.encode("utf-8")
    headers = attempt_headers(request, secret_headers)
    if signing_secrets:
        # Timed now, at send time: a receiver's tolerance measures the network, not
        # how long the message waited on the broker.
        headers[signing.HEADER] = signing.sign(signing_secrets, data or b"", int(time.time()))
    phase = "response"
    try:
        async with asyncio.timeout(timeout_s):
            async with client.session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                phase = "body"
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                )
                body, truncated = await _read_capped(response, settings.max_response_bytes)
                if truncated:
                    response.close()  # stop reading; the connection is not reused
    except Exception as exc:
        try:
            kind, message = _classify(exc, url, phase, timeout_s)
        except Exception:
            log.exception(
                "unexpected error firing execution %s attempt %s",
                request.execution_id,
                request.attempt,
            )
            kind, message = "connection", f"unexpected error: {type(exc).__name__}"
        return outcome(None, kind, message)
    error = None if 200 <= status < 300 else f"HTTP {status}"
    secrets = _own_secrets(request, secret_headers, signing_secrets, settings) if body else []
    return outcome(status, None, error, retry_after, _excerpt(body, truncated, secrets))


# --------------------------------------------------------------------------- the loop


class _Runtime:
    """This process's event loop thread and its sessions (touched only on the loop)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.clients: dict[tuple[AddressPolicy, int, int, float, float, float], _Client] = {}
        self.limiters: dict[str | None, flow_control.Limiter] = {}
        self.clearances: dict[Clear, _Clearances] = {}
        self.thread = threading.Thread(
            target=self._run, name=f"taskhub-trigger-loop-{self.pid}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _client(self, settings: Settings) -> _Client:
        # Runs on the loop thread without awaiting: check-and-create is atomic there.
        fast = settings.max_in_flight_per_process
        slow = settings.max_slow_in_flight_per_process
        fast_share = settings.fast_lane_share_percent
        slow_share = settings.slow_lane_share_percent
        key = (settings.address_policy, fast, slow, settings.slow_after_s, fast_share, slow_share)
        client = self.clients.get(key)
        if client is None:
            limit = fast + slow
            # Guarded even with private targets allowed: the cloud metadata services
            # stay closed to host names that resolve to them.
            resolver = _GuardedResolver(DefaultResolver(), settings.address_policy)
            connector = aiohttp.TCPConnector(
                limit=limit,
                limit_per_host=0,
                ttl_dns_cache=30,
                resolver=resolver,
                # Below common servers' idle timeouts (Node's is 5 s), so a pooled
                # connection is rarely one the server is closing at that moment.
                keepalive_timeout=KEEPALIVE_S,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
                skip_auto_headers=("Accept-Encoding", "Content-Type"),
                auto_decompress=False,
                trust_env=False,
            )
            lanes = _Lanes(fast, slow, settings.slow_after_s, fast_share, slow_share)
            client = self.clients[key] = _Client(session, lanes)
        return client

    def _limiter(self, settings: Settings) -> flow_control.Limiter:
        # On the loop thread, like the sessions: the Redis client is bound to this loop.
        url = settings.flow_control_url
        limiter = self.limiters.get(url)
        if limiter is None:
            limiter = self.limiters[url] = (
                flow_control.RedisLimiter(url) if url else flow_control.LocalLimiter()
            )
        return limiter

    async def run_batch(
        self,
        requests: Sequence[TriggerRequest],
        settings: Settings,
        limiter: flow_control.Limiter | None = None,
        clear: Clear | None = None,
    ) -> list[TriggerOutcome]:
        client = self._client(settings)
        clearances = None
        if clear is not None:
            clearances = self.clearances.get(clear)
            if clearances is None:
                clearances = self.clearances[clear] = _Clearances(clear)
        return await _fire_batch(
            client, requests, settings, limiter or self._limiter(settings), clearances
        )

    async def aclose(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.session.close()
        limiters, self.limiters = list(self.limiters.values()), {}
        for limiter in limiters:
            if isinstance(limiter, flow_control.RedisLimiter):
                await limiter.aclose()

    def call(self, make: Callable[[], Awaitable[_T]]) -> _T:
        """Run a coroutine on the loop from another thread and wait for its result."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("taskhub.engine.firing.fire() cannot be called from its own loop")

        async def run() -> _T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        while True:
            try:
                return future.result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                if not self.thread.is_alive() or self.loop.is_closed():
                    future.cancel()
                    raise RuntimeError("taskhub's trigger loop thread stopped") from None


_lock = threading.Lock()
_runtime: _Runtime | None = None
# Runtimes inherited through fork: their thread does not exist in this process. They are
# kept referenced (never collected) so no finalizer touches the parent's sockets.
_inherited: list[_Runtime] = []


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the moment of fork


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _get_runtime() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.pid != os.getpid():
            _inherited.append(_runtime)
            _runtime = None
        if _runtime is None:
            _runtime = _Runtime()
        return _runtime


def fire(
    requests: Sequence[TriggerRequest],
    settings: Settings,
    limiter: flow_control.Limiter | None = None,
    clear: Clear | None = None,
) -> list[TriggerOutcome]:
    """Make every attempt concurrently; one outcome per request, in the same order
    (with ``clear``: per request it cleared, see the module's docstring).

    Synchronous and thread-safe. Never raises for anything a request or a target can
    do; only programming errors raise. ``limiter`` replaces the process's flow-control
    limiter (tests); by default it is Redis-backed when ``settings.flow_control_url``
    is set, per process otherwise.
    """
    global _in_flight
    batch = list(requests)
    if not batch:
        return []
    runtime = _get_runtime()
    with _in_flight_lock:
        _in_flight += len(batch)
    try:
        return runtime.call(lambda: runtime.run_batch(batch, settings, limiter, clear))
    finally:
        with _in_flight_lock:
            _in_flight -= len(batch)


_in_flight = 0
_in_flight_lock = threading.Lock()


def in_flight() -> int:
    """Requests handed to :func:`fire` in this process and not yet ended (the heartbeat
    reports it; waiting for a slot counts as in flight)."""
    return _in_flight


def shutdown(timeout_s: float = 5.0) -> None:
    """Close this process's sessions and stop its loop (a later :func:`fire` restarts them)."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is None or runtime.pid != os.getpid():
        return
    try:
        asyncio.run_coroutine_threadsafe(runtime.aclose(), runtime.loop).result(timeout_s)
    except Exception:
        log.warning("closing the trigger sessions failed", exc_info=True)
    runtime.loop.call_soon_threadsafe(runtime.loop.stop)
    runtime.thread.join(timeout_s)
    if not runtime.thread.is_alive():
        runtime.loop.close()


atexit.register(shutdown)
