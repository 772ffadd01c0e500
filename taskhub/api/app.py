"""The REST API: a thin FastAPI layer over the service functions.

Every ``/v1`` route authenticates its caller (``Authorization: Bearer <key>``), opens one
transaction, calls one service function of ``taskhub.service``
and returns its dict; a refused request raises inside the transaction, so it rolls back
and changes nothing. Request bodies are read as plain JSON and validated by the service
(which names the offending field exactly as the CLI does); the pydantic models below
describe the bodies and every response in the OpenAPI schema at ``/openapi.json``, and
the response models also check each response on its way out.

Every error, ours or the framework's, has one shape: ``{"error": {"code", "message",
"field"}}``. Neither API keys nor request bodies are ever logged or echoed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import sqlalchemy.exc
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.json_schema import models_json_schema
from sqlalchemy.engine import Connection, Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskhub.core import definitions, paging
from taskhub.core.errors import NotFound, RateLimited, TaskhubError, ValidationError
from taskhub.core.sealing import SealingError
from taskhub.core.settings import load
from taskhub.core.statuses import ExecutionStatus, LastStatus, MisfirePolicy, PausedBy, TaskStatus
from taskhub.observability.metrics import CONTENT_TYPE, Metrics
from taskhub.service import apikeys, database, executions, quotas, signing_secrets, task_service

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The largest request body read: a task at every documented limit, JSON-escaped, fits.
MAX_REQUEST_BYTES = 1024 * 1024
#: The largest execution id either database can hold (a signed 64-bit integer).
MAX_EXECUTION_ID = 2**63 - 1
#: Database errors that mean "not reachable or too busy now", not "bad request": a 503.
UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- errors ---------------------------------------------------------------------------


class Unauthorized(TaskhubError):
    code = "unauthorized"
    http_status = 401


class TooLarge(TaskhubError):
    code = "too_large"
    http_status = 413


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}}, status_code=status
    )


# --- schema: what the API receives and returns ----------------------------------------

DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Tags = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": definitions.MAX_TAGS,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "additionalProperties": {
                "type": "string",
                "maxLength": definitions.MAX_TAG_VALUE_CHARS,
            },
        }
    ),
]
Headers = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": definitions.MAX_HEADERS,
            "propertyNames": {
                "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                "maxLength": definitions.MAX_HEADER_NAME_CHARS,
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": definitions.MAX_HEADER_VALUE_CHARS,
            },
            "description": (
                "Sent with every attempt. Not allowed: Idempotency-Key, X-Taskhub-*, Host, "
                "Content-Length and hop-by-hop headers; at most "
                f"{definitions.MAX_HEADERS_BYTES} bytes in all."
            ),
        }
    ),
]
Url = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=definitions.MAX_URL_CHARS, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://"
    ),
]
Body = Annotated[
    str,
    Field(description=f"Sent as is; at most {definitions.MAX_BODY_BYTES} bytes (UTF-8)."),
]
Timeout = Annotated[
    float, Field(ge=definitions.MIN_TIMEOUT_S, le=definitions.MAX_TIMEOUT_S, allow_inf_nan=False)
]
Backoff = Annotated[float, Field(ge=0, le=definitions.MAX_BACKOFF_S, allow_inf_nan=False)]
MaxExecutions = Annotated[int, Field(ge=1, le=2**31 - 1)]
MisfirePolicyField = Annotated[
    MisfirePolicy,
    Field(
        description="What a claim does with occurrences missed for longer than the misfire "
        "grace: `fire_once` (one execution for them), `skip` (none), `fire_each` (one each, "
        "at most TASKHUB_MISFIRE_FIRE_EACH_MAX, the newest)."
    ),
]
AutoPause = Annotated[
    int,
    Field(
        ge=1,
        le=definitions.MAX_AUTO_PAUSE_AFTER_FAILURES,
        description="Pause the task after this many failed executions in a row; null: never.",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskRateLimit(_Strict):
    """Flow control of this task's requests, shared by every worker (with the host's
    TASKHUB_HOST_LIMITS the tighter wins); at least one field."""

    max_in_flight: int | None = Field(None, ge=1, le=definitions.MAX_RATE_IN_FLIGHT)
    per_second: float | None = Field(None, gt=0, le=definitions.MAX_RATE_PER_SECOND)


class TaskRateLimitShown(_Strict):
    """A task's flow control as returned (null: no limit of that kind)."""

    max_in_flight: int | None
    per_second: float | None


