"""The tables. The database is the source of truth; the broker only carries work.

``scheduled_tasks`` keeps the seed system's columns (``next_execution_time``,
``is_active``, ``is_finished``); ``next_occurrences`` holds, for each task that can fall
due, its next occurrence, and is what the due query reads (see there why). ``executions``
holds one row per occurrence, unique on (task, scheduled_for), which is what makes a
repeated tick harmless. ``attempts`` holds one row per attempt, unique on (execution,
number), which is what makes a repeated chord callback harmless.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: The width of every ``tenant`` column: a longer tenant name is refused before it is
#: stored (``service.apikeys.validate_tenant``).
TENANT_MAX_LENGTH = 100

#: 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An instant: aware UTC in Python on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the UTC wall time is
    stored and the zone re-attached on the way out. Naive datetimes are refused rather
    than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: taskhub stores aware instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ReadOnlyJSONObject(sa.TypeDecorator[Mapping[str, Any]]):
    """A JSON object column read as its text, then as a read-only mapping decoded once per
    distinct text: thousands of claimed tasks share a few header sets, and the driver's
    own JSON loading cost a claim 4 % of its instructions. For reads that only read."""

    impl = sa.Text
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Dialect) -> Mapping[str, Any] | None:
        return None if value is None else _read_only_json_object(value)


@functools.lru_cache(maxsize=1024)
def _read_only_json_object(text: str) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text))


def read_as_json_object(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Mapping[str, Any]]:
    """``column`` (JSON) selected as a :class:`ReadOnlyJSONObject`, under its own name."""
    return sa.type_coerce(sa.cast(column, sa.Text), ReadOnlyJSONObject()).label(column.key)


class UUIDText(sa.TypeDecorator[str]):
    """A UUID column read as its canonical text (``str(uuid)``), for reads that only need
    the text: a claim's thousands of task ids go into JSON rows, messages and keys, and
    making a ``UUID`` of each only to format it again cost a claim 5.6 % of its
    instructions. PostgreSQL formats the text itself; SQLite stores 32 hex digits."""

    impl = sa.Text
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or dialect.name == "postgresql":
            return value
        return str(uuid.UUID(value))


def read_as_uuid_text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """``column`` (UUID) selected as :class:`UUIDText`, under its own name."""
    return sa.type_coerce(sa.cast(column, sa.Text), UUIDText()).label(column.key)


def _json(*, none_as_null: bool = False) -> sa.types.TypeEngine[Any]:
    """JSONB on PostgreSQL; ``none_as_null``: None is SQL NULL, not the JSON ``null``."""
    return sa.JSON(none_as_null=none_as_null).with_variant(
        postgresql.JSONB(none_as_null=none_as_null), "postgresql"
    )


scheduled_tasks = sa.Table(
    "scheduled_tasks",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True, default=uuid.uuid4),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False, server_default="default"),
    sa.Column("name", sa.String(200), nullable=False),
    # schedule: exactly one kind
    sa.Column("schedule_kind", sa.String(16), nullable=False),
    sa.Column("cron_expression", sa.String(200)),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("interval_seconds", sa.Integer()),
    sa.Column("run_at", UTCDateTime()),
    sa.Column("start_at", UTCDateTime()),
    sa.Column("end_at", UTCDateTime()),
    sa.Column("max_executions", sa.Integer()),
    # target: exactly one of an HTTP call (url, method, headers, body) and a Celery task
    # to send (celery: CeleryCall.to_dict(); then url is NULL, headers {} and body NULL)
    sa.Column("url", sa.Text()),
    sa.Column("celery", _json(none_as_null=True)),
    sa.Column("method", sa.String(10), nullable=False, server_default="POST"),
    sa.Column("headers", _json(), nullable=False),
    sa.Column("body", sa.Text()),
    sa.Column("timeout_seconds", sa.Float(), nullable=False, server_default="30"),
    # retry
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"),
    sa.Column("backoff_seconds", sa.Float(), nullable=False, server_default="10"),
    sa.Column("max_backoff_seconds", sa.Float(), nullable=False, server_default="600"),
    sa.Column("tags", _json(), nullable=False),
    # Header values that carry credentials (Authorization, cookies, configured names),
    # as one sealed (encrypted) JSON object; ``headers`` holds only the others.
    sa.Column("sealed_headers", sa.Text()),
    # What a claim after downtime does with occurrences older than the misfire grace:
    # fire_once (collapse into one), skip, fire_each (bounded).
    sa.Column("misfire_policy", sa.String(16), nullable=False, server_default="fire_once"),
    # Pause the task after this many consecutive failed executions; NULL: never.
    sa.Column("auto_pause_after_failures", sa.Integer()),
    # Notifications (migration 0018): a first attempt sent more than this many seconds
    # after its due time raises a ``late`` event; NULL: never late by lag.
    sa.Column("max_lag_seconds", sa.Integer()),
    # Flow control of this task's requests (null: no limit of that kind; the host's
    # TASKHUB_HOST_LIMITS apply as well, the tighter wins), and its jitter window.
    sa.Column("rate_limit_max_in_flight", sa.Integer()),
    sa.Column("rate_limit_per_second", sa.Float()),
    sa.Column("spread_seconds", sa.Integer(), nullable=False, server_default="0"),
    # Exclusions (migration 0015): the names of the tenant's calendars whose dates the
    # task does not fire on (a JSON list; NULL: none), and whether it has skipped
    # occurrences stored in ``occurrence_skips``. A claim reads both, and the skips and
    # calendars only of the tasks that have any.
    sa.Column("exclude_calendars", _json(none_as_null=True)),
    sa.Column("has_skips", sa.Boolean(), nullable=False, server_default=sa.false()),
    # What to do with an occurrence due while an earlier execution of the task still
    # runs (migration 0016): allow, skip, buffer_one (``core.overlap``).
    sa.Column("overlap", sa.String(16), nullable=False, server_default="allow"),
    # History retention (migration 0019): days this task's ended executions are kept;
    # NULL: TASKHUB_EXECUTION_RETENTION_DAYS. Never written by a claim or a write-back.
    sa.Column("retention_days", sa.Integer()),
    # Callbacks (migration 0017): where each ended execution's outcome is posted,
    # ``{"url": ..., "on": [...]}`` (``core.callbacks``); NULL: none.
    sa.Column("callback", _json(none_as_null=True)),
    # state
    sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("is_finished", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("next_execution_time", UTCDateTime()),
    sa.Column("last_execution_time", UTCDateTime()),
    sa.Column("last_status", sa.String(16)),
    sa.Column("occurrence_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("execution_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
    # Why a paused task is paused: 'user' (the API or CLI), 'auto_pause' (its
    # consecutive failures reached auto_pause_after_failures) or 'target_gone' (its
    # target answered 410 Gone); NULL while not paused.
    sa.Column("paused_by", sa.String(16)),
    sa.Column("paused_reason", sa.Text()),
    sa.Column("paused_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant", "name"),
    sa.CheckConstraint("schedule_kind IN ('cron', 'interval', 'at')", name="schedule_kind_known"),
    sa.CheckConstraint(
        "misfire_policy IN ('fire_once', 'skip', 'fire_each')", name="misfire_policy_known"
    ),
    sa.CheckConstraint("(url IS NULL) <> (celery IS NULL)", name="one_target_kind"),
    sa.CheckConstraint("overlap IN ('allow', 'skip', 'buffer_one')", name="overlap_known"),
)

# No index on next_execution_time, is_active or is_finished (migration 0007): a claim
# rewrites those columns, and an indexed column makes PostgreSQL's update of the row a
# new tuple with an entry in every index. Without one the update is HOT (heap-only, on
# the same page: fillfactor 90 leaves room), and the primary key's and (tenant, name)'s
# random pages are not written. The due query reads ``next_occurrences`` instead.

#: The console's and the API's task list (migration 0013): a tenant's tasks in creation
#: order, so a page (the first, or one 90,000 tasks deep) reads its own rows only. Its
#: columns are never rewritten after the insert, so a claim's update stays HOT.
sa.Index(
    "ix_scheduled_tasks_tenant_created_at_id",
    scheduled_tasks.c.tenant,
    scheduled_tasks.c.created_at,
    scheduled_tasks.c.id,
)
#: Search by name prefix (``name LIKE 'prefix%'``): the (tenant, name) key cannot serve
#: LIKE unless the database's collation is "C" (C.UTF-8 and en_US.UTF-8 are not), so
#: this copy compares bytes (``varchar_pattern_ops``; on SQLite a plain index).
sa.Index(
    "ix_scheduled_tasks_tenant_name_pattern",
    scheduled_tasks.c.tenant,
    scheduled_tasks.c.name,
    postgresql_ops={"name": "varchar_pattern_ops"},
)

#: The tasks with their own ``retention_days`` (migration 0019), found by the prune pass
#: without reading every task; the column is never rewritten by a claim (HOT stays).
sa.Index(
    "ix_scheduled_tasks_retention_days",
    scheduled_tasks.c.retention_days,
    postgresql_where=scheduled_tasks.c.retention_days.is_not(None),
    sqlite_where=scheduled_tasks.c.retention_days.is_not(None),
)

next_occurrences = sa.Table(
    "next_occurrences",
    metadata,
    # One row per task that can fall due (active, not finished, with a next execution
    # time): that task's next occurrence, ``scheduled_tasks.next_execution_time``. A claim
    # deletes the rows it takes and inserts each task's next one; every other writer of
    # those three columns keeps this table in step (``task_queries``). Its only index is its
    # key, in due order: a claim reads its head and appends near its tail. No foreign
    # key, for the reason of migration 0006; rows go with their task.
    sa.Column("scheduled_for", UTCDateTime(), nullable=False),
    sa.Column("task_id", sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint("scheduled_for", "task_id"),
)

#: Exclusion calendars (migration 0015): per tenant, by name; ``dates`` a JSON list of
#: ``YYYY-MM-DD`` strings, dates in ``timezone``.
calendars = sa.Table(
    "calendars",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True, default=uuid.uuid4),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("dates", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant", "name"),
)

#: Occurrences skipped one by one (migration 0015). No foreign key, as for executions:
#: they go with their task (``task_queries.delete_task``).
occurrence_skips = sa.Table(
    "occurrence_skips",
    metadata,
    sa.Column("task_id", sa.Uuid(), nullable=False),
    sa.Column("scheduled_for", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("task_id", "scheduled_for"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # No foreign key (migration 0006): its check cost a lookup per inserted execution on
    # the claim's hot path. Executions are inserted only under their task's row lock, and
    # go with their task (``task_queries.delete_task``).
    sa.Column("task_id", sa.Uuid(), nullable=False),
    sa.Column("scheduled_for", UTCDateTime(), nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    # When a tick must (re)publish this execution if no outcome has come back by then: the
    # end of a retry backoff, or the end of a publish lease. NULL once terminal.
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("publish_count", sa.Integer(), nullable=False, server_default="0"),
    # Attempts made before the last redrive: a redriven dead letter gets a fresh budget
    # of max_attempts while its attempt numbers keep counting up.
    sa.Column("attempt_offset", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("http_status", sa.Integer()),
    sa.Column("duration_ms", sa.Integer()),
    sa.Column("error", sa.Text()),
    sa.Column("response_excerpt", sa.Text()),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # Who holds the current fire (migration 0009): the heartbeat identity of the trigger
    # process that started it, and the id of the message that carried it (its outcome is
    # stored under that id in the result backend). NULL until a worker starts it; cleared
    # whenever it is published anew.
    sa.Column("held_by", sa.String(200)),
    sa.Column("message_id", sa.String(64)),
    # A tracked Celery task's (migration 0011): its message was accepted and the
    # execution, ``running`` with no lease (``next_attempt_at`` NULL), waits for its
    # result until this instant; only the result check finishes it. NULL otherwise.
    sa.Column("result_due_by", UTCDateTime()),
    # Under a task's overlap policy other than allow (migration 0016): 'fired' once its
    # clearance let it go, 'waiting' while it waits for the running one to end
    # (``engine.overlap``); NULL for every execution of an ``allow`` task.
    sa.Column("overlap_state", sa.String(8)),
    sa.UniqueConstraint("task_id", "scheduled_for"),
    sa.CheckConstraint(
        "status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'skipped')",
        name="status_known",
    ),
)

sa.Index(
    "ix_executions_next_attempt_at",
    executions.c.next_attempt_at,
    postgresql_where=executions.c.next_attempt_at.is_not(None),
    sqlite_where=executions.c.next_attempt_at.is_not(None),
)
sa.Index("ix_executions_task_id_id", executions.c.task_id, executions.c.id)
#: The executions waiting for a Celery result, found without reading the others.
sa.Index(
    "ix_executions_result_due_by",
    executions.c.result_due_by,
    postgresql_where=executions.c.result_due_by.is_not(None),
    sqlite_where=executions.c.result_due_by.is_not(None),
)
#: The dead letters (migration 0013): counted for the console's overview and a bulk
#: redrive, and listed newest first, without reading every execution. An execution has
#: an entry only while it is dead.
sa.Index(
    "ix_executions_dead_letters",
    executions.c.id,
    executions.c.task_id,
    postgresql_where=executions.c.status == "dead",
    sqlite_where=executions.c.status == "dead",
)
#: A dead process's executions, found without reading every execution.
sa.Index(
    "ix_executions_held_by",
    executions.c.held_by,
    postgresql_where=executions.c.status == "running",
    sqlite_where=executions.c.status == "running",
)

#: The open executions of tasks under an overlap policy (migration 0016): what a
#: clearance reads to know whether one runs or waits, without reading the task's history.
#: An ``allow`` task's executions never have an entry, so the hot path writes none.
OVERLAP_OPEN = "overlap_state IS NOT NULL AND status IN ('queued', 'running')"
sa.Index(
    "ix_executions_overlap_open",
    executions.c.task_id,
    postgresql_where=sa.text(OVERLAP_OPEN),
    sqlite_where=sa.text(OVERLAP_OPEN),
)
#: History retention (migration 0019): the ended executions in the order they ended, so
#: a prune batch reads the oldest ones only. Partial: a claim's inserts (not ended yet)
#: get no entry; the write-back that ends an execution adds one, at the index's tail.
sa.Index(
    "ix_executions_finished_at",
    executions.c.finished_at,
    postgresql_where=executions.c.finished_at.is_not(None),
    sqlite_where=executions.c.finished_at.is_not(None),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "execution_id",
        BigId,
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("duration_ms", sa.Integer(), nullable=False),
    sa.Column("http_status", sa.Integer()),
    sa.Column("error_kind", sa.String(32)),
    sa.Column("error", sa.Text()),
    sa.UniqueConstraint("execution_id", "number"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True, default=uuid.uuid4),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    # The key's public part, shown in listings and used to find the row; the secret part
    # is stored only as a SHA-256 digest (keys are random, so a slow hash adds nothing).
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Column("last_used_at", UTCDateTime()),
)
sa.Index("ix_api_keys_tenant", api_keys.c.tenant)

signing_secrets = sa.Table(
    "signing_secrets",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True, default=uuid.uuid4),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    # The secret itself, sealed with the installation's encryption key: taskhub must be
    # able to sign with it, so it cannot be stored as a one-way digest like an API key.
    sa.Column("sealed_secret", sa.Text(), nullable=False),
    # A few characters that let a person tell two secrets apart; never enough to sign.
    sa.Column("hint", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    # How it signs: 'taskhub' (X-Taskhub-Signature) or 'standard-webhooks' (webhook-*).
    sa.Column("scheme", sa.String(32), nullable=False, server_default="taskhub"),
    sa.CheckConstraint("scheme IN ('taskhub', 'standard-webhooks')", name="scheme_known"),
)
sa.Index("ix_signing_secrets_tenant", signing_secrets.c.tenant)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    # One signed-in browser: the row a console cookie names. Only the SHA-256 digest of
    # the cookie's random token is stored (like an API key's secret). A session lives
    # while its API key is unrevoked, it has not ended (sign-out) and it has not expired.
    sa.Column("token_digest", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    sa.Column("api_key_id", sa.Uuid(), nullable=False),
    # The session's anti-forgery token: every change the console makes carries it.
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime()),
)
sa.Index("ix_console_sessions_api_key_id", console_sessions.c.api_key_id)
sa.Index("ix_console_sessions_expires_at", console_sessions.c.expires_at)

metric_counters = sa.Table(
    "metric_counters",
    metadata,
    # Prometheus counters (histogram buckets included) kept in the database: incremented
    # in the transaction that does the counted work, so a count is exactly-once, shared
    # by every process, and survives restarts and brokers without events (SQS).
    sa.Column("name", sa.String(100), primary_key=True),
    # The label set in Prometheus's text form, e.g. 'outcome="timeout"' ('' for none).
    sa.Column("labels", sa.String(200), primary_key=True),
    sa.Column("value", sa.Float(), nullable=False),
)

worker_heartbeats = sa.Table(
    "worker_heartbeats",
    metadata,
    # One row per taskhub process (host:pid), rewritten every few seconds: what only the
    # process itself can measure (memory, its connection pool, its query time, requests
    # in flight), readable by /metrics and `taskhub stats` on any broker.
    sa.Column("process", sa.String(200), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("seen_at", UTCDateTime(), nullable=False),
    sa.Column("rss_bytes", sa.BigInteger(), nullable=False),
    sa.Column("in_flight", sa.Integer(), nullable=False),
    sa.Column("db_pool_size", sa.Integer(), nullable=False),
    sa.Column("db_pool_checked_out", sa.Integer(), nullable=False),
    sa.Column("db_queries", sa.BigInteger(), nullable=False),
    sa.Column("db_query_seconds", sa.Float(), nullable=False),
)

tenant_quotas = sa.Table(
    "tenant_quotas",
    metadata,
    # One row per tenant that has overrides or holds tasks: its limits where they differ
    # from the settings (null: the setting's default), and the count of tasks it holds,
    # which a create raises only below its limit, so two processes never both take the
    # last slot.
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), primary_key=True),
    sa.Column("max_tasks", sa.Integer()),
    sa.Column("min_interval_seconds", sa.Integer()),
    sa.Column("runs_per_minute", sa.Integer()),
    sa.Column("requests_per_second", sa.Integer()),
    sa.Column("updated_at", UTCDateTime()),
    # The tenant's tasks, every status (migration 0020): kept in step by every insert and
    # delete of a task in its own transaction (``quota_queries``), so a create checks
    # ``max_tasks`` against one row rather than counting the tenant's tasks.
    sa.Column("tasks_held", sa.Integer(), nullable=False, server_default="0"),
)

tenant_rate_windows = sa.Table(
    "tenant_rate_windows",
    metadata,
    # Fixed-window counters of the API's rate limits, shared by every API process: the
    # calls of one kind a tenant made in the window that starts at window_start (unix s).
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("window_start", sa.BigInteger(), nullable=False),
    sa.Column("hits", sa.Integer(), nullable=False),
)

maintenance_leases = sa.Table(
    "maintenance_leases",
    metadata,
    # Periodic maintenance that must run one at a time (migration 0019: the prune pass):
    # the process that holds it until ``held_until``, renewed while it works. A holder
    # that dies leaves it to run out.
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("held_until", UTCDateTime(), nullable=False),
)
#: Callback deliveries (migration 0017), an outbox: a row is inserted in the write-back
#: transaction that ends an execution of a task with a callback, and a sender
#: (``engine.callback_sender``) posts its ``document``. ``next_attempt_at`` is when a
#: pending delivery is due, or, while a sender holds it, the end of that sender's lease;
#: NULL once delivered or failed. No foreign key, as for executions: rows go with their
#: task (``task_queries.delete_task``).
callback_deliveries = sa.Table(
    "callback_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("execution_id", BigId, nullable=False),
    sa.Column("task_id", sa.Uuid(), nullable=False),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("document", _json(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("http_status", sa.Integer()),
    sa.Column("error", sa.Text()),
    sa.Column("last_attempt_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.CheckConstraint(
        "status IN ('pending', 'delivered', 'failed')", name="callback_status_known"
    ),
)
#: The due deliveries, found without reading the delivered and failed ones.
sa.Index(
    "ix_callback_deliveries_next_attempt_at",
    callback_deliveries.c.next_attempt_at,
    postgresql_where=callback_deliveries.c.next_attempt_at.is_not(None),
    sqlite_where=callback_deliveries.c.next_attempt_at.is_not(None),
)
#: An execution's deliveries, shown with it.
sa.Index("ix_callback_deliveries_execution_id", callback_deliveries.c.execution_id)
sa.Index("ix_callback_deliveries_task_id", callback_deliveries.c.task_id)

#: Notification channels (migration 0018): per tenant, by name. A webhook's ``url`` is
#: stored as given; a Slack incoming webhook's URL is its credential, so it is sealed
#: (``sealed_url``) and ``url`` holds it masked. ``recipients`` (an email channel's
#: ``to``) and ``events`` are JSON lists. ``last_message_at``: when its latest grouped
#: message was made (the rate limit).
notification_channels = sa.Table(
    "notification_channels",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True, default=uuid.uuid4),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("url", sa.Text()),
    sa.Column("sealed_url", sa.Text()),
    sa.Column("recipients", _json(none_as_null=True)),
    sa.Column("events", _json(), nullable=False),
    sa.Column("last_message_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant", "name"),
)

#: The outbox (migration 0018): one row per event per channel that is told about it,
#: written in the transaction that caused it, deleted by the transaction that makes the
#: message carrying it (the message's ``payload`` holds what it said), so the table holds
#: only waiting events. No foreign keys, as for executions: rows go with their channel.
notification_events = sa.Table(
    "notification_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("channel_id", sa.Uuid(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("task_id", sa.Uuid(), nullable=False),
    sa.Column("scheduled_for", UTCDateTime()),
    sa.Column("detail", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
sa.Index(
    "ix_notification_events_channel_id_id",
    notification_events.c.channel_id,
    notification_events.c.id,
)

#: What was sent (migration 0018): one row per message. ``next_attempt_at`` is when it
#: is (re)sent while ``pending``, and the end of the sender's lease while a try is under
#: way; ``payload`` the JSON document it carries.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(TENANT_MAX_LENGTH), nullable=False),
    sa.Column("channel_id", sa.Uuid(), nullable=False),
    sa.Column("channel_name", sa.String(64), nullable=False),
    sa.Column("channel_kind", sa.String(16), nullable=False),
    sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("error", sa.Text()),
    sa.Column("counts", _json(), nullable=False),
    sa.Column("task_ids", _json(), nullable=False),
    sa.Column("payload", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
)
sa.Index("ix_notifications_tenant_id", notifications.c.tenant, notifications.c.id)
sa.Index(
    "ix_notifications_status_next_attempt_at",
    notifications.c.status,
    notifications.c.next_attempt_at,
)
