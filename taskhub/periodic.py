"""Periodic Celery tasks declared beside the task, for ``taskhub sync MODULE:APP``::

    from taskhub.periodic import periodic

    @periodic("*/5 * * * *", timezone="Europe/Berlin")
    @app.task
    def refresh_rates():
        ...

``taskhub sync`` loads the app as ``celery -A`` does and makes the tenant's tasks match
its declarations (and its ``beat_schedule``). A declaration belongs to the task's
function, so it is seen by every app that registers the task and by no other; nothing is
kept in a global registry. An app's declarations are those of the tasks it has
(``app.tasks``, as its worker sees them: Celery shares a task made by ``@app.task`` with
every app of the process unless ``shared=False``). Either order of ``@periodic`` and
``@app.task`` works (with ``@shared_task``, ``@periodic`` goes directly above the
function).

This module runs inside the user's workers: it imports nothing of taskhub's server side
(no database, no web framework), only the pure cron rules and Celery itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskhub.core.cron import parse_cron

#: The attribute of a task's function that holds its declarations.
ATTRIBUTE: Final = "__taskhub_periodic__"

T = TypeVar("T")


@dataclass(frozen=True)
class Periodic:
    """One declared schedule of a Celery task."""

    #: A five-field cron expression, a number of seconds, a timedelta, or a Celery
    #: ``crontab``/``schedule``.
    schedule: Any
    #: The cron's time zone; None: the app's (as a ``crontab`` runs in it).
    timezone: str | None = None
    #: The task's name in taskhub; None: the Celery task's name.
    name: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: None: where the app routes the task (``task_routes``, ``task_default_queue``).
    queue: str | None = None
    #: Seconds after each occurrence's due time after which a worker drops the message.
    expires: float | None = None


def periodic(
    schedule: str | float | timedelta | Any,
    *,
    timezone: str | None = None,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    expires: float | None = None,
) -> Callable[[T], T]:
    """Declare that this Celery task runs on ``schedule``: a cron expression (in
    ``timezone``, else the app's), a number of seconds or a timedelta, or a Celery
    ``crontab``. Stack several, each with its own ``name``, for several schedules."""
    if isinstance(schedule, str):
        parse_cron(schedule)  # a ValueError naming the field, at import like crontab's
    elif timezone is not None and type(schedule).__name__ != "crontab":
        raise ValueError("timezone applies to a cron schedule only")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}") from None
    declaration = Periodic(
        schedule, timezone, name, tuple(args), dict(kwargs or {}), queue, expires
    )

    def decorate(target: T) -> T:
        _declare(target, declaration)
        return target

    return decorate


def _declare(target: Any, declaration: Periodic) -> None:
    from celery.app.task import Task
    from celery.local import PromiseProxy, Proxy

    kind = type(target)  # never isinstance() on a proxy: that would evaluate it
    if issubclass(kind, PromiseProxy) and not target.__evaluated__():
        # ``@app.task`` before the app is finalized: the function it will make the task
        # of, read without creating the task (which would load the app's configuration).
        function = object.__getattribute__(target, "_Proxy__args")[0]
    elif issubclass(kind, PromiseProxy):
        function = function_of(target)
    elif issubclass(kind, Proxy):
        raise TypeError("put @periodic below @shared_task, directly above the function")
    elif issubclass(kind, Task):
        function = function_of(target)
    else:
        function = target
    if not callable(function):
        raise TypeError(f"@periodic decorates a Celery task or its function, not {target!r}")
    # Decorators apply from the bottom up: the topmost declaration comes first.
    setattr(function, ATTRIBUTE, (declaration, *getattr(function, ATTRIBUTE, ())))


def function_of(task: Any) -> Any:
    """The function a Celery task was made from (where its declarations are)."""
    for name in ("_decorated_fun", "__wrapped__", "run"):
        function = getattr(task, name, None)
        if function is not None:
            return getattr(function, "__func__", function)
    return None


def declarations(app: Any) -> list[tuple[str, Periodic]]:
    """The app's declared schedules, as (Celery task name, declaration), by task name.
    Reading ``app.tasks`` finalizes the app, which creates its pending tasks."""
    found = []
    for task_name, task in sorted(app.tasks.items()):
        for declaration in getattr(function_of(task), ATTRIBUTE, ()):
            found.append((task_name, declaration))
    return found