Spread = Annotated[
    int,
    Field(
        ge=0,
        le=definitions.MAX_SPREAD_S,
        description="Fire each occurrence at a stable pseudo-random offset within this many "
        "seconds after its due time (derived from its Idempotency-Key); 0: on time.",
    ),
]


class CronSchedule(_Strict):
    cron: str = Field(
        description="Five fields: minute hour day-of-month month day-of-week.",
        examples=["0 9 * * 1-5"],
    )
    timezone: str = Field("UTC", description="An IANA time zone.", examples=["Asia/Taipei"])


class IntervalSchedule(_Strict):
    interval_seconds: int = Field(ge=definitions.MIN_INTERVAL_S, le=definitions.MAX_INTERVAL_S)


class AtSchedule(_Strict):
    at: DateTime = Field(description="One time; when creating, not in the past.")


Schedule = CronSchedule | IntervalSchedule | AtSchedule


# Responses are described without the input limits: a stored task stays readable even
# if a limit is tightened later.


class Target(_Strict):
    url: str
    method: Method
    headers: dict[str, str] = Field(
        description=(
            "Credential headers (Authorization, Cookie, API-key headers, "
            "TASKHUB_SECRET_HEADERS) are masked, e.g. `Bearer ****wxyz`; send a masked "
            "value back unchanged to keep the stored one."
        )
    )
    body: str | None
    timeout_seconds: float


class Retry(_Strict):
    max_attempts: int
    backoff_seconds: float
    max_backoff_seconds: float


class TargetCreate(_Strict):
    url: Url
    method: Method = Field("POST", description="Any case.")
    headers: Headers | None = None
    body: Body | None = None
    timeout_seconds: Timeout = 30.0


class TargetPatch(_Strict):
    """Merged field by field into the task's target."""

    url: Url | None = None
    method: Method | None = None
    headers: Headers | None = None
    body: Body | None = None
    timeout_seconds: Timeout | None = None


class RetryCreate(_Strict):
    max_attempts: int = Field(3, ge=1, le=definitions.MAX_ATTEMPTS)
    backoff_seconds: Backoff = 10.0
    max_backoff_seconds: Backoff = Field(600.0, description="Not below backoff_seconds.")


class TaskCreate(_Strict):
    """A task as sent: only ``name``, ``schedule`` and ``target.url`` are required."""

    name: str = Field(min_length=1, max_length=definitions.MAX_NAME_CHARS)
    schedule: Schedule
    target: TargetCreate
    retry: RetryCreate | None = None
    start_at: DateTime | None = None
    end_at: DateTime | None = None
    max_executions: MaxExecutions | None = None
    tags: Tags | None = None
    misfire_policy: MisfirePolicyField | None = None
    auto_pause_after_failures: AutoPause | None = None
    rate_limit: TaskRateLimit | None = None
    spread_seconds: Spread | None = None


class TaskPatch(_Strict):
    """The fields to change. ``target`` and ``retry`` merge field by field; every other
    field is replaced whole. A changed schedule or window recomputes the next run."""

    name: str | None = Field(None, min_length=1, max_length=definitions.MAX_NAME_CHARS)
    schedule: Schedule | None = None
    target: TargetPatch | None = None
    retry: RetryCreate | None = None
    start_at: DateTime | None = None
    end_at: DateTime | None = None
    max_executions: MaxExecutions | None = None
    tags: Tags | None = None
    misfire_policy: MisfirePolicyField | None = None
    auto_pause_after_failures: AutoPause | None = None
    rate_limit: TaskRateLimit | None = None
    spread_seconds: Spread | None = None


class PauseRequest(_Strict):
    """Optional: why the task is paused (shown as its ``paused_reason``)."""

    reason: str | None = Field(None, max_length=task_service.MAX_PAUSE_REASON_CHARS)


