"""What the API receives and returns, as pydantic models for the OpenAPI document.

Request bodies are read as plain JSON and validated by the service (which names the
offending field exactly as the CLI does): the request models only describe them. The
response models describe every response and also check each one on its way out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import BaseModel, Field, StringConstraints, WithJsonSchema

from taskhub.api.celery_schemas import STRICT, CeleryCallCreate, CeleryTarget
from taskhub.core import callbacks, limits
from taskhub.core.limits import Method
from taskhub.core.signing import Scheme
from taskhub.core.statuses import (
    CallbackStatus,
    ExecutionStatus,
    LastStatus,
    MisfirePolicy,
    OverlapPolicy,
    PausedBy,
    TaskStatus,
)

DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Date = Annotated[
    str, WithJsonSchema({"type": "string", "format": "date", "examples": ["2027-01-01"]})
]
Tags = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": limits.MAX_TAGS,
            "propertyNames": {"pattern": limits.TAG_KEY_PATTERN},
            "additionalProperties": {
                "type": "string",
                "maxLength": limits.MAX_TAG_VALUE_CHARS,
            },
        }
    ),
]
Headers = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": limits.MAX_HEADERS,
            "propertyNames": {
                "pattern": limits.HEADER_NAME_PATTERN,
                "maxLength": limits.MAX_HEADER_NAME_CHARS,
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": limits.MAX_HEADER_VALUE_CHARS,
            },
            "description": (
                "Sent with every attempt. Not allowed: Idempotency-Key, X-Taskhub-*, Host, "
                "Content-Length and hop-by-hop headers; at most "
                f"{limits.MAX_HEADERS_BYTES} bytes in all."
            ),
        }
    ),
]
Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_URL_CHARS, pattern=limits.URL_PATTERN),
]
Body = Annotated[
    str,
    # A string of more characters than the bytes allowed is too long in any encoding.
    Field(
        max_length=limits.MAX_BODY_BYTES,
        description=f"Sent as is; at most {limits.MAX_BODY_BYTES} bytes (UTF-8).",
    ),
]
Timeout = Annotated[
    float, Field(ge=limits.MIN_TIMEOUT_S, le=limits.MAX_TIMEOUT_S, allow_inf_nan=False)
]
Backoff = Annotated[
    float, Field(ge=limits.MIN_BACKOFF_S, le=limits.MAX_BACKOFF_S, allow_inf_nan=False)
]
MaxExecutions = Annotated[int, Field(ge=limits.MIN_EXECUTIONS, le=limits.MAX_EXECUTIONS)]
MisfirePolicyField = Annotated[
    MisfirePolicy,
    Field(
        description="What a claim does with occurrences missed for longer than the misfire "
        "grace: `fire_once` (one execution for them), `skip` (none), `fire_each` (one each, "
        "at most TASKHUB_MISFIRE_FIRE_EACH_MAX, the newest)."
    ),
]
OverlapPolicyField = Annotated[
    OverlapPolicy,
    Field(
        description="What to do with an occurrence that falls due while the task's previous "
        "execution is still running: `allow` (fire it; the default), `skip` (record it "
        "`skipped`, never fired), `buffer_one` (keep at most one waiting, `queued`, and fire "
        "it when the running one ends; a further one is skipped)."
    ),
]
AutoPause = Annotated[
    int,
    Field(
        ge=limits.MIN_AUTO_PAUSE_AFTER_FAILURES,
        le=limits.MAX_AUTO_PAUSE_AFTER_FAILURES,
        description="Pause the task after this many failed executions in a row; null: never.",
    ),
]

MaxLag = Annotated[
    int,
    Field(
        ge=limits.MIN_MAX_LAG_S,
        le=limits.MAX_MAX_LAG_S,
        description="A first attempt sent more than this many seconds after its due time "
        "raises a `late` notification; null: never late by lag.",
    ),
]


RetentionDays = Annotated[
    int,
    Field(
        ge=limits.MIN_RETENTION_DAYS,
        le=limits.MAX_RETENTION_DAYS,
        description="Days this task's ended executions are kept; null: the installation's "
        "TASKHUB_EXECUTION_RETENTION_DAYS. Dead letters follow "
        "TASKHUB_DEAD_LETTER_RETENTION_DAYS.",
    ),
]


class _Strict(BaseModel):
    model_config = STRICT


CalendarName = Annotated[
    str,
    Field(
        pattern=limits.CALENDAR_NAME_PATTERN,
        max_length=limits.MAX_CALENDAR_NAME_CHARS,
        examples=["tw-holidays"],
    ),
]
ExcludeCalendars = Annotated[
    list[CalendarName],
    Field(
        max_length=limits.MAX_EXCLUDE_CALENDARS,
        description="Names of the tenant's exclusion calendars: no occurrence fires on "
        "their dates (each in its calendar's time zone).",
    ),
]


class TaskRateLimit(_Strict):
    """Flow control of this task's requests, shared by every worker (with the host's
    TASKHUB_HOST_LIMITS the tighter wins); at least one field."""

    max_in_flight: int | None = Field(
        None, ge=limits.MIN_RATE_IN_FLIGHT, le=limits.MAX_RATE_IN_FLIGHT
    )
    per_second: float | None = Field(
        None, gt=limits.RATE_PER_SECOND_ABOVE, le=limits.MAX_RATE_PER_SECOND
    )


class TaskRateLimitShown(_Strict):
    """A task's flow control as returned (null: no limit of that kind)."""

    max_in_flight: int | None
    per_second: float | None


