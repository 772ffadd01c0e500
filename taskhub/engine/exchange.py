"""The one module that makes outbound HTTP requests: one attempt over HTTP.

It knows HTTP and nothing of cron, Celery or databases, and it decides nothing about
retries: an attempt ends as a :class:`TriggerOutcome` value, whatever the target or the
network did (:func:`make_attempt` never raises for anything a request can do). When
and how many attempts run is ``taskhub.engine.firing``'s business.

Per attempt: a connect timeout of ``min(connect_timeout_s, timeout_s)`` (the TLS
handshake included) and a wall-clock deadline of ``timeout_s`` around the whole attempt
including the body, at most ``max_response_bytes`` of body read (then the connection is closed,
not pooled), no redirects followed, no cookies kept, no proxy from the environment,
no automatic decompression.

SSRF guard (``taskhub.core.addresses``; loosened by ``settings.allow_private_targets`` and
``settings.allowed_target_networks``, never for the cloud metadata services): the URL is
read by the same function that checked it at creation; its port is checked, an
IP-literal host is checked before connecting, and a host name inside the pool's
resolver, which refuses the request if ANY resolved address is blocked, so the connection
can only go to an address that was checked (the pool's DNS cache only ever holds
checked answers). The wire itself (connections, framing) is ``http_client``'s.

Credentials: a request's credential headers and its tenant's signing secrets travel
sealed (``sealing``) and are unsealed on the loop when the request is made ready
(:func:`prepare`: while a message held ahead waits, else just before the attempt is
sent); the ``X-Taskhub-Signature`` (``signing``) and the Standard Webhooks headers
(``standard_webhooks``) are computed at send time. They are stripped
from the response excerpt before the outcome leaves this module (a target that echoes
request headers), so no copy reaches the result backend, the database or a log.
"""

from __future__ import annotations

import asyncio
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
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from taskhub.core import credentials, limits, signing, standard_webhooks
from taskhub.core.addresses import AddressPolicy, TargetURLError, a_or_an, parse_target_url
from taskhub.core.clock import utcnow
from taskhub.core.messages import TriggerOutcome, TriggerRequest, as_utc, iso_z
from taskhub.core.sealing import SealingError, sealer_for
from taskhub.core.settings import Settings
from taskhub.engine import http_client

__all__ = [
    "BlockedAddressError",
    "attempt_headers",
    "make_attempt",
    "make_attempt_blocking",
    "new_pool",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

EXCERPT_BYTES: Final = 1024
USER_AGENT: Final = "taskhub"
KEEPALIVE_S: Final = 4.0
#: Target URLs whose parse a trigger process keeps.
PARSED_URLS_CACHED: Final = 4096
#: How long a host name's checked addresses are reused before it is resolved again.
DNS_TTL_S: Final = 30.0

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
# Message framing is the HTTP client's job: a task's own Content-Length / Transfer-Encoding
# could only contradict the body actually sent.
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})

_TOKEN_RE: Final = re.compile(limits.HTTP_TOKEN)
_BAD_VALUE_RE: Final = re.compile(r"[\r\n\x00]")
_DELTA_SECONDS_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?")


# --------------------------------------------------------------------------- headers


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
    headers[SCHEDULED_FOR] = iso_z(request.scheduled_for)
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
    delta = (as_utc(when) - as_utc(now)).total_seconds()
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


# --------------------------------------------------------------------------- refusals and errors