class RedriveFilter(_Strict):
    """Which dead letters to redrive: at least one filter, or ``{"all": true}``."""

    task_id: Uuid | None = None
    tags: Tags | None = Field(None, description="The task's tags; every one must match.")
    since: DateTime | None = Field(None, description="Due at or after this time.")
    until: DateTime | None = Field(None, description="Due before this time.")
    all: Literal[True] | None = Field(None, description="Every dead letter; no other field.")


class Redriven(_Strict):
    redriven: int = Field(description="How many dead letters were sent again.")


class SchedulePreviewRequest(_Strict):
    schedule: Schedule
    start_at: DateTime | None = None
    end_at: DateTime | None = None
    max_executions: MaxExecutions | None = None


class Task(_Strict):
    """A task as returned: what was sent, defaults filled in, plus its state."""

    id: Uuid
    name: str
    schedule: Schedule
    target: Target
    retry: Retry
    start_at: DateTime | None
    end_at: DateTime | None
    max_executions: int | None
    tags: dict[str, str]
    misfire_policy: MisfirePolicy
    auto_pause_after_failures: int | None
    rate_limit: TaskRateLimitShown | None
    spread_seconds: int
    status: TaskStatus
    next_execution_time: DateTime | None
    last_execution_time: DateTime | None
    last_status: LastStatus | None
    execution_count: int
    consecutive_failures: int
    paused_by: PausedBy | None = Field(
        description="Who paused the task: `user`, or `auto_pause` (its failures in a row "
        "reached auto_pause_after_failures); null while not paused."
    )
    paused_reason: str | None
    paused_at: DateTime | None
    created_at: DateTime
    updated_at: DateTime


class Execution(_Strict):
    """The record of firing one occurrence of a task."""

    id: int
    task_id: Uuid
    scheduled_for: DateTime
    status: ExecutionStatus
    attempts: int
    http_status: int | None
    duration_ms: int | None
    error: str | None
    response_excerpt: str | None = Field(description="The start of the last response body.")
    idempotency_key: str = Field(description="Sent as Idempotency-Key with every attempt.")
    next_attempt_at: DateTime | None = Field(description="When a queued execution is sent.")
    started_at: DateTime | None
    finished_at: DateTime | None
    created_at: DateTime


class TaskPage(_Strict):
    items: list[Task]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ExecutionPage(_Strict):
    items: list[Execution]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class FireTime(_Strict):
    utc: DateTime
    local: DateTime = Field(description="The same instant in the schedule's time zone.")


class Preview(_Strict):
    timezone: str
    fire_times: list[FireTime]


class ErrorDetail(_Strict):
    code: str = Field(examples=["invalid", "not_found", "conflict", "unauthorized"])
    message: str
    field: str | None = Field(description="Dotted path of the offending field, if one.")


class Error(_Strict):
    error: ErrorDetail


class Health(_Strict):
    status: Literal["ok"]


class SigningSecret(_Strict):
    """A signing secret as listed: a hint to tell it apart, never the secret."""

    id: Uuid
    tenant: str
    hint: str = Field(description="`whsec_…` and the secret's last 4 characters.")
    active: bool
    created_at: DateTime
    revoked_at: DateTime | None


class SigningSecretCreated(SigningSecret):
    """A new signing secret: the only response that ever holds the secret itself."""

    secret: str = Field(description="Shown this once; store it in your receiver now.")


class SigningSecretPage(_Strict):
    items: list[SigningSecret]


#: Request bodies: documented here, validated by the service functions.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    TaskCreate,
    TaskPatch,
    SchedulePreviewRequest,
    PauseRequest,
    RedriveFilter,
)


def _body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    why = {
        401: "No valid API key",
        404: "No such object for this tenant",
        409: "Conflicts with the current state",
        413: "Request body too large",
        422: "Invalid input; `field` names it",
        429: "A rate limit of the tenant is reached; `Retry-After` says when to retry",
        503: "The database is unavailable",
    }
    documented: dict[int | str, dict[str, Any]] = {
        s: {"model": Error, "description": why[s]} for s in (401, 422, 429, 503, *statuses)
    }
    documented[429]["headers"] = {
        "Retry-After": {"description": "Seconds", "schema": {"type": "integer", "minimum": 1}}
    }
    return documented


