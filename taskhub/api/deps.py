"""What every route depends on: who calls, when, and the one transaction it runs in.

Every ``/v1`` route authenticates its caller (``Authorization: Bearer <key>``) and counts
the call against the tenant's rate limits before it looks at anything else, then opens
one transaction around one service function of ``taskhub.service``: a refused request
raises inside the transaction, so it rolls back and changes nothing. Bodies are read here
as plain JSON, with a cap; the service validates them. Neither API keys nor request
bodies are ever logged or echoed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection, Engine

from taskhub.api.errors import TooLarge, Unauthorized
from taskhub.api.key_cache import KeyCache, KnownKey
from taskhub.core import definitions
from taskhub.core.errors import ValidationError
from taskhub.core.settings import Settings
from taskhub.observability.metrics import Metrics
from taskhub.service import apikeys, quotas

T = TypeVar("T")

#: The largest request body read: a task at every documented limit, JSON-escaped, fits.
MAX_REQUEST_BYTES = 1024 * 1024
#: The largest batch of tasks read (``POST /v1/tasks:batch``): a thousand tasks of a
#: few kilobytes each fit.
MAX_BATCH_REQUEST_BYTES = 16 * MAX_REQUEST_BYTES


# --- the caller -----------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every route needs, set on ``app.state`` by
    :func:`taskhub.api.app.create_app`."""

    engine: Engine
    clock: Callable[[], datetime]
    tick: Callable[[], object]
    metrics: Metrics
    #: The process's settings, built once: every service call is given them.
    settings: Settings
    #: The API keys this process checked a moment ago.
    keys: KeyCache


@dataclass(frozen=True)
class Caller:
    """An authenticated request: its tenant, and the one moment it is handled at."""

    tenant: str
    now: datetime
    context: Context

    @property
    def settings(self) -> Settings:
        return self.context.settings

    def run(self, work: Callable[[Connection], T]) -> T:
        """One transaction around one service call: committed if it returns, rolled back
        (nothing changed) if it raises."""
        with self.context.engine.begin() as conn:
            return work(conn)


async def context_of(request: Request) -> Context:
    """Async, as it does no I/O: FastAPI runs a sync dependency in its thread pool, a
    hand-off that costs more than this."""
    context: Context = request.app.state.taskhub
    return context


AppContext = Annotated[Context, Depends(context_of)]
bearer = HTTPBearer(auto_error=False, description="An API key of your tenant.")


async def caller_of(
    context: AppContext,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller's tenant; anything but a valid, unrevoked key is a 401. Resolved before
    the query and the body are looked at, so a caller without a key learns nothing.

    A key this process checked a moment ago (:mod:`taskhub.api.key_cache`) is not read
    again; a tenant without a request rate then needs no transaction, and no hop to the
    thread pool either."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send Authorization: Bearer <api key>")
    now = context.clock()
    presented = credentials.credentials
    known = context.keys.get(presented)
    if known is None or known.requests_per_second:
        tenant = await run_in_threadpool(_authenticate, context, presented, now, known)
    else:
        tenant = known.tenant
    if tenant is None:
        raise Unauthorized("the API key is not valid")
    return Caller(tenant, now, context)


def _authenticate(
    context: Context, presented: str, now: datetime, known: KnownKey | None
) -> str | None:
    """In one transaction: the key's tenant (unless ``known``), and the request counted
    against the tenant's rate."""
    with context.engine.begin() as conn:
        if known is None:
            tenant = apikeys.authenticate(conn, presented, now)
            if tenant is None:
                return None
            rate = quotas.limits_of(conn, tenant, context.settings).requests_per_second
            known = KnownKey(tenant, rate)
            context.keys.put(presented, known)
        quotas.count_call(
            conn,
            known.tenant,
            quotas.REQUESTS,
            now,
            context.settings,
            known.requests_per_second,
        )
    return known.tenant


Authed = Annotated[Caller, Depends(caller_of)]


def run_caller_of(caller: Authed) -> Caller:
    """A run-now or redrive call: counted against the tenant's runs_per_minute first."""
    caller.run(
        lambda conn: quotas.count_call(
            conn, caller.tenant, quotas.RUNS, caller.now, caller.settings
        )
    )
    return caller


RunAuthed = Annotated[Caller, Depends(run_caller_of)]


# --- request bodies -------------------------------------------------------------------


async def json_body(request: Request) -> Any:
    """The request body as parsed JSON, whatever it holds: the service functions say what
    is wrong with it. Read with a cap, so a huge body costs nothing."""
    raw = await _read_body(request)
    if not raw.strip():
        raise ValidationError("body", "is required: send a JSON object")
    return _parse_json(raw)


async def optional_json_body(request: Request) -> Any:
    """As :func:`json_body`, but an empty body is ``{}``."""
    raw = await _read_body(request)
    return _parse_json(raw) if raw.strip() else {}


async def batch_json_body(request: Request) -> Any:
    """As :func:`json_body`, with the larger cap of a batch of tasks."""
    raw = await _read_body(request, MAX_BATCH_REQUEST_BYTES)
    if not raw.strip():
        raise ValidationError("body", "is required: send a JSON object")
    return _parse_json(raw)


async def _read_body(request: Request, cap: int = MAX_REQUEST_BYTES) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise TooLarge(f"the request body exceeds {cap} bytes", "body")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > cap:
            raise TooLarge(f"the request body exceeds {cap} bytes", "body")
    return bytes(raw)


def _parse_json(raw: bytes) -> Any:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationError("body", "is not valid JSON") from None
    # JSON may carry lone surrogates ("\ud800") that no column or header can hold: every
    # body is refused for them here, whichever route it is for (previews, pause reasons).
    definitions.refuse_unencodable(parsed)
    return parsed


JsonBody = Annotated[Any, Depends(json_body)]
OptionalJsonBody = Annotated[Any, Depends(optional_json_body)]
BatchJsonBody = Annotated[Any, Depends(batch_json_body)]