#: ``core.callbacks.EVENTS`` (a test checks that they agree).
CallbackEvent = Literal["success", "failure", "dead"]


def _every_event() -> list[CallbackEvent]:
    return ["success", "failure", "dead"]


class Callback(_Strict):
    """Where the outcome of each ended execution is posted: a JSON document with the keys
    ``task_id``, ``execution_id``, ``scheduled_for``, ``status``, ``attempts``,
    ``http_status``, ``duration_ms`` and ``response_excerpt``, signed as a trigger is."""

    url: Url = Field(description="Checked as target.url is (the same address rules).")
    on: list[CallbackEvent] = Field(
        default_factory=_every_event,
        min_length=1,
        description="The endings posted: `success` (the execution succeeded), `failure` "
        "(it failed), `dead` (its attempts ran out: a dead letter). Default: all three.",
    )


class CallbackDelivery(_Strict):
    """The callback of an execution's ending (its newest, if a redriven execution ended
    again)."""

    url: str
    event: CallbackEvent
    status: CallbackStatus = Field(
        description="`pending` (to be sent, or sent again after a failed attempt), "
        "`delivered` (answered 2xx) or `failed` (out of attempts)."
    )
    attempts: int = Field(description=f"Attempts made (at most {callbacks.MAX_ATTEMPTS}).")
    http_status: int | None = Field(description="The last attempt's HTTP status.")
    error: str | None = Field(description="The last attempt's error, if it failed.")
    next_attempt_at: DateTime | None = Field(description="When a pending one is sent next.")
    last_attempt_at: DateTime | None
    finished_at: DateTime | None


Spread = Annotated[
    int,
    Field(
        ge=limits.MIN_SPREAD_S,
        le=limits.MAX_SPREAD_S,
        description="Fire each occurrence at a stable pseudo-random offset within this many "
        "seconds after its due time (derived from its Idempotency-Key); 0: on time.",
    ),
]


class CronSchedule(_Strict):
    cron: str = Field(
        description="Five fields: minute hour day-of-month month day-of-week (day-of-month "
        "also L, L-n, nW, LW; day-of-week d#n, dL), or a macro alone: @yearly, @annually, "
        "@monthly, @weekly, @daily, @midnight, @hourly.",
        examples=["0 9 * * 1-5"],
    )
    timezone: str = Field(
        limits.DEFAULT_TIMEZONE, description="An IANA time zone.", examples=["Asia/Taipei"]
    )


class IntervalSchedule(_Strict):
    interval_seconds: int = Field(ge=limits.MIN_INTERVAL_S, le=limits.MAX_INTERVAL_S)


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


