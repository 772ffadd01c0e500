"""Every limit, default and pattern of a task definition and of the API's other inputs.

The one source of these values: the validation (:mod:`taskhub.core.definitions` and the
service functions) and the OpenAPI document (``taskhub/api/schemas.py`` and
``params.py``) both read them from here, so the document cannot promise what the
validation refuses. The limits keep every trigger message far below a broker's size
limit and keep taskhub's own headers its own (docs/task-definition.md lists them).
Pure: no imports of taskhub beyond the statuses.
"""

from __future__ import annotations

from typing import Literal, get_args

from taskhub.core.statuses import MisfirePolicy, OverlapPolicy

# --- the task ---------------------------------------------------------------------------

MAX_NAME_CHARS = 200
#: ``max_executions``: the column is a signed 32-bit integer.
MIN_EXECUTIONS = 1
MAX_EXECUTIONS = 2**31 - 1
DEFAULT_MISFIRE_POLICY = MisfirePolicy.FIRE_ONCE
MIN_AUTO_PAUSE_AFTER_FAILURES = 1
MAX_AUTO_PAUSE_AFTER_FAILURES = 1000
MIN_SPREAD_S = 0
MAX_SPREAD_S = 3600
DEFAULT_SPREAD_S = 0
DEFAULT_OVERLAP_POLICY = OverlapPolicy.ALLOW

# --- schedule ---------------------------------------------------------------------------

#: A cron schedule's time zone when none is given (and the zone of every other kind).
DEFAULT_TIMEZONE = "UTC"
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 366 * 24 * 3600

# --- target -----------------------------------------------------------------------------

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
METHODS: tuple[str, ...] = get_args(Method)
DEFAULT_METHOD: Method = "POST"
MAX_URL_CHARS = 2048
#: What the OpenAPI document says of a URL; the validation is the HTTP client's own
#: parse (:func:`taskhub.core.addresses.parse_target_url`), which says more.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://"
MAX_HEADERS = 50
#: An HTTP token (RFC 9110): a header name, and a method; checked again at fire time.
HTTP_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
HEADER_NAME_PATTERN = f"^{HTTP_TOKEN}$"
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 8192
MAX_HEADERS_BYTES = 32 * 1024
#: Headers taskhub sets itself, and hop-by-hop headers that describe one connection.
RESERVED_HEADERS = frozenset(
    {
        "idempotency-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    }
)
RESERVED_HEADER_PREFIX = "x-taskhub-"
MAX_BODY_BYTES = 64 * 1024
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 300.0
DEFAULT_TIMEOUT_S = 30.0

# --- Celery target -----------------------------------------------------------------------

#: Celery's default queue, and the broker name of taskhub's own broker.
DEFAULT_CELERY_QUEUE = "celery"
DEFAULT_CELERY_BROKER = "default"
MAX_CELERY_TASK_NAME_CHARS = 200
#: A dotted name of identifiers, as Celery names a task after its module and function.
CELERY_TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
#: A queue name Redis, RabbitMQ and SQS all accept (SQS: at most 80 characters of
#: letters, digits, ``-`` and ``_``; a ``.`` only in its ``.fifo`` suffix, which kombu
#: maps: it writes ``.`` as ``-``).
MAX_CELERY_QUEUE_CHARS = 80
CELERY_QUEUE_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_CELERY_QUEUE_CHARS - 1}}}$"
#: RabbitMQ refuses to declare a queue whose name starts with this.
RESERVED_CELERY_QUEUE_PREFIX = "amq."
#: The names in TASKHUB_CELERY_BROKERS and TASKHUB_CELERY_RESULT_BACKENDS.
MAX_CELERY_BROKER_NAME_CHARS = 64
CELERY_BROKER_NAME_PATTERN = rf"^[a-z0-9][a-z0-9_-]{{0,{MAX_CELERY_BROKER_NAME_CHARS - 1}}}$"
#: ``args`` and ``kwargs``, each, as JSON: a Celery message stays far below SQS's 256 KiB.
MAX_CELERY_ARGUMENTS_BYTES = 64 * 1024
MIN_CELERY_EXPIRES_S = 1.0
MAX_CELERY_EXPIRES_S = 7 * 24 * 3600.0

# --- retry ------------------------------------------------------------------------------

MIN_ATTEMPTS = 1
MAX_ATTEMPTS = 20
DEFAULT_MAX_ATTEMPTS = 3
MIN_BACKOFF_S = 0
MAX_BACKOFF_S = 24 * 3600
DEFAULT_BACKOFF_S = 10.0
DEFAULT_MAX_BACKOFF_S = 600.0

# --- tags -------------------------------------------------------------------------------

MAX_TAGS = 20
MAX_TAG_KEY_CHARS = 64
TAG_KEY_PATTERN = rf"^[A-Za-z0-9_.-]{{1,{MAX_TAG_KEY_CHARS}}}$"
MAX_TAG_VALUE_CHARS = 256

# --- rate limit -------------------------------------------------------------------------

MIN_RATE_IN_FLIGHT = 1
MAX_RATE_IN_FLIGHT = 10_000
#: ``per_second`` must be above this (and at most the maximum).
RATE_PER_SECOND_ABOVE = 0
MAX_RATE_PER_SECOND = 100_000.0

# --- the API's other inputs -------------------------------------------------------------

MAX_PAUSE_REASON_CHARS = 1000
#: Fire times a preview shows (``count``).
MIN_PREVIEW = 1
MAX_PREVIEW = 100
DEFAULT_PREVIEW = 10

# --- skips and exclusion calendars ------------------------------------------------------

#: A calendar's name: what a task's ``exclude_calendars`` and the URL name it by.
MAX_CALENDAR_NAME_CHARS = 64
CALENDAR_NAME_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,{MAX_CALENDAR_NAME_CHARS - 1}}}$"
#: Dates one calendar holds: a claim steps over each excluded date at most once.
MAX_CALENDAR_DATES = 1000
#: Calendars one task may name in ``exclude_calendars``.
MAX_EXCLUDE_CALENDARS = 10
#: Skipped occurrences one task may hold at a time (past ones are pruned).
MAX_SKIPS_PER_TASK = 1000

# --- the batch of tasks (``POST /v1/tasks:batch``) ----------------------------------------

#: Items one batch holds: task definitions and names to delete, together.
MIN_BATCH_ITEMS = 1
MAX_BATCH_ITEMS = 1000

# --- history retention ------------------------------------------------------------------

#: A task's ``retention_days``: how long its ended executions are kept (null: the
#: installation's TASKHUB_EXECUTION_RETENTION_DAYS).
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650

# --- notifications ------------------------------------------------------------------------

#: A task's ``max_lag_seconds``: the most its request may be sent after its due time
#: before a ``late`` notification is sent (a day at most).
MIN_MAX_LAG_S = 1
MAX_MAX_LAG_S = 86_400
#: A notification channel's name: lower-case letters, digits, ``_``, ``.``, ``-``.
MAX_CHANNEL_NAME_CHARS = 64
CHANNEL_NAME_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,{MAX_CHANNEL_NAME_CHARS - 1}}}$"
#: Channels one tenant may hold.
MAX_CHANNELS_PER_TENANT = 50
#: Addresses one email channel sends to, and the length of one address.
MAX_EMAIL_RECIPIENTS = 20
MAX_EMAIL_ADDRESS_CHARS = 254
#: The tasks one notification names (more wait for the channel's next message).
MAX_TASKS_PER_NOTIFICATION = 1000
