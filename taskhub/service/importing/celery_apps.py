"""A user's Celery app, loaded as ``celery -A`` loads it, and the entries it declares:
its ``beat_schedule`` (``taskhub import celery-beat``) and, for ``taskhub sync``, the
schedules declared with :func:`taskhub.periodic.periodic` beside its tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from celery import Celery
from celery.app.utils import find_app
from celery.utils.imports import cwd_in_path

from taskhub import periodic
from taskhub.core import limits
from taskhub.core.errors import ValidationError
from taskhub.service.importing import entries
from taskhub.service.importing.entries import (
    Entry,
    Unmappable,
    celery_target,
    definition,
    refused,
)
from taskhub.service.importing.schedules import taskhub_schedule

#: The keys of a ``beat_schedule`` entry (celery.beat.ScheduleEntry's).
BEAT_KEYS: Final = ("task", "schedule", "args", "kwargs", "options", "relative")


def load_app(spec: str) -> Any:
    """The app ``MODULE:APP`` (or ``MODULE``) names, found as ``celery -A`` finds it
    (Celery's ``find_app``, the current directory first on the path), with the modules
    its configuration imports loaded and the app finalized: tasks, and entries added by
    ``on_after_configure``/``on_after_finalize`` handlers, exist then, as in a beat."""
    with cwd_in_path():
        try:
            app = find_app(spec)
        except (ImportError, AttributeError) as error:
            raise ValidationError("MODULE:APP", f"cannot load {spec!r}: {error}") from None
        if not isinstance(app, Celery):
            raise ValidationError("MODULE:APP", f"{spec!r} is not a Celery app")
        app.loader.import_default_modules()
        app.finalize(auto=True)
    return app


def app_timezone(app: Any) -> str | None:
    """The zone the app's crontabs run in; None when it is the machine's local time."""
    zone = app.conf.timezone
    if zone:
        return zone if isinstance(zone, str) else str(getattr(zone, "key", zone))
    return limits.DEFAULT_TIMEZONE if app.conf.enable_utc else None


def routed_queue(app: Any, task_name: Any, args: Any, kwargs: Any) -> str:
    """Where the app sends ``task_name`` when the entry names no queue, as beat would:
    the task's own ``queue``, else the app's ``task_routes``, else its default queue."""
    task = app.tasks.get(entries.task_name(task_name))
    own = getattr(task, "queue", None)
    if own:
        return str(getattr(own, "name", own))
    try:
        route = app.amqp.router.route({}, task_name, args or (), kwargs or {}, task_type=task)
    except Exception as error:  # a user's router: anything it raises is a refusal
        raise Unmappable(f"the app's task_routes failed for {task_name!r}: {error}") from None
    queue = route.get("queue")
    return str(getattr(queue, "name", queue) or limits.DEFAULT_CELERY_QUEUE)


def _with_queue(app: Any, task: Any, args: Any, kwargs: Any, options: Any) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise Unmappable(f"options {options!r} is not a dict")
    copied: dict[str, Any] = {str(key): value for key, value in options.items()}
    if copied.get("queue") is None:
        copied["queue"] = routed_queue(app, task, args, kwargs)
    return copied


def beat_entry(app: Any, name: str, spec: Any, timezone: str | None) -> Entry:
    """One ``beat_schedule`` entry, as taskhub will hold it, or refused."""
    try:
        if not isinstance(spec, Mapping):
            raise Unmappable("the entry is not a dict")
        unknown = sorted(str(key) for key in spec if key not in BEAT_KEYS)
        if unknown:
            raise Unmappable(
                f"unknown key {unknown[0]!r} (a beat entry has {', '.join(BEAT_KEYS)})"
            )
        schedule = taskhub_schedule(spec.get("schedule"), bool(spec.get("relative")), timezone)
        task, args, kwargs = spec.get("task"), spec.get("args"), spec.get("kwargs")
        options = _with_queue(app, task, args, kwargs, spec.get("options"))
        target = celery_target(task, args, kwargs, options, limits.DEFAULT_CELERY_QUEUE)
        return Entry(name, definition(name, schedule, target))
    except Unmappable as error:
        return refused(name, str(error))


def beat_entries(app: Any) -> list[Entry]:
    """The app's ``beat_schedule``, in its order."""
    timezone = app_timezone(app)
    schedule = app.conf.beat_schedule or {}
    return [beat_entry(app, str(name), spec, timezone) for name, spec in schedule.items()]


def declared_entry(
    app: Any, task_name: str, declaration: periodic.Periodic, timezone: str | None
) -> Entry:
    name = declaration.name or task_name
    try:
        if isinstance(declaration.schedule, str):
            zone = declaration.timezone or timezone
            if zone is None:
                raise Unmappable("the cron's time zone: give timezone= (the app has none)")
            schedule: dict[str, Any] = {"cron": declaration.schedule, "timezone": zone}
        else:
            schedule = taskhub_schedule(
                declaration.schedule, False, declaration.timezone or timezone
            )
        options = {"queue": declaration.queue, "expires": declaration.expires}
        args, kwargs = declaration.args, declaration.kwargs
        options = _with_queue(app, task_name, args, kwargs, options)
        target = celery_target(task_name, args, kwargs, options, limits.DEFAULT_CELERY_QUEUE)
        return Entry(name, definition(name, schedule, target))
    except Unmappable as error:
        return refused(name, str(error))


def sync_entries(app: Any) -> list[Entry]:
    """What ``taskhub sync`` makes the tenant's tasks match: the app's ``beat_schedule``
    and then its declared schedules."""
    timezone = app_timezone(app)
    declared = [
        declared_entry(app, task_name, declaration, timezone)
        for task_name, declaration in periodic.declarations(app)
    ]
    return [*beat_entries(app), *declared]