class TargetPatch(_Strict):
    """Merged field by field into the task's target. Giving ``celery`` to an HTTP target
    switches it to a Celery target (``url``, ``method``, ``headers`` and ``body`` are
    dropped), and ``url`` to a Celery target switches it back."""

    url: Url | None = Field(
        None, description="http or https; a private or cloud-metadata address is refused."
    )
    method: Method | None = None
    headers: Headers | None = Field(
        None, description="Credential headers are sealed at rest and masked in answers."
    )
    body: Body | None = None
    celery: CeleryCallCreate | None = Field(
        None,
        description="A Celery task to send instead of an HTTP call (then no url, method, "
        "headers or body); replaced whole by a patch.",
    )
    timeout_seconds: Timeout | None = Field(
        None, description="Per attempt, counted from when it gets a sending slot."
    )


class TargetCreate(TargetPatch):
    """Exactly one of ``url`` (an HTTP call, with ``method``, ``headers`` and ``body``)
    and ``celery`` (a Celery task to send); ``timeout_seconds`` applies to both."""

    # The patch's fields, in its order; a create fills defaults.
    method: Method = Field(limits.DEFAULT_METHOD, description="Any case; only with url.")
    timeout_seconds: Timeout = limits.DEFAULT_TIMEOUT_S


class RetryCreate(_Strict):
    max_attempts: int = Field(
        limits.DEFAULT_MAX_ATTEMPTS, ge=limits.MIN_ATTEMPTS, le=limits.MAX_ATTEMPTS
    )
    backoff_seconds: Backoff = limits.DEFAULT_BACKOFF_S
    max_backoff_seconds: Backoff = Field(
        limits.DEFAULT_MAX_BACKOFF_S, description="Not below backoff_seconds."
    )


class TaskPatch(_Strict):
    """The fields to change. ``target`` and ``retry`` merge field by field; every other
    field is replaced whole. A changed schedule or window recomputes the next run."""

    name: str | None = Field(None, min_length=1, max_length=limits.MAX_NAME_CHARS)
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
    exclude_calendars: ExcludeCalendars | None = None
    overlap: OverlapPolicyField | None = None
    retention_days: RetentionDays | None = None
    callback: Callback | None = None
    max_lag_seconds: MaxLag | None = None


class TaskCreate(TaskPatch):
    """A task as sent: only ``name``, ``schedule`` and ``target.url`` (or, for a Celery
    target, ``target.celery.task``) are required."""

    # The patch's fields, in its order (a task's fields are declared once); a create
    # requires these three.
    name: str = Field(min_length=1, max_length=limits.MAX_NAME_CHARS)
    schedule: Schedule
    target: TargetCreate


class PauseRequest(_Strict):
    """Optional: why the task is paused (shown as its ``paused_reason``)."""

    reason: str | None = Field(None, max_length=limits.MAX_PAUSE_REASON_CHARS)


class RedriveFilter(_Strict):
    """Which dead letters to redrive: at least one filter, or ``{"all": true}``."""

    task_id: Uuid | None = None
    tags: Tags | None = Field(None, description="The task's tags; every one must match.")
    since: DateTime | None = Field(None, description="Due at or after this time.")
    until: DateTime | None = Field(None, description="Due before this time.")
    all: Literal[True] | None = Field(None, description="Every dead letter; no other field.")


class Redriven(_Strict):
    redriven: int = Field(description="How many dead letters were sent again.")


class BackfillRequest(_Strict):
    """A past range, both ends included: every occurrence in it not yet executed is fired."""

    start: DateTime = Field(
        description="The range's first instant; not before the task's start_at, not in the future."
    )
    end: DateTime = Field(description="After start; a time later than now is taken as now.")