class Refused(Exception):
    """An attempt refused before any connection: (error_kind, message)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


#: A URL's parse, kept: a task's URL is parsed for every attempt, always the same way.
_parsed_url: Final = functools.lru_cache(maxsize=PARSED_URLS_CACHED)(parse_target_url)


def _check_request(request: TriggerRequest, policy: AddressPolicy) -> URL:
    """The URL to request, or :class:`Refused` naming what is wrong with it.

    The URL is read by :func:`addresses.parse_target_url`, the check a task's URL passed
    when it was created, so a URL refused here was refused there too (or was stored
    before a rule changed)."""
    try:
        target = _parsed_url(request.url)
    except TargetURLError as error:
        raise Refused("invalid_request", f"the URL {error.message}") from None
    if not _TOKEN_RE.fullmatch(request.method) or request.method.upper() == "CONNECT":
        raise Refused("invalid_request", "the method is not a valid HTTP method name")
    for name, value in request.headers.items():
        if not _TOKEN_RE.fullmatch(name):
            raise Refused("invalid_request", "a header name is not a valid HTTP token")
        if _BAD_VALUE_RE.search(value):
            raise Refused("invalid_request", "a header value contains a line break or NUL")
    if not (math.isfinite(request.timeout_s) and request.timeout_s > 0):
        raise Refused("invalid_request", "the timeout must be a positive number of seconds")
    port_reason = policy.port_refusal(target.port)
    if port_reason is not None:
        raise Refused("blocked_address", f"blocked_address: {port_reason}")
    if target.address is not None:
        reason = policy.refusal(target.address)
        if reason is not None:
            raise Refused(
                "blocked_address", f"blocked_address: {target.address} is {a_or_an(reason)}"
            )
    return target.url


class _Unsealed(NamedTuple):
    """A request's credentials in plaintext: its secret headers and its tenant's signing
    secrets of each scheme."""

    headers: dict[str, str]
    signing: list[str]
    webhook: list[str]


def _unseal(request: TriggerRequest, settings: Settings) -> _Unsealed:
    """The request's credential headers and signing secrets, in plaintext, as it is made
    ready (:func:`prepare`); :class:`Refused` ("configuration") if this process cannot
    unseal them. The message names the setting, never a value."""
    if (
        request.sealed_headers is None
        and not request.sealed_signing_secrets
        and not request.sealed_webhook_secrets
    ):
        return _Unsealed({}, [], [])
    try:
        sealer = sealer_for(settings)
        headers: dict[str, str] = {}
        if request.sealed_headers is not None:
            headers = sealer.unseal_json(request.sealed_headers)
        secrets = [sealer.unseal(s) for s in request.sealed_signing_secrets]
        webhook = [sealer.unseal(s) for s in request.sealed_webhook_secrets]
    except SealingError as error:
        raise Refused("configuration", str(error)) from None
    for name, value in headers.items():
        if not _TOKEN_RE.fullmatch(name) or _BAD_VALUE_RE.search(value):
            raise Refused("invalid_request", "a secret header is not a valid HTTP header")
    return _Unsealed(headers, secrets, webhook)


def _sign(headers: dict[str, str], request: TriggerRequest, body: bytes, keys: _Unsealed) -> None:
    """Add the signature headers of each scheme the tenant has active secrets of, timed
    now, at send time: a receiver's tolerance measures the network, not how long the
    message waited on the broker. A task's own header of a name taskhub sets here is
    dropped (compared case-insensitively), so a receiver never sees two."""
    now = int(time.time())
    if keys.signing:
        headers[signing.HEADER] = signing.sign(keys.signing, body, now)
    if keys.webhook:
        for name in [n for n in headers if n.lower() in standard_webhooks.HEADERS]:
            del headers[name]
        headers.update(
            standard_webhooks.signed_headers(keys.webhook, request.idempotency_key, now, body)
        )


def _excerpt(body: bytes | bytearray, more: bool = False, secrets: Sequence[str] = ()) -> str:
    """The start of the body, without the request's own credentials (``secrets``): a
    target that echoes request headers must not put them into the execution history,
    the result backend or a log. ``more``: the body went on past what was read."""
    if not secrets or not body or (not more and len(body) < min(map(len, secrets))):
        # Nothing to scrub: no credential, or a whole body too short to hold one in any
        # form (each is at least as long in bytes as in characters).
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


def _own_secrets(request: TriggerRequest, keys: _Unsealed, settings: Settings) -> list[str]:
    """The credential values this request carries: its unsealed headers, any plain header
    named like a credential (a task stored before the name counted as one), and its
    tenant's signing secrets."""
    plain = [
        value
        for name, value in request.headers.items()
        if credentials.is_secret(name, settings.secret_headers)
    ]
    return [*keys.headers.values(), *plain, *keys.signing, *keys.webhook]


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
    if isinstance(exc, http_client.ConnectTimeout):
        return "timeout", f"could not connect to {where} within the connect timeout"
    if isinstance(exc, TimeoutError):  # the deadline (asyncio's timeout raises this)
        if phase == "body":
            return "timeout", f"response body not read within {timeout_s:g} s"
        return "timeout", f"no response within {timeout_s:g} s"
    if isinstance(exc, http_client.ResolveFailed):
        cause = exc.os_error
        if isinstance(cause, BlockedAddressError):
            return "blocked_address", f"blocked_address: {cause}"
        return "dns", f"DNS lookup failed for {url.host}: {_os_reason(cause)}"
    if isinstance(exc, http_client.TLSFailed):
        if exc.certificate:
            return "tls", f"TLS certificate error with {where}: {_os_reason(exc.ssl_error)}"
        return "tls", f"TLS error with {where}: {_os_reason(exc.ssl_error)}"
    if isinstance(exc, http_client.ConnectFailed):
        return "connection", f"cannot connect to {where}: {_os_reason(exc.os_error)}"
    if isinstance(exc, http_client.Disconnected):
        return "connection", f"{where} closed the connection without a response"
    if isinstance(exc, http_client.IncompleteBody) or (
        isinstance(exc, http_client.InvalidResponse) and phase == "body"
    ):
        return "connection", f"{where} sent a malformed or incomplete response body"
    if isinstance(exc, http_client.InvalidResponse):
        return "connection", f"{where} sent an invalid HTTP response"
    if isinstance(exc, OSError):
        return "connection", f"connection to {where} failed: {_os_reason(exc)}"
    if isinstance(exc, ValueError | UnicodeError):  # e.g. a header that cannot be encoded
        return "invalid_request", "the request cannot be sent (invalid header or method)"
    raise exc


