"""A Celery target's task message: Celery's protocol 2, built from the request alone.

No Celery app and no user code: the fields Celery's ``app.amqp.as_task_v2`` writes, so
that any Celery 5 worker of the user's app consumes it unchanged. Its Celery task id is
the occurrence's idempotency key (a repeat has the same id), and taskhub's three
headers go beside Celery's: a worker copies every header it does not know onto the
task's ``self.request``. Sending it is ``taskhub.engine.celery_publishing``'s business.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from celery.utils.saferepr import saferepr

from taskhub.core.messages import TriggerRequest, as_utc, iso_z

__all__ = [
    "ATTEMPT_HEADER",
    "SCHEDULED_FOR_HEADER",
    "TASK_ID_HEADER",
    "TaskMessage",
    "task_message",
]

TASK_ID_HEADER: Final = "taskhub_task_id"
SCHEDULED_FOR_HEADER: Final = "taskhub_scheduled_for"
ATTEMPT_HEADER: Final = "taskhub_attempt"
#: Who sent it, as Celery's ``origin`` header names the sending node.
ORIGIN: Final = f"taskhub@{socket.gethostname()}"
#: Celery's own bound for ``argsrepr`` and ``kwargsrepr`` (``Celery.amqp.argsrepr_maxsize``).
REPR_MAX_CHARS: Final = 1024


@dataclass(frozen=True)
class TaskMessage:
    """A protocol 2 task message: what kombu publishes."""

    headers: dict[str, Any]
    properties: dict[str, Any]
    #: ``(args, kwargs, embed)``, serialized as JSON.
    body: tuple[list[Any], dict[str, Any], dict[str, Any]]
    queue: str


def task_message(request: TriggerRequest) -> TaskMessage:
    """The Celery task message of a request with ``celery`` set: the fields Celery's
    ``app.amqp.as_task_v2`` writes, with the Celery task id = the idempotency key and
    taskhub's three headers beside Celery's (a worker copies every header onto
    ``self.request``)."""
    call = request.celery
    if call is None:
        raise ValueError("not a Celery target")
    task_id = request.idempotency_key
    args, kwargs = list(call.args), dict(call.kwargs)
    expires = None
    if call.expires_seconds is not None:
        due = as_utc(request.scheduled_for) + timedelta(seconds=call.expires_seconds)
        expires = due.isoformat()
    headers: dict[str, Any] = {
        "lang": "py",
        "task": call.task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": expires,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": saferepr(tuple(args), REPR_MAX_CHARS),
        "kwargsrepr": saferepr(kwargs, REPR_MAX_CHARS),
        "origin": ORIGIN,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        TASK_ID_HEADER: request.task_id,
        SCHEDULED_FOR_HEADER: iso_z(request.scheduled_for),  # as X-Taskhub-Scheduled-For
        ATTEMPT_HEADER: request.attempt,
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return TaskMessage(
        headers=headers,
        properties={"correlation_id": task_id, "reply_to": ""},
        body=(args, kwargs, embed),
        queue=call.queue,
    )