class Backfilled(_Strict):
    count: int = Field(description="How many occurrences were newly fired (0 on a repeat).")


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
    target: Target | CeleryTarget
    retry: Retry
    start_at: DateTime | None
    end_at: DateTime | None
    max_executions: int | None
    tags: dict[str, str]
    misfire_policy: MisfirePolicy
    auto_pause_after_failures: int | None
    rate_limit: TaskRateLimitShown | None
    spread_seconds: int
    exclude_calendars: list[str]
    overlap: OverlapPolicyField
    retention_days: int | None
    callback: Callback | None
    max_lag_seconds: int | None
    status: TaskStatus
    next_execution_time: DateTime | None
    last_execution_time: DateTime | None
    last_status: LastStatus | None
    execution_count: int
    consecutive_failures: int
    paused_by: PausedBy | None = Field(
        description="Who paused the task: `user`, `auto_pause` (its failures in a row "
        "reached auto_pause_after_failures), or `target_gone` (its target answered "
        "`410 Gone`); null while not paused."
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
    callback: CallbackDelivery | None = Field(
        None, description="The task's callback of this execution's ending, if any."
    )


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
    skipped: bool = Field(
        description="True for an occurrence that does not fire: skipped one by one, or on "
        "a date of one of the task's exclusion calendars."
    )
    reason: str | None = Field(
        default=None,
        description="Why a skipped occurrence does not fire: `skip`, or `calendar:<name>`; "
        "null when it fires.",
        examples=["skip", "calendar:tw-holidays"],
    )


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
    scheme: Scheme = Field(
        description="How it signs: `taskhub` (the `X-Taskhub-Signature` header) or "
        "`standard-webhooks` (the `webhook-id`, `webhook-timestamp` and `webhook-signature` "
        "headers of https://www.standardwebhooks.com)."
    )
    hint: str = Field(description="`whsec_…` and the secret's last 4 characters.")
    active: bool
    created_at: DateTime
    revoked_at: DateTime | None


class SigningSecretCreated(SigningSecret):
    """A new signing secret: the only response that ever holds the secret itself."""

    secret: str = Field(description="Shown this once; store it in your receiver now.")


class SigningSecretCreate(_Strict):
    """Optional: the scheme of the new secret (`taskhub` when left out)."""

    scheme: Scheme = Field(
        Scheme.TASKHUB,
        description="`taskhub` (`X-Taskhub-Signature`) or `standard-webhooks` (the "
        "`webhook-*` headers; the secret is `whsec_` and base64, as the spec's libraries "
        "read it). At most two active secrets per scheme.",
    )


class SigningSecretPage(_Strict):
    items: list[SigningSecret]


#: Request bodies: documented here, validated by the service functions.
class CalendarPatch(_Strict):
    """The fields to change; a calendar's name cannot change."""

    timezone: str | None = Field(None, examples=["Asia/Taipei"])
    dates: list[Date] | None = Field(None, max_length=limits.MAX_CALENDAR_DATES)


class CalendarCreate(_Strict):
    """An exclusion calendar: dates (in ``timezone``) on which the tasks that name it in
    ``exclude_calendars`` do not fire."""

    name: CalendarName
    timezone: str = Field(examples=["Asia/Taipei"], description="An IANA time zone.")
    dates: list[Date] = Field(default_factory=list, max_length=limits.MAX_CALENDAR_DATES)


class Calendar(_Strict):
    name: str
    timezone: str
    dates: list[Date]
    created_at: DateTime
    updated_at: DateTime


class CalendarPage(_Strict):
    items: list[Calendar]


class SkipRequest(_Strict):
    scheduled_for: DateTime = Field(
        description="An occurrence of the task's schedule (an instant it fires at)."
    )


class Skip(_Strict):
    task_id: Uuid
    scheduled_for: DateTime
    skipped: bool = Field(description="Whether the occurrence is now skipped.")


class BatchRequest(_Strict):
    """Task definitions to create or update, matched by name, and names to delete: from
    1 to the maximum items in all."""

    tasks: list[TaskCreate] = Field(
        default_factory=list,
        max_length=limits.MAX_BATCH_ITEMS,
        description="Each read exactly as one create reads it. A name the tenant holds is "
        "an update: the definition replaces the task's (a field left out takes its default).",
    )
    delete: list[str] = Field(
        default_factory=list,
        max_length=limits.MAX_BATCH_ITEMS,
        description="Names of the tenant's tasks to delete, with their executions.",
    )
    atomic: bool = Field(
        False, description="All or nothing: one refused item and nothing is stored."
    )
    dry_run: bool = Field(
        False, description="Compute every result, store nothing (the results are exact)."
    )


class BatchItemResult(_Strict):
    index: int = Field(description="The item's place in `tasks`, from 0.")
    name: str | None
    status: Literal["created", "updated", "unchanged", "error"]
    task: Task | None = Field(
        description="The task as stored (in a dry run: as it would be; a new one's id is "
        "not kept); null for an error."
    )
    changes: list[str] = Field(
        description="For `updated`: the fields it changed, dotted; empty otherwise."
    )
    error: ErrorDetail | None = Field(description="Why the item was refused; `field` in it.")


class BatchDeletion(_Strict):
    index: int = Field(description="The name's place in `delete`, from 0.")
    name: str
    status: Literal["deleted", "error"]
    error: ErrorDetail | None


class BatchCounts(_Strict):
    created: int
    updated: int
    unchanged: int
    deleted: int
    error: int


class BatchResult(_Strict):
    tenant: str = Field(description="The tenant of the API key: whose tasks these are.")
    atomic: bool
    dry_run: bool
    stored: bool = Field(
        description="Whether anything was stored: false for a dry run and for an atomic "
        "batch with a refused item."
    )
    counts: BatchCounts
    results: list[BatchItemResult] = Field(description="One per item of `tasks`, in order.")
    deletions: list[BatchDeletion] = Field(description="One per name of `delete`, in order.")


# --- notifications ----------------------------------------------------------------------

ChannelName = Annotated[
    str,
    Field(
        pattern=limits.CHANNEL_NAME_PATTERN,
        max_length=limits.MAX_CHANNEL_NAME_CHARS,
        examples=["ops"],
        description="Unique per tenant: lower-case letters, digits, `_`, `.`, `-`.",
    ),
]
ChannelKindField = Literal["webhook", "email", "slack"]
EventKindField = Literal["dead_letter", "auto_paused", "late", "recovered"]


class ChannelPatch(_Strict):
    """The fields to change; the channel that results is checked whole."""

    name: ChannelName | None = None
    kind: ChannelKindField | None = None
    url: str | None = Field(
        None,
        max_length=limits.MAX_URL_CHARS,
        description="A webhook's or a Slack incoming webhook's URL (`webhook`, `slack`).",
    )
    to: list[str] | None = Field(
        None,
        min_length=1,
        max_length=limits.MAX_EMAIL_RECIPIENTS,
        description="The addresses an `email` channel sends to.",
    )
    events: list[EventKindField] | None = Field(
        None, min_length=1, description="What the channel is told about."
    )


class ChannelCreate(ChannelPatch):
    """A notification channel: where grouped notifications of the tenant's tasks go.
    `webhook` and `slack` take `url`, `email` takes `to`; `events` defaults to all."""

    name: ChannelName
    kind: ChannelKindField


class Channel(_Strict):
    id: Uuid
    name: str
    kind: ChannelKindField
    url: str | None = Field(description="A Slack channel's URL is shown masked.")
    to: list[str]
    events: list[EventKindField]
    last_message_at: DateTime | None
    created_at: DateTime
    updated_at: DateTime


class ChannelPage(_Strict):
    items: list[Channel]


class Notification(_Strict):
    id: int
    channel_id: Uuid
    channel: str = Field(description="The channel's name when the message was made.")
    kind: ChannelKindField
    test: bool = Field(description="A test message (`POST .../test`).")
    status: Literal["pending", "sent", "failed"]
    attempts: int
    error: str | None
    counts: dict[str, int] = Field(description="Events in the message, by kind.")
    task_count: int
    task_ids: list[Uuid]
    created_at: DateTime
    sent_at: DateTime | None
    next_attempt_at: DateTime | None = Field(description="A pending message's next try.")
    payload: dict[str, Any] | None = Field(
        None, description="The JSON document sent (one notification only)."
    )


class NotificationPage(_Strict):
    items: list[Notification]
    next_cursor: str | None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    TaskCreate,
    TaskPatch,
    SchedulePreviewRequest,
    PauseRequest,
    RedriveFilter,
    BackfillRequest,
    SigningSecretCreate,
    CalendarCreate,
    CalendarPatch,
    SkipRequest,
    BatchRequest,
    ChannelCreate,
    ChannelPatch,
)


def body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """A route's ``openapi_extra``: its body is ``model``, read by the route as raw JSON."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A ``/v1`` route's error answers: the ones every such route can give, plus
    ``statuses``."""
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


def answers(model: type[BaseModel] | None, *errors: int, summary: str) -> dict[str, Any]:
    """A ``/v1`` route's documented options, said once: it answers ``model`` (``None``:
    nothing, a 204), or an error of :func:`error_responses` with ``errors``."""
    answer: dict[str, Any] = (
        {"response_model": model} if model else {"status_code": 204, "response_class": Response}
    )
    return {**answer, "responses": error_responses(*errors), "summary": summary}
