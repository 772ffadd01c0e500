"""Withdrawing what a change to a task makes obsolete: once a pause, an auto-pause (or
a pause on a 410 Gone), a delete, or a change of the schedule, window, target or spread
has committed, no occurrence of the task's old state is fired.

The minute's tick writes down what falls due before the next tick (``discovery``):
occurrences to be fired later are staged (``queued`` executions), those due within the
publish lead are published at once and held by a trigger worker until their fire time.
Two places make a change stick:

- The writer. In its own transaction, under the task's row lock, it deletes the task's
  occurrences that were written down and not fired
  (``withdrawal_queries.withdraw_unfired``) and puts them back into the schedule (its
  ``next_execution_time`` and ``occurrence_count``).
  They are removed, not kept with a status: a resumed or changed task claims the same
  (task, ``scheduled_for``) again, which a kept row would block (executions are unique
  on it). Each is counted in ``taskhub_occurrences_withdrawn_total{reason}``. A run-now
  is never withdrawn: it is an extra occurrence, not one of the schedule's. Neither is
  an occurrence already due when the change came, nor one whose fire has begun: those
  go out and are recorded.
- The fire. A published request may already be in a worker's hands. At its fire time
  the worker asks the database whether it may go (:func:`clear_to_fire`): one statement
  for every request of a message whose fire time has come, so a message of occurrences
  due at one second costs one statement, never one per request. The statement marks a
  first fire as begun under the row's lock, so a writer and a fire never both win: the
  writer's delete came first and the request is dropped (no outcome; its row is gone),
  or the fire came first and the writer leaves it alone. The same statement fires a
  request only for the message that holds its execution (``holders``). If the
  database cannot be reached, the worker sends what it holds of tasks without an
  overlap policy, as it does when it cannot take a message's sends: an outage must not
  stop what is already on the broker, and a change committed just before it may then
  miss that fire. (A database-free check cannot be exact: nothing else knows, at the
  moment of firing, what a writer committed a millisecond earlier.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from taskhub.core.messages import TriggerRequest
from taskhub.db import metric_queries, withdrawal_queries
from taskhub.engine import overlap
from taskhub.observability import counters, heartbeat

#: The ``reason`` label of ``taskhub_occurrences_withdrawn_total``.
PAUSE = "pause"
AUTO_PAUSE = "auto_pause"
#: A pause because the target answered 410 Gone (``writeback``).
TARGET_GONE = "target_gone"
CHANGE = "change"
DELETE = "delete"

#: The fields of a PATCH that change what or when a task fires: the task's unfired
#: occurrences are withdrawn and claimed again as the changed task says. Any other field
#: (name, tags, retry, ...) leaves them as they are.
FIRING_FIELDS = frozenset(
    {
        "schedule",
        "start_at",
        "end_at",
        "max_executions",
        "target",
        "spread_seconds",
        "exclude_calendars",
        "overlap",
    }
)


def withdraw(conn: Connection, task_ids: Sequence[uuid.UUID], now: datetime, reason: str) -> int:
    """Withdraw the tasks' unfired occurrences in the caller's transaction (which holds
    their row locks) and count them; returns how many."""
    count = withdrawal_queries.withdraw_unfired(conn, task_ids, now)
    metric_queries.add_to_counters(conn, counters.for_withdrawn(reason, count))
    return count


def clear_to_fire(engine: Engine, requests: Sequence[TriggerRequest], now: datetime) -> set[int]:
    """The execution ids of ``requests`` that may be fired now (``firing.fire``'s
    ``clear``); one short transaction. Requests of tasks under an overlap policy other
    than ``allow`` are decided first, under their tasks' locks (``overlap``). A request
    goes only for the message that holds its execution (``carried_by``, see
    ``withdrawal_queries.held_by_carrier``)."""
    guarded = [r for r in requests if r.overlap is not None]
    carriers = {r.execution_id: r.carried_by for r in requests if r.carried_by is not None}
    holder = heartbeat.this_process()
    with engine.begin() as conn:
        cleared = overlap.clear_guarded(conn, guarded, now, carriers, holder) if guarded else set()
        return cleared | withdrawal_queries.clear_to_fire(
            conn,
            {r.execution_id: r.attempt - 1 for r in requests if r.overlap is None},
            now,
            carriers,
            holder,
        )
