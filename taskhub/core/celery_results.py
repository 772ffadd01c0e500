"""A tracked Celery task's result, as its user's result backend stores it, and what it
makes of the execution.

Celery writes a task's final state under its task id (the occurrence's idempotency
key): on a Redis backend the JSON string ``celery-task-meta-<id>``, on a database
backend a ``celery_taskmeta`` row (``status``, and ``result`` in the result
serializer's format: JSON since Celery 5.7, a pickle before). ``SUCCESS`` succeeds;
``FAILURE`` and ``REVOKED`` fail (never retried: Celery has its own retries, and a
second run could repeat the task's side effects); any other state, or none yet, is
not final. taskhub never unpickles what a user's backend holds.

Pure: JSON and strings, nothing of Celery, Redis or the database.
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

from taskhub.core.statuses import ExecutionStatus

#: The result backends taskhub reads, by URL scheme: Redis, and a database backend
#: (``db+<SQLAlchemy URL>``).
REDIS_SCHEMES: Final = ("redis://", "rediss://")
DATABASE_PREFIX: Final = "db+"
#: The Redis key of a task's result (Celery's ``RedisBackend.task_keyprefix``).
REDIS_KEY_PREFIX: Final = "celery-task-meta-"
#: A pickle of protocol 2 or later starts with this byte (Celery's database backend
#: before 5.7 stored its ``result`` column pickled).
_PICKLE_START: Final = b"\x80"

SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
REVOKED: Final = "REVOKED"

REVOKED_ERROR: Final = "revoked"
PICKLED_ERROR: Final = (
    "FAILURE, with a pickled result (Celery before 5.7 writes its database backend's "
    "results so); taskhub does not unpickle it"
)
UNREADABLE_ERROR: Final = (
    "the Celery result could not be read (taskhub reads results serialized as JSON, uncompressed)"
)


class Settled(NamedTuple):
    """A final state read: the execution's status and its error (None on success)."""

    status: ExecutionStatus
    error: str | None


def backend_kind(url: str) -> str | None:
    """``"redis"``, ``"database"``, or None for a backend taskhub cannot read."""
    if url.startswith(REDIS_SCHEMES):
        return "redis"
    if url.startswith(DATABASE_PREFIX):
        return "database"
    return None


def unreadable_scheme(url: str) -> str | None:
    """``"<scheme>:"`` of a backend taskhub cannot read (None: it reads it); the scheme
    only, as URLs hold secrets."""
    if backend_kind(url) is not None:
        return None
    return url.split(":", 1)[0] + ":" if ":" in url else "a URL with no scheme"


def unsupported_backend_error(url: str) -> str:
    """Why a tracked task's result cannot be read."""
    return (
        f"taskhub cannot read results from a {unreadable_scheme(url)} result backend "
        "(it reads redis://, rediss:// and db+ backends)"
    )


def timed_out_error(timeout_s: float) -> str:
    return f"timed out waiting for the Celery result after {timeout_s:g} s"


def redis_key(task_id: str) -> str:
    return REDIS_KEY_PREFIX + task_id


def from_redis(raw: bytes | str | None) -> Settled | None:
    """A Redis backend's value (None: no result yet, or not final)."""
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Settled(ExecutionStatus.FAILED, UNREADABLE_ERROR)
    if not isinstance(meta, dict):
        return Settled(ExecutionStatus.FAILED, UNREADABLE_ERROR)
    return _final(meta.get("status"), meta.get("result"))


def from_database(status: str | None, result: bytes | str | None) -> Settled | None:
    """A ``celery_taskmeta`` row's ``status`` and ``result`` (None: not final)."""
    if status != FAILURE:
        return _final(status, None)
    if isinstance(result, str):
        result = result.encode()
    if result is None:
        return _final(status, None)
    if result.startswith(_PICKLE_START):
        return Settled(ExecutionStatus.FAILED, PICKLED_ERROR)
    try:
        decoded = json.loads(result)
    except (ValueError, UnicodeDecodeError):
        return Settled(ExecutionStatus.FAILED, UNREADABLE_ERROR)
    return _final(status, decoded)


def _final(status: Any, result: Any) -> Settled | None:
    if status == SUCCESS:
        return Settled(ExecutionStatus.SUCCEEDED, None)
    if status == FAILURE:
        return Settled(ExecutionStatus.FAILED, failure_error(result))
    if status == REVOKED:
        return Settled(ExecutionStatus.FAILED, REVOKED_ERROR)
    return None  # PENDING, RECEIVED, STARTED, RETRY, a custom state: not final


def failure_error(result: Any) -> str:
    """``"<ExceptionType>: <message>"`` of a FAILURE's result (``exc_type``, and
    ``exc_message``: the exception's arguments, a list in JSON)."""
    if not isinstance(result, dict):
        return FAILURE
    exc_type = result.get("exc_type")
    message = result.get("exc_message")
    if isinstance(message, list | tuple):
        message = str(message[0]) if len(message) == 1 else ", ".join(str(part) for part in message)
    name = exc_type if isinstance(exc_type, str) and exc_type else "Exception"
    return f"{name}: {message}" if message not in (None, "") else name
