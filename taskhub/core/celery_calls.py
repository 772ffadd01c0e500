"""A Celery target: the Celery task a task sends, by name, to one of the operator's brokers.

A task's target is either an HTTP call or a :class:`CeleryCall`. The call is published
as an ordinary Celery task message (protocol 2) that the user's own workers consume
with no taskhub code installed; its Celery task id is the occurrence's idempotency key.
Tenants never give broker URLs: ``broker`` names one of the operator's brokers
(``TASKHUB_CELERY_BROKERS``), and, with ``track``, the result is read from the result
backend of the same name (``TASKHUB_CELERY_RESULT_BACKENDS``).

Pure: the shape, its limits and its refusals; nothing of Celery or kombu.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from taskhub.core import celery_results, limits
from taskhub.core.errors import ValidationError
from taskhub.core.fields import number, object_of

#: The fields of ``target.celery``, in the order the API documents them.
FIELDS: Final = ("task", "args", "kwargs", "queue", "broker", "track", "expires_seconds")

_TASK_NAME: Final = re.compile(limits.CELERY_TASK_NAME_PATTERN)
_QUEUE_NAME: Final = re.compile(limits.CELERY_QUEUE_PATTERN)
_BROKER_NAME: Final = re.compile(limits.CELERY_BROKER_NAME_PATTERN)


@dataclass(frozen=True)
class CeleryCall:
    """The Celery task to send: its registered name, arguments and routing."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = limits.DEFAULT_CELERY_QUEUE
    broker: str = limits.DEFAULT_CELERY_BROKER
    #: Wait for the result in the broker's result backend (``SUCCESS`` / ``FAILURE``).
    track: bool = False
    #: The message expires this long after the occurrence's due time (Celery's
    #: ``expires``): a worker that receives it later revokes it instead of running it.
    expires_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """As the API shows it (every field, defaults included)."""
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "queue": self.queue,
            "broker": self.broker,
            "track": self.track,
            "expires_seconds": self.expires_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CeleryCall:
        """From :meth:`to_dict`'s shape as stored (already validated when it was stored)."""
        expires = data.get("expires_seconds")
        return cls(
            task=str(data["task"]),
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            queue=str(data.get("queue") or limits.DEFAULT_CELERY_QUEUE),
            broker=str(data.get("broker") or limits.DEFAULT_CELERY_BROKER),
            track=bool(data.get("track", False)),
            expires_seconds=None if expires is None else float(expires),
        )


def parse_celery_call(
    data: Any,
    brokers: Collection[str] | None = None,
    result_backends: Collection[str] | None = None,
) -> CeleryCall:
    """``target.celery`` as the API documents it. ``brokers``, when given, are the broker
    names the operator configured: another name is refused (tenants never see URLs);
    ``result_backends`` likewise the result backends' names, one of which ``track``
    needs (the broker's name); given as name to URL, a backend whose results taskhub
    cannot read is refused too (only its scheme is named: URLs hold secrets)."""
    where = "target.celery"
    data = object_of(data, where, FIELDS)
    task = data.get("task")
    if not isinstance(task, str) or not task:
        raise ValidationError(f"{where}.task", "is required")
    if len(task) > limits.MAX_CELERY_TASK_NAME_CHARS or not _TASK_NAME.fullmatch(task):
        raise ValidationError(
            f"{where}.task",
            "must be a dotted name of identifiers (e.g. billing.tasks.nightly_report), "
            f"at most {limits.MAX_CELERY_TASK_NAME_CHARS} characters",
        )
    args = data.get("args", [])
    if not isinstance(args, list):
        raise ValidationError(f"{where}.args", "must be a JSON array")
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ValidationError(f"{where}.kwargs", "must be a JSON object")
    if not all(isinstance(key, str) and key.isidentifier() for key in kwargs):
        raise ValidationError(f"{where}.kwargs", "its keys must be Python identifiers")
    for name, value in (("args", args), ("kwargs", kwargs)):
        try:
            size = len(json.dumps(value, allow_nan=False).encode())
        except (TypeError, ValueError):
            raise ValidationError(f"{where}.{name}", "must be plain JSON") from None
        if size > limits.MAX_CELERY_ARGUMENTS_BYTES:
            raise ValidationError(
                f"{where}.{name}", f"at most {limits.MAX_CELERY_ARGUMENTS_BYTES} bytes as JSON"
            )
    queue = data.get("queue", limits.DEFAULT_CELERY_QUEUE)
    if (
        not isinstance(queue, str)
        or not _QUEUE_NAME.fullmatch(queue)
        or queue.startswith(limits.RESERVED_CELERY_QUEUE_PREFIX)
    ):
        raise ValidationError(
            f"{where}.queue",
            f"must be 1 to {limits.MAX_CELERY_QUEUE_CHARS} letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit and not with {limits.RESERVED_CELERY_QUEUE_PREFIX!r} "
            "(a name every broker accepts)",
        )
    broker = data.get("broker", limits.DEFAULT_CELERY_BROKER)
    if not isinstance(broker, str) or not _BROKER_NAME.fullmatch(broker):
        raise ValidationError(f"{where}.broker", "must be the name of a configured broker")
    if brokers is not None and broker not in brokers:
        raise ValidationError(
            f"{where}.broker", f"is not a configured broker (configured: {', '.join(brokers)})"
        )
    track = data.get("track", False)
    if not isinstance(track, bool):
        raise ValidationError(f"{where}.track", "must be true or false")
    if track and result_backends is not None and broker not in result_backends:
        raise ValidationError(
            f"{where}.track",
            f"needs a result backend named like the broker ({broker}), and none is configured",
        )
    if track and isinstance(result_backends, Mapping):
        scheme = celery_results.unreadable_scheme(result_backends[broker])
        if scheme is not None:
            raise ValidationError(
                f"{where}.track",
                f"needs a result backend taskhub reads (redis://, rediss:// or db+...); "
                f"the one named {broker} is {scheme}",
            )
    expires = data.get("expires_seconds")
    return CeleryCall(
        task=task,
        args=tuple(args),
        kwargs=dict(kwargs),
        queue=queue,
        broker=broker,
        track=track,
        expires_seconds=None
        if expires is None
        else number(
            expires,
            f"{where}.expires_seconds",
            limits.MIN_CELERY_EXPIRES_S,
            limits.MAX_CELERY_EXPIRES_S,
        ),
    )
