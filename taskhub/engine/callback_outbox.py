"""A task's callback, written down when its execution ends.

The write-back (``writeback``) and the result check (``celery_results``) hand each
execution that ends here, in the transaction that ends it: a task with a callback whose
``on`` names the ending gets a delivery row (``callback_deliveries``), so the callback is
sent once the ending is committed, and never for an ending that was rolled back. A task
without a callback costs one dictionary look-up; a chunk's deliveries are one insert.
The sender (``callback_sender``) posts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import callbacks
from taskhub.core.callbacks import callback_of
from taskhub.core.messages import TriggerOutcome
from taskhub.db import callback_queries
from taskhub.db.rows import NewCallbackDelivery

#: A delivery to write down (``delivery``), as the write-back collects them.
Delivery = NewCallbackDelivery


def delivery(
    task: RowMapping | Mapping[str, Any],
    execution: RowMapping | Mapping[str, Any],
    status: str,
    attempts: int,
    http_status: int | None,
    duration_ms: int | None,
    response_excerpt: str | None,
) -> NewCallbackDelivery | None:
    """The delivery of ``execution`` (a row with ``id``, ``task_id`` and
    ``scheduled_for``), which ended ``status``, if its ``task`` (a row with ``tenant`` and
    ``callback``) has a callback that reports that ending; else None."""
    stored = task.get("callback")
    if not stored:
        return None
    callback = callback_of(stored)
    if callback is None or not callback.reports(status):
        return None
    return NewCallbackDelivery(
        execution_id=execution["id"],
        task_id=execution["task_id"],
        tenant=task["tenant"],
        url=callback.url,
        event=callbacks.EVENT_OF_STATUS[status],
        document=callbacks.document(
            task_id=str(execution["task_id"]),
            execution_id=execution["id"],
            scheduled_for=execution["scheduled_for"],
            status=status,
            attempts=attempts,
            http_status=http_status,
            duration_ms=duration_ms,
            response_excerpt=response_excerpt,
        ),
    )


def of_outcome(
    task: RowMapping | Mapping[str, Any],
    execution: RowMapping | Mapping[str, Any],
    status: str,
    outcome: TriggerOutcome,
) -> NewCallbackDelivery | None:
    """:func:`delivery` of an execution whose last attempt was ``outcome``."""
    return delivery(
        task,
        execution,
        status,
        outcome.attempt,
        outcome.http_status,
        outcome.duration_ms,
        outcome.response_excerpt,
    )


def write(conn: Connection, deliveries: Sequence[NewCallbackDelivery], now: datetime) -> None:
    """Write a chunk's deliveries in its transaction, due at once: one insert, or
    nothing when there are none."""
    callback_queries.insert_deliveries(conn, deliveries, now)
