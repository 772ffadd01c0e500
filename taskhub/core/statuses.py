"""The status words users read (docs/concepts.md), shared by the database, the engine and the API.

- task status: ``active`` | ``paused`` | ``finished`` (derived from ``is_active`` and
  ``is_finished``, the seed system's columns);
- execution status: ``queued`` (waiting in the database to be sent, e.g. during a retry
  backoff), ``running`` (sent to the trigger queue, outcome not yet written back),
  ``succeeded``, ``failed`` (a response that must not be retried), ``dead`` (attempts
  exhausted; a dead letter), ``skipped`` (never fired: it fell due while its task's
  previous execution was still running, and the task's overlap policy skips);
- a task's ``last_status``: the status its newest ended execution ended with,
  ``succeeded`` | ``failed`` | ``dead`` (null before any has ended).
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    #: Never fired: the task's overlap policy skipped it (``core.overlap``).
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.DEAD,
        ExecutionStatus.SKIPPED,
    }
)


class LastStatus(StrEnum):
    """The words of the ended execution statuses, so a task and its history agree."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


def task_status(*, is_active: bool, is_finished: bool) -> TaskStatus:
    if is_finished:
        return TaskStatus.FINISHED
    return TaskStatus.ACTIVE if is_active else TaskStatus.PAUSED


class MisfirePolicy(StrEnum):
    """What a claim does with occurrences older than the misfire grace (missed while the
    scheduler was down): one execution for them all, none, or one each (bounded)."""

    FIRE_ONCE = "fire_once"
    SKIP = "skip"
    FIRE_EACH = "fire_each"


class PausedBy(StrEnum):
    """Who paused a task: a person (API or CLI), its own consecutive failures, or its
    target, which answered ``410 Gone`` (as Standard Webhooks asks of a sender)."""

    USER = "user"
    AUTO_PAUSE = "auto_pause"
    TARGET_GONE = "target_gone"


class OverlapPolicy(StrEnum):
    """What to do with an occurrence that falls due while the task's previous execution
    is still running: fire it anyway, skip it (recorded ``skipped``), or keep at most
    one waiting (``queued``) and fire it when the running one ends (``core.overlap``)."""

    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"


class CallbackStatus(StrEnum):
    """A task's callback delivery (``core.callbacks``): waiting to be sent or sent again
    (``pending``), answered with a 2xx (``delivered``), or out of attempts (``failed``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class NotificationStatus(StrEnum):
    """A notification's delivery: ``pending`` (to be sent, or sent again after a failed
    try), ``sent`` (the channel accepted it), ``failed`` (its tries are used up)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