# --------------------------------------------------------------------------- one attempt


async def _resolve_guarded(resolver: _GuardedResolver, host: str, port: int) -> list[str]:
    return [result["host"] for result in await resolver.resolve(host, port, socket.AF_UNSPEC)]


def new_pool(settings: Settings, limit: int) -> http_client.Pool:
    """Connections for one address policy, at most ``limit`` open; create and use it on
    the loop it is to live on."""
    # Guarded even with private targets allowed: the cloud metadata services
    # stay closed to host names that resolve to them.
    resolver = _GuardedResolver(DefaultResolver(), settings.address_policy)
    return http_client.Pool(
        functools.partial(_resolve_guarded, resolver),
        limit=limit,
        # Below common servers' idle timeouts (Node's is 5 s), so a pooled
        # connection is rarely one the server is closing at that moment.
        keepalive_s=KEEPALIVE_S,
        dns_ttl_s=DNS_TTL_S,
        user_agent=USER_AGENT,
    )


class _ToSign(NamedTuple):
    """What a signed request is made of until its send time signs and encodes it."""

    keys: _Unsealed
    headers: dict[str, str]
    body: bytes | None


class Prepared(NamedTuple):
    """An attempt's request, made ready (:func:`prepare`): everything that is the same
    whenever it is sent. Held before its send time, a burst's attempts are prepared
    while the loop has nothing else to do, and pay only the send at their time."""

    url: URL
    #: The request as sent, when nothing in it is timed at the send (no signing
    #: secrets): only these bytes are kept. Empty for a signed one.
    encoded: bytes
    #: Else what its send time signs and encodes.
    to_sign: _ToSign | None
    #: The request's own credential values, kept out of the response's excerpt.
    secrets: list[str]


def prepare(
    pool: http_client.Pool, request: TriggerRequest, settings: Settings
) -> Prepared | Refused:
    """The attempt's request made ready, or why it is not sent (its outcome at its send
    time): the URL and headers checked, credentials unsealed, taskhub's headers added."""
    try:
        url = _check_request(request, settings.address_policy)
        keys = _unseal(request, settings)
    except Refused as refused:
        return refused
    body = None if request.body is None else request.body.encode("utf-8")
    headers = attempt_headers(request, keys.headers)
    secrets = _own_secrets(request, keys, settings)
    if keys.signing or keys.webhook:
        return Prepared(url, b"", _ToSign(keys, headers, body), secrets)
    return Prepared(url, pool.encode(request.method, url, headers, body), None, secrets)


async def make_attempt(
    pool: http_client.Pool,
    request: TriggerRequest,
    settings: Settings,
    prepared: Prepared | Refused | None = None,
) -> TriggerOutcome:
    """One attempt, from the moment it has a slot: its clock starts here. ``prepared``:
    its request made ready ahead (:func:`prepare`), else it is prepared now."""
    started_at = utcnow()
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

    ready = prepared if prepared is not None else prepare(pool, request, settings)
    if isinstance(ready, Refused):
        return outcome(None, ready.kind, ready.message)
    url = ready.url
    data = ready.encoded
    if ready.to_sign is not None:
        keys, headers, body = ready.to_sign
        headers = dict(headers)
        try:
            _sign(headers, request, body or b"", keys)
        except ValueError:  # a stored secret that is not its scheme's (never made by taskhub)
            return outcome(None, "configuration", "a signing secret does not fit its scheme")
        data = pool.encode(request.method, url, headers, body)
    timeout_s = request.timeout_s
    phase = "response"
    try:
        async with asyncio.timeout(timeout_s):
            connect_timeout_s = min(settings.connect_timeout_s, timeout_s)
            response = await pool.send(
                request.method, url, data, connect_timeout_s, settings.max_response_bytes
            )
            phase = "body"
            status = response.status
            retry_after = parse_retry_after(response.retry_after, utcnow())
            body, truncated = await response.read()
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
    return outcome(status, None, error, retry_after, _excerpt(body, truncated, ready.secrets))


def make_attempt_blocking(request: TriggerRequest, settings: Settings) -> TriggerOutcome:
    """One attempt from a plain thread, on a loop and session of its own.

    For the few requests taskhub makes beside its triggers (a task's callback, a
    notification): they pass the same SSRF guard, signing and excerpt scrubbing as a
    trigger, and a request no more than once a second is not worth a pooled client."""

    async def attempt() -> TriggerOutcome:
        pool = new_pool(settings, limit=1)
        try:
            return await make_attempt(pool, request, settings)
        finally:
            await pool.close()

    return asyncio.run(attempt())