# --- plumbing -------------------------------------------------------------------------


class TaskhubApp(FastAPI):
    """FastAPI, plus the request-body schemas in the OpenAPI document's components."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = get_openapi(
            title=self.title,
            version=self.version,
            description=self.description,
            routes=self.routes,
        )
        _, extra = models_json_schema(
            [(model, "validation") for model in REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in extra.get("$defs", {}).items():
            if components.setdefault(name, definition) != definition:
                raise RuntimeError(f"two different OpenAPI schemas are named {name}")
        self.openapi_schema = schema
        return schema


class RequestMetrics:
    """Counts and times every request by method, route template (never the raw path,
    which would put ids in labels) and status."""

    METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def template(self, scope: Scope) -> str:
        """The matched route's path template. FastAPI notes its own routes in the scope;
        the rest (``/docs``, ``/openapi.json``) are matched again here."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in self.METHODS else "other"
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(method, self.template(scope), status, elapsed)


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


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise TooLarge(f"the request body exceeds {MAX_REQUEST_BYTES} bytes", "body")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_REQUEST_BYTES:
            raise TooLarge(f"the request body exceeds {MAX_REQUEST_BYTES} bytes", "body")
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


def _execution_ref(value: str) -> str:
    """An id that cannot be an execution is simply not found (never a database error)."""
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_EXECUTION_ID:
        raise NotFound("no such execution")
    return value


