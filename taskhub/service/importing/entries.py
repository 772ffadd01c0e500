"""One entry of a source as taskhub will hold it: a task definition in the API's shape
(with a Celery target), or a refusal with its reason. What every source shares: the
Celery call (task, arguments, queue, expiry) and the definition around it. Nothing of
Celery or of a source's client is imported here: the CLI reads it when it starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from taskhub.core import limits

#: redbeat's default ``redbeat_key_prefix``.
REDBEAT_KEY_PREFIX: Final = "redbeat:"
#: What a paused task's ``paused_reason`` says when its source disabled the entry; an
#: import resumes only the tasks it paused itself (never a pause of the user's own).
DISABLED_AT_SOURCE: Final = "disabled at its source (taskhub import/sync)"


class Unmappable(ValueError):
    """An entry taskhub cannot carry over; the message is the reason shown in the plan."""


@dataclass(frozen=True)
class Entry:
    """A source's entry, named as its source names it (the task's name in taskhub)."""

    name: str
    #: The task as the API takes it; None when refused.
    definition: Mapping[str, Any] | None = None
    #: Disabled at its source: the task is kept paused.
    paused: bool = False
    refusal: str | None = None


def refused(name: str, reason: str) -> Entry:
    return Entry(name, refusal=reason)


def plain_json(value: Any, where: str) -> Any:
    """``value`` as plain JSON (tuples as lists); anything else is refused, since
    taskhub stores and sends arguments as JSON."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unmappable(f"{where} holds {value!r}, which JSON cannot carry")
        return value
    if isinstance(value, list | tuple):
        return [plain_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        if "__type__" in value:  # redbeat's encoding of a datetime, rrule, ...
            raise Unmappable(f"{where} holds an encoded {value['__type__']}, not plain JSON")
        copied = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unmappable(f"{where} has the key {key!r}, which is not a string")
            copied[key] = plain_json(item, f"{where}.{key}")
        return copied
    raise Unmappable(f"{where} holds a {type(value).__name__}, which is not plain JSON")


def task_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Unmappable(f"task {value!r} is not a task name")
    return value


def _queue_name(value: Any) -> str:
    name = getattr(value, "name", value)  # a kombu Queue or its name
    if not isinstance(name, str) or not name:
        raise Unmappable(f"options.queue {value!r} is not a queue name")
    return name


def expires_seconds(value: Any) -> float | None:
    """Celery's ``expires`` option: seconds after sending (a fixed time is refused: a
    taskhub expiry counts from each occurrence's due time)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unmappable(
            f"options.expires {value!r} is a fixed time: taskhub's expiry counts from each "
            "occurrence (a number of seconds)"
        )
    return float(value)


def celery_target(
    task: Any, args: Any, kwargs: Any, options: Mapping[str, Any], default_queue: str
) -> dict[str, Any]:
    """``target`` for sending ``task``: the entry's options taskhub carries over are
    ``queue`` and ``expires``; an exchange or routing key other than the queue's own, a
    priority, headers or any other option is refused, since the message would be sent
    otherwise than the entry says."""
    task = task_name(task)
    if args is not None and not isinstance(args, list | tuple):
        raise Unmappable(f"args {args!r} is not a list")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise Unmappable(f"kwargs {kwargs!r} is not a dict")
    queue = default_queue if options.get("queue") is None else _queue_name(options["queue"])
    for key, value in options.items():
        if key in ("queue", "expires") or value is None or value == {}:
            continue
        if key in ("exchange", "routing_key") and value in (queue, ""):
            continue  # a queue's own exchange and routing key, as Celery declares them
        raise Unmappable(
            f"options.{key} ({value!r}) has no taskhub equivalent: a Celery task is sent "
            "to a queue by name (options.queue) with an expiry (options.expires) only"
        )
    call: dict[str, Any] = {
        "task": task,
        "args": plain_json(list(args or ()), "args"),
        "kwargs": plain_json(dict(kwargs or {}), "kwargs"),
        "queue": queue,
    }
    expires = expires_seconds(options.get("expires"))
    if expires is not None:
        call["expires_seconds"] = expires
    return {"celery": call}


def iso(value: datetime | None) -> str | None:
    """An instant as the API takes it; a naive one is UTC (Django's with USE_TZ)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def definition(
    name: str,
    schedule: Mapping[str, Any],
    target: Mapping[str, Any],
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    max_executions: int | None = None,
) -> dict[str, Any]:
    """The task as the API takes it. The window's fields are always given (None: no
    limit): the source decides them."""
    if max_executions is not None and max_executions < limits.MIN_EXECUTIONS:
        raise Unmappable(f"max_executions {max_executions} is below {limits.MIN_EXECUTIONS}")
    return {
        "name": name,
        "schedule": dict(schedule),
        "target": dict(target),
        "start_at": iso(start_at),
        "end_at": iso(end_at),
        "max_executions": max_executions,
    }
