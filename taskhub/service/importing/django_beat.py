"""``taskhub import django-celery-beat``: its periodic tasks, read from its tables
(:mod:`taskhub.db.django_celery_beat`) with no Django installed.

How its fields map: a crontab with its own time zone, an interval, a clocked time as a
one-time schedule; ``start_time`` as ``start_at``; ``expires`` as ``end_at`` (and then,
as django-celery-beat does, ``expire_seconds`` is not used), else ``expire_seconds`` as
the message's expiry; ``enabled=False`` as a paused task. ``one_off`` is
``max_executions: 1``; taskhub counts its own executions from none, so a one-off entry
that has already run (``total_run_count`` above 0) is imported paused, as
django-celery-beat itself disables it after its run. Solar schedules are refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from celery.schedules import crontab
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from taskhub.core.errors import ValidationError
from taskhub.db import django_celery_beat
from taskhub.service.importing.entries import (
    Entry,
    Unmappable,
    celery_target,
    definition,
    iso,
    refused,
)
from taskhub.service.importing.schedules import (
    cron_of,
    interval_schedule,
    solar_refusal,
)

#: ``IntervalSchedule.period``: its unit, in seconds.
PERIOD_SECONDS: Final = {
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "microseconds": 1e-6,
}
_OPTION = "--database-url"


def read(url: str, default_queue: str) -> list[Entry]:
    """Every periodic task of the django-celery-beat database at ``url``."""
    try:
        rows = django_celery_beat.read_periodic_tasks(url)
    except (SQLAlchemyError, ArgumentError, ImportError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValidationError(
            _OPTION, f"cannot read django-celery-beat's tables: {first_line}"
        ) from None
    return [entry_of(dict(row), default_queue) for row in rows]


def _json(text: str | None, column: str, empty: Any) -> Any:
    if not text:
        return empty
    try:
        value = json.loads(text)
    except ValueError:
        raise Unmappable(f"{column} is not JSON: {text[:60]!r}") from None
    if not isinstance(value, type(empty)):
        kind = "array" if isinstance(empty, list) else "object"
        raise Unmappable(f"{column} is not a JSON {kind}: {text[:60]!r}")
    return value


def _schedule(row: Mapping[str, Any]) -> dict[str, Any]:
    if row["solar_id"] is not None:
        raise Unmappable(solar_refusal(row["solar_event"]))
    if row["crontab_id"] is not None:
        try:
            tab = crontab(
                minute=row["minute"],
                hour=row["hour"],
                day_of_week=row["day_of_week"],
                day_of_month=row["day_of_month"],
                month_of_year=row["month_of_year"],
            )
        except ValueError as error:
            raise Unmappable(f"its crontab is not one Celery reads: {error}") from None
        return {"cron": cron_of(tab), "timezone": row["timezone"] or "UTC"}
    if row["interval_id"] is not None:
        unit = PERIOD_SECONDS.get(row["period"])
        if unit is None:
            raise Unmappable(f"interval period {row['period']!r} is not one Celery knows")
        return interval_schedule(timedelta(seconds=row["every"] * unit), False, None)
    if row["clocked_id"] is not None:
        return {"at": iso(row["clocked_time"])}
    raise Unmappable("it has no schedule")


def entry_of(row: Mapping[str, Any], default_queue: str) -> Entry:
    """One ``PeriodicTask`` row (with its schedule's columns), or refused."""
    name = row["name"]
    try:
        schedule = _schedule(row)
        options: dict[str, Any] = {
            "queue": row["queue"] or None,
            "exchange": row["exchange"],
            "routing_key": row["routing_key"],
            "priority": row["priority"],
            "headers": _json(row["headers"], "headers", {}),
        }
        if row["expires"] is None:
            options["expires"] = row["expire_seconds"]
        args = _json(row["args"], "args", [])
        kwargs = _json(row["kwargs"], "kwargs", {})
        target = celery_target(row["task"], args, kwargs, options, default_queue)
        one_off = bool(row["one_off"])
        task = definition(
            name,
            schedule,
            target,
            start_at=row["start_time"],
            end_at=row["expires"],
            max_executions=1 if one_off and "at" not in schedule else None,
        )
        ran = one_off and (row["total_run_count"] or 0) > 0
        return Entry(name, task, paused=not row["enabled"] or ran)
    except Unmappable as error:
        return refused(name, str(error))