def _install_error_handlers(app: FastAPI) -> None:
    async def taskhub_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, TaskhubError)
        response = JSONResponse(error.to_dict(), status_code=error.http_status)
        if error.http_status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response

    async def request_invalid(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": ("body",), "msg": "is invalid"}
        loc = [str(part) for part in first.get("loc", ())]
        field = ".".join(loc[1:] if loc and loc[0] in ("query", "path", "header") else loc)
        return _error(422, "invalid", str(first.get("msg", "is invalid")), field or "body")

    async def http_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "no such route" if error.status_code == 404 else str(error.detail)
        response = _error(error.status_code, codes.get(error.status_code, "error"), message)
        if error.headers:
            response.headers.update(error.headers)
        return response

    async def database_error(_request: Request, error: Exception) -> Response:
        # Logged by class only: a statement's parameters may hold a task's headers or body.
        if isinstance(error, sqlalchemy.exc.IntegrityError):
            # A race the service's own checks could not see (e.g. two creates of one name).
            return _error(409, "conflict", "conflicts with a concurrent change; try again")
        if isinstance(error, sqlalchemy.exc.DataError):
            # What the service let through but the database cannot hold or compare, such
            # as a NUL character on PostgreSQL: still the caller's input, so a 422.
            return _error(
                422, "invalid", "holds a value the database cannot store (a NUL character?)"
            )
        if isinstance(error, UNAVAILABLE):
            log.warning("database unavailable: %s", error.__class__.__name__)
            return _error(503, "unavailable", "the database is unavailable; try again")
        cause = getattr(error, "orig", None)
        log.error("database error: %s (%s)", type(error).__name__, type(cause).__name__)
        return _error(500, "internal", "internal error")

    async def sealing_error(_request: Request, error: Exception) -> Response:
        # The message names the setting to fix; it never holds key or token bytes.
        log.error("cannot unseal a stored secret: %s", error)
        return _error(500, "internal", str(error))

    async def overflow(_request: Request, _exc: Exception) -> Response:
        return _error(422, "invalid", "a time or number is out of range")

    async def unexpected(_request: Request, error: Exception) -> Response:
        log.error("unexpected error", exc_info=error)
        return _error(500, "internal", "internal error")

    app.add_exception_handler(TaskhubError, taskhub_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sqlalchemy.exc.SQLAlchemyError, database_error)
    app.add_exception_handler(SealingError, sealing_error)
    app.add_exception_handler(OverflowError, overflow)
    app.add_exception_handler(Exception, unexpected)


# --- dependencies ---------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every route needs, set on ``app.state`` by :func:`create_app`."""

    engine: Engine
    clock: Callable[[], datetime]
    tick: Callable[[], object]
    metrics: Metrics


@dataclass(frozen=True)
class Caller:
    """An authenticated request: its tenant, and the one moment it is handled at."""

    tenant: str
    now: datetime
    context: Context

    def run(self, work: Callable[[Connection], T]) -> T:
        """One transaction around one service call: committed if it returns, rolled back
        (nothing changed) if it raises."""
        with self.context.engine.begin() as conn:
            return work(conn)


def context_of(request: Request) -> Context:
    context: Context = request.app.state.taskhub
    return context


bearer = HTTPBearer(auto_error=False, description="An API key of your tenant.")


def caller_of(
    context: Annotated[Context, Depends(context_of)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller's tenant; anything but a valid, unrevoked key is a 401. Resolved before
    the query and the body are looked at, so a caller without a key learns nothing."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send Authorization: Bearer <api key>")
    now = context.clock()
    with context.engine.begin() as conn:
        tenant = apikeys.authenticate(conn, credentials.credentials, now)
        if tenant is not None:
            quotas.count_call(conn, tenant, quotas.REQUESTS, now)
    if tenant is None:
        raise Unauthorized("the API key is not valid")
    return Caller(tenant, now, context)


Authed = Annotated[Caller, Depends(caller_of)]


def run_caller_of(caller: Authed) -> Caller:
    """A run-now or redrive call: counted against the tenant's runs_per_minute first."""
    caller.run(lambda conn: quotas.count_call(conn, caller.tenant, quotas.RUNS, caller.now))
    return caller


RunAuthed = Annotated[Caller, Depends(run_caller_of)]
JsonBody = Annotated[Any, Depends(json_body)]
OptionalJsonBody = Annotated[Any, Depends(optional_json_body)]


# Query parameters are documented by exactly these schemas (never null, only absent) and
# checked by the service functions, so their errors read as the CLI's.
_STRING: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}

Cursor = Annotated[
    str | None,
    Query(description="The `next_cursor` of the previous page."),
    WithJsonSchema(_STRING),
]
Limit = Annotated[
    int | None,
    Query(description=f"Page size (default {paging.DEFAULT_LIMIT})."),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": paging.MAX_LIMIT}),
]
Count = Annotated[
    int,
    Query(description="How many fire times."),
    WithJsonSchema(
        {"type": "integer", "minimum": 1, "maximum": task_service.MAX_PREVIEW, "default": 10}
    ),
]
Since = Annotated[
    str | None,
    Query(description="Only occurrences due at or after this time."),
    WithJsonSchema(_TIME),
]
Until = Annotated[
    str | None, Query(description="Only occurrences due before this time."), WithJsonSchema(_TIME)
]
TaskStatusQuery = Annotated[
    str | None, Query(), WithJsonSchema({"type": "string", "enum": [s.value for s in TaskStatus]})
]
LastStatusQuery = Annotated[
    str | None, Query(), WithJsonSchema({"type": "string", "enum": [s.value for s in LastStatus]})
]
ExecutionStatusQuery = Annotated[
    str | None,
    Query(),
    WithJsonSchema({"type": "string", "enum": [s.value for s in ExecutionStatus]}),
]
TaskIdQuery = Annotated[
    str | None, Query(description="Only this task's (404 if it is none)."), WithJsonSchema(_STRING)
]
TagQuery = Annotated[
    list[str] | None,
    Query(description="`key:value`; repeat to require several tags."),
    WithJsonSchema({"type": "array", "items": {"type": "string", "pattern": "^[^:]+:"}}),
]
NameQuery = Annotated[str | None, Query(description="Exactly this name."), WithJsonSchema(_STRING)]
NamePrefixQuery = Annotated[
    str | None, Query(description="Names that start so."), WithJsonSchema(_STRING)
]
NextBeforeQuery = Annotated[
    str | None,
    Query(description="Next execution strictly before this time."),
    WithJsonSchema(_TIME),
]
NextAfterQuery = Annotated[
    str | None, Query(description="Next execution strictly after this time."), WithJsonSchema(_TIME)
]

router = APIRouter()

# --- tasks ----------------------------------------------------------------------------


@router.post(
    "/v1/tasks",
    tags=["tasks"],
    status_code=201,
    response_model=Task,
    responses=_responses(409, 413),
    openapi_extra=_body_doc(TaskCreate),
    summary="Create a task",
)
def create_task(caller: Authed, body: JsonBody, response: Response) -> dict[str, Any]:
    task = caller.run(lambda conn: task_service.add_task(conn, caller.tenant, body, caller.now))
    response.headers["Location"] = f"/v1/tasks/{task['id']}"
    return task


@router.get(
    "/v1/tasks",
    tags=["tasks"],
    response_model=TaskPage,
    responses=_responses(),
    summary="List tasks, oldest first",
)
def list_tasks(
    caller: Authed,
    status: TaskStatusQuery = None,
    tag: TagQuery = None,
    name: NameQuery = None,
    name_prefix: NamePrefixQuery = None,
    last_status: LastStatusQuery = None,
    next_before: NextBeforeQuery = None,
    next_after: NextAfterQuery = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.list_tasks(
            conn,
            caller.tenant,
            status=status,
            tags=tag,
            name=name,
            name_prefix=name_prefix,
            last_status=last_status,
            next_before=next_before,
            next_after=next_after,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get(
    "/v1/tasks/{task_id}",
    tags=["tasks"],
    response_model=Task,
    responses=_responses(404),
    summary="One task",
)
def get_task(caller: Authed, task_id: str) -> dict[str, Any]:
    return caller.run(lambda conn: task_service.get_task(conn, caller.tenant, task_id))


@router.patch(
    "/v1/tasks/{task_id}",
    tags=["tasks"],
    response_model=Task,
    responses=_responses(404, 409, 413),
    openapi_extra=_body_doc(TaskPatch),
    summary="Change fields of a task; the next run is recomputed",
)
def update_task(caller: Authed, task_id: str, body: JsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.update_task(conn, caller.tenant, task_id, body, caller.now)
    )


@router.delete(
    "/v1/tasks/{task_id}",
    tags=["tasks"],
    status_code=204,
    response_class=Response,
    responses=_responses(404),
    summary="Delete a task, with its executions",
)
def delete_task(caller: Authed, task_id: str) -> Response:
    caller.run(lambda conn: task_service.delete_task(conn, caller.tenant, task_id))
    return Response(status_code=204)


@router.post(
    "/v1/tasks/{task_id}/pause",
    tags=["tasks"],
    response_model=Task,
    responses=_responses(404, 409),
    openapi_extra=_body_doc(PauseRequest, required=False),
    summary="Pause a task, optionally saying why",
)
def pause_task(caller: Authed, task_id: str, body: OptionalJsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.pause_task(conn, caller.tenant, task_id, caller.now, body)
    )


@router.post(
    "/v1/tasks/{task_id}/resume",
    tags=["tasks"],
    response_model=Task,
    responses=_responses(404, 409),
    summary="Resume a task; occurrences that fell due while paused are skipped",
)
def resume_task(caller: Authed, task_id: str) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.resume_task(conn, caller.tenant, task_id, caller.now)
    )


@router.post(
    "/v1/tasks/{task_id}/run",
    tags=["tasks"],
    status_code=202,
    response_model=Execution,
    responses=_responses(404, 409),
    summary="Fire now: an extra occurrence, sent at once",
)
def run_task(caller: RunAuthed, task_id: str, background: BackgroundTasks) -> dict[str, Any]:
    execution = caller.run(
        lambda conn: task_service.run_task_now(conn, caller.tenant, task_id, caller.now)
    )
    background.add_task(caller.context.tick)
    return execution


@router.get(
    "/v1/tasks/{task_id}/executions",
    tags=["executions"],
    response_model=ExecutionPage,
    responses=_responses(404),
    summary="A task's executions, newest first",
)
def list_task_executions(
    caller: Authed,
    task_id: str,
    status: ExecutionStatusQuery = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> dict[str, Any]:
    return caller.run(
        lambda conn: executions.list_executions(
            conn,
            caller.tenant,
            task_id=task_id,
            status=status,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get(
    "/v1/tasks/{task_id}/preview",
    tags=["tasks"],
    response_model=Preview,
    responses=_responses(404),
    summary="The task's next fire times, in UTC and in its time zone",
)
def preview_task(caller: Authed, task_id: str, count: Count = 10) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.preview_task(conn, caller.tenant, task_id, caller.now, count)
    )


@router.post(
    "/v1/schedules/preview",
    tags=["tasks"],
    response_model=Preview,
    responses=_responses(413),
    openapi_extra=_body_doc(SchedulePreviewRequest),
    summary="The next fire times of a schedule not saved (catch DST and cron mistakes)",
)
def preview_schedule(caller: Authed, body: JsonBody, count: Count = 10) -> dict[str, Any]:
    # Reads nothing stored: no transaction.
    return task_service.preview_schedule(body, caller.now, count)


# --- executions and dead letters ------------------------------------------------------


@router.get(
    "/v1/executions",
    tags=["executions"],
    response_model=ExecutionPage,
    responses=_responses(404),
    summary="Executions of all the tenant's tasks, newest first",
)
def list_all_executions(
    caller: Authed,
    task_id: TaskIdQuery = None,
    status: ExecutionStatusQuery = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> dict[str, Any]:
    return caller.run(
        lambda conn: executions.list_executions(
            conn,
            caller.tenant,
            task_id=task_id,
            status=status,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get(
    "/v1/executions/{execution_id}",
    tags=["executions"],
    response_model=Execution,
    responses=_responses(404),
    summary="One execution",
)
def get_execution(caller: Authed, execution_id: str) -> dict[str, Any]:
    ref = _execution_ref(execution_id)
    return caller.run(lambda conn: executions.get_execution(conn, caller.tenant, ref))


@router.get(
    "/v1/dead-letters",
    tags=["dead letters"],
    response_model=ExecutionPage,
    responses=_responses(404),
    summary="Executions that exhausted their attempts, newest first",
)
def list_dead_letters(
    caller: Authed,
    task_id: TaskIdQuery = None,
    tag: TagQuery = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> dict[str, Any]:
    return caller.run(
        lambda conn: executions.list_dead_letters(
            conn,
            caller.tenant,
            task_id=task_id,
            tags=tag,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    )


@router.post(
    "/v1/dead-letters/redrive",
    tags=["dead letters"],
    response_model=Redriven,
    responses=_responses(404, 413),
    openapi_extra=_body_doc(RedriveFilter),
    summary="Redrive every dead letter that matches a filter (or all, explicitly)",
)
def redrive_matching(
    caller: RunAuthed, body: JsonBody, background: BackgroundTasks
) -> dict[str, Any]:
    result = executions.redrive_matching(caller.context.engine, caller.tenant, body, caller.now)
    if result["redriven"]:
        background.add_task(caller.context.tick)
    return result


@router.post(
    "/v1/dead-letters/{execution_id}/redrive",
    tags=["dead letters"],
    response_model=Execution,
    responses=_responses(404, 409),
    summary="Send a dead letter again: same idempotency key, a fresh budget of attempts",
)
def redrive(caller: RunAuthed, execution_id: str, background: BackgroundTasks) -> dict[str, Any]:
    ref = _execution_ref(execution_id)
    execution = caller.run(lambda conn: executions.redrive(conn, caller.tenant, ref, caller.now))
    background.add_task(caller.context.tick)
    return execution


# --- signing secrets ------------------------------------------------------------------


@router.post(
    "/v1/signing-secrets",
    tags=["signing secrets"],
    status_code=201,
    response_model=SigningSecretCreated,
    responses=_responses(409),
    summary="Create a signing secret (shown once); at most two active at once",
)
def create_signing_secret(caller: Authed) -> dict[str, Any]:
    secret, stored = caller.run(
        lambda conn: signing_secrets.create_secret(conn, caller.tenant, caller.now)
    )
    return {**stored.to_dict(), "secret": secret}


@router.get(
    "/v1/signing-secrets",
    tags=["signing secrets"],
    response_model=SigningSecretPage,
    responses=_responses(),
    summary="The tenant's signing secrets, newest first (hints only)",
)
def list_signing_secrets(caller: Authed) -> dict[str, Any]:
    found = caller.run(lambda conn: signing_secrets.list_secrets(conn, caller.tenant))
    return {"items": [secret.to_dict() for secret in found]}


@router.delete(
    "/v1/signing-secrets/{secret_id}",
    tags=["signing secrets"],
    status_code=204,
    response_class=Response,
    responses=_responses(404),
    summary="Revoke a signing secret: attempts from now on no longer carry its signature",
)
def revoke_signing_secret(caller: Authed, secret_id: str) -> Response:
    caller.run(
        lambda conn: signing_secrets.revoke_secret(conn, secret_id, caller.now, caller.tenant)
    )
    return Response(status_code=204)


# --- operations -----------------------------------------------------------------------


@router.get(
    "/healthz",
    tags=["operations"],
    response_model=Health,
    responses={503: {"model": Error, "description": "The database is unavailable"}},
    summary="Liveness: 200 when the database answers (no key needed)",
)
def healthz(context: Annotated[Context, Depends(context_of)]) -> Any:
    # On the raw driver connection: no transaction, so on SQLite no BEGIN IMMEDIATE, and
    # a probe never queues behind a writer for the busy timeout.
    try:
        raw = context.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()
    except Exception as error:  # any failure to answer is "not healthy"
        log.warning("healthz: database unavailable (%s)", error.__class__.__name__)
        return _error(503, "unavailable", "the database is unavailable")
    return {"status": "ok"}


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    summary="Prometheus metrics (no key needed)",
)
def prometheus_metrics(context: Annotated[Context, Depends(context_of)]) -> Response:
    return Response(context.metrics.render(), media_type=CONTENT_TYPE)


# --- the app --------------------------------------------------------------------------

DESCRIPTION = """\
taskhub fires HTTP triggers on cron, interval and one-time schedules.

Every `/v1` call needs `Authorization: Bearer <api key>` (`taskhub apikey create --tenant
NAME`). Errors always have the shape `{"error": {"code", "message", "field"}}`, where
`field` is the dotted path of the offending input. Lists are cursor-paged: pass a page's
`next_cursor` as `cursor` for the next one.
"""


def celery_tick() -> None:
    """Ask Celery for a tick; Celery is imported only when first needed."""
    from taskhub.worker.celery_app import request_tick

    request_tick()


#: Swagger UI's files, shipped in the package (see its SOURCE): /docs needs no network.
SWAGGER_UI_DIR = Path(__file__).parent / "static" / "swagger-ui"
DOCS_STATIC = "/docs/static"


def _serve_docs(app: FastAPI) -> None:
    """``/docs`` from the package's own copy of Swagger UI rather than FastAPI's default
    CDN, which leaves the page blank on a machine without Internet access. The online
    validator badge is off for the same reason."""
    app.mount(DOCS_STATIC, StaticFiles(directory=SWAGGER_UI_DIR), name="docs-static")

    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API reference",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def create_app(
    database_url: str | None = None,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    request_tick: Callable[[], object] = celery_tick,
) -> FastAPI:
    """The API over ``database_url`` (default: the settings'), or over ``engine``.

    ``request_tick`` runs after a run-now or a redrive has committed (after the response
    is sent), so the work goes out without waiting for beat.
    """
    if engine is None:
        engine = database.engine_for(database_url or load().database_url)
    metrics = Metrics(engine, clock)
    app = TaskhubApp(
        title="taskhub",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # served by _serve_docs, from the package
        redoc_url=None,
        openapi_tags=[
            {"name": "tasks", "description": "Registered HTTP triggers and their schedules"},
            {"name": "executions", "description": "The history of fired occurrences"},
            {"name": "dead letters", "description": "Executions that exhausted their attempts"},
            {"name": "signing secrets", "description": "Keys of X-Taskhub-Signature"},
            {"name": "operations", "description": "Liveness and Prometheus metrics"},
        ],
    )
    app.state.taskhub = Context(engine, clock, request_tick, metrics)
    _install_error_handlers(app)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app.routes)
    app.include_router(router)
    _serve_docs(app)
    return app
