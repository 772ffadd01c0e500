"""Skipping one occurrence of a task, and the tenant's exclusion calendars: the service
functions the API and the CLI are thin layers over.

When a skip or a calendar changes, the tasks it concerns have their occurrences written
down and not yet sent withdrawn (``withdrawal``), and their next occurrence recomputed
with their exclusions, so ``next_execution_time`` always names the next occurrence that
will fire. Deleting a calendar that a task still names is refused (409, naming the
tasks): silently firing on the holidays the task was told to skip would be worse.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import limits
from taskhub.core.definitions import parse_calendar_name, parse_time
from taskhub.core.errors import Conflict, NotFound, ScheduleError, ValidationError
from taskhub.core.exclusions import Exclusions, parse_calendar_dates
from taskhub.core.occurrences import next_included
from taskhub.core.schedules import Window, next_occurrence
from taskhub.core.wall_clock import zone
from taskhub.db import exclusion_queries, task_queries
from taskhub.db.rows import schedule_of, window_of
from taskhub.engine import withdrawal
from taskhub.service.task_views import TaskId, task_row

_MICROSECOND = timedelta(microseconds=1)
#: How long a skip is kept after its occurrence: past it, it can no longer fall due.
SKIP_KEPT = timedelta(days=1)
CALENDAR_FIELDS = ("name", "timezone", "dates")

# --- calendars ------------------------------------------------------------------------


def calendar_view(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "timezone": row["timezone"],
        "dates": sorted(row["dates"]),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _fields(data: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key not in allowed:
            raise ValidationError(str(key), "unknown field")
    return data


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("timezone", "is required: an IANA time zone such as 'Asia/Taipei'")
    try:
        zone(value)
    except ScheduleError as error:
        raise ValidationError("timezone", error.message) from None
    return value


def _dates(value: Any) -> list[str]:
    return sorted(d.isoformat() for d in parse_calendar_dates(value))


def create_calendar(conn: Connection, tenant: str, data: Any, now: datetime) -> dict[str, Any]:
    data = _fields(data, CALENDAR_FIELDS)
    name = parse_calendar_name(data.get("name"))
    values = {
        "tenant": tenant,
        "name": name,
        "timezone": _timezone(data.get("timezone")),
        "dates": _dates(data.get("dates", [])),
        "created_at": now,
        "updated_at": now,
    }
    if exclusion_queries.get_calendar(conn, tenant, name) is not None:
        raise Conflict("a calendar with this name exists", "name")
    exclusion_queries.insert_calendar(conn, values)
    return get_calendar(conn, tenant, name)


def _calendar_row(conn: Connection, tenant: str, name: str, lock: bool = False) -> RowMapping:
    row = exclusion_queries.get_calendar(conn, tenant, name, lock=lock)
    if row is None:
        raise NotFound("no such calendar")
    return row


def get_calendar(conn: Connection, tenant: str, name: str) -> dict[str, Any]:
    return calendar_view(_calendar_row(conn, tenant, name))


def list_calendars(conn: Connection, tenant: str) -> dict[str, Any]:
    return {"items": [calendar_view(r) for r in exclusion_queries.list_calendars(conn, tenant)]}


def update_calendar(
    conn: Connection, tenant: str, name: str, data: Any, now: datetime
) -> dict[str, Any]:
    """Change a calendar's ``timezone`` or ``dates`` (its name is what tasks know it by,
    and cannot change); the tasks naming it get their next occurrence recomputed."""
    data = _fields(data, CALENDAR_FIELDS)
    row = _calendar_row(conn, tenant, name, lock=True)
    if "name" in data and data["name"] != row["name"]:
        raise ValidationError("name", "cannot be changed (tasks name the calendar by it)")
    values: dict[str, Any] = {"updated_at": now}
    if "timezone" in data:
        values["timezone"] = _timezone(data["timezone"])
    if "dates" in data:
        values["dates"] = _dates(data["dates"])
    exclusion_queries.update_calendar(conn, tenant, name, values)
    for task in exclusion_queries.tasks_naming_calendar(conn, tenant, name):
        recompute_next(conn, task_row(conn, tenant, task["id"], lock=True), now)
    return get_calendar(conn, tenant, name)


def delete_calendar(conn: Connection, tenant: str, name: str) -> None:
    """Refused (409, naming them) while a task names the calendar."""
    _calendar_row(conn, tenant, name, lock=True)
    users = exclusion_queries.tasks_naming_calendar(conn, tenant, name)
    if users:
        shown = ", ".join(f"{u['name']} ({u['id']})" for u in users[:20])
        more = f" and {len(users) - 20} more" if len(users) > 20 else ""
        raise Conflict(
            f"the calendar is in the exclude_calendars of {len(users)} tasks: {shown}{more};"
            " take it out of them first",
            "name",
        )
    exclusion_queries.delete_calendar(conn, tenant, name)


def check_calendars_exist(conn: Connection, tenant: str, names: tuple[str, ...]) -> None:
    """A task may name only calendars of its tenant (422 naming ``exclude_calendars``)."""
    found = exclusion_queries.existing_calendar_names(conn, tenant, list(names))
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationError(
            "exclude_calendars", f"no such calendar: {', '.join(missing)} (create it first)"
        )


# --- skips ----------------------------------------------------------------------------


def _scheduled_for(data: Any) -> datetime:
    data = _fields(data, ("scheduled_for",))
    instant = parse_time(data.get("scheduled_for"), "scheduled_for")
    if instant is None:
        raise ValidationError("scheduled_for", "is required: an occurrence's ISO 8601 time")
    return instant


def _is_occurrence(row: RowMapping, instant: datetime) -> bool:
    schedule, window = schedule_of(row), window_of(row)
    found = next_occurrence(schedule, instant - _MICROSECOND, Window(), 0)
    if found != instant:
        return False
    return (window.start_at is None or instant >= window.start_at) and (
        window.end_at is None or instant <= window.end_at
    )


def skip_occurrence(
    conn: Connection, tenant: str, task_id: TaskId, data: Any, now: datetime
) -> dict[str, Any]:
    """Skip the occurrence at ``scheduled_for``: it is not fired (no execution). It must
    be an occurrence of the task's schedule (422 naming ``scheduled_for``), and not
    already past (a past one is fired or missed already)."""
    row = task_row(conn, tenant, task_id, lock=True)
    instant = _scheduled_for(data)
    if not _is_occurrence(row, instant):
        raise ValidationError("scheduled_for", "is not an occurrence of the task's schedule")
    if instant < now:
        raise ValidationError("scheduled_for", "is in the past")
    exclusion_queries.prune_skips(conn, now - SKIP_KEPT, row["id"])
    if exclusion_queries.count_skips(conn, row["id"]) >= limits.MAX_SKIPS_PER_TASK:
        raise ValidationError(
            "scheduled_for",
            f"the task already has {limits.MAX_SKIPS_PER_TASK} skipped occurrences",
        )
    exclusion_queries.add_skip(conn, row["id"], instant, now)
    recompute_next(conn, task_row(conn, tenant, row["id"], lock=True), now)
    return {"task_id": str(row["id"]), "scheduled_for": instant.isoformat(), "skipped": True}


def unskip_occurrence(
    conn: Connection, tenant: str, task_id: TaskId, data: Any, now: datetime
) -> dict[str, Any]:
    """Undo a skip; the occurrence fires again (if still ahead)."""
    row = task_row(conn, tenant, task_id, lock=True)
    instant = _scheduled_for(data)
    if not _is_occurrence(row, instant):
        raise ValidationError("scheduled_for", "is not an occurrence of the task's schedule")
    if not exclusion_queries.remove_skip(conn, row["id"], instant):
        raise NotFound("that occurrence is not skipped")
    recompute_next(conn, task_row(conn, tenant, row["id"], lock=True), now)
    return {"task_id": str(row["id"]), "scheduled_for": instant.isoformat(), "skipped": False}


def prune_skips(conn: Connection, now: datetime) -> int:
    """Delete every task's skips more than :data:`SKIP_KEPT` past (a skip prunes its own
    task's first; this is for an operator's or a maintenance job's sweep)."""
    return exclusion_queries.prune_skips(conn, now - SKIP_KEPT)


# --- the next occurrence --------------------------------------------------------------


def exclusions_of_task(conn: Connection, row: RowMapping | Mapping[str, Any]) -> Exclusions:
    return exclusion_queries.exclusions_of(conn, [row]).get(str(row["id"]), Exclusions())


def recompute_next(conn: Connection, row: RowMapping, now: datetime) -> None:
    """Withdraw the task's unsent occurrences and store its next occurrence that will
    fire, from its stored next time if that is due, else from ``now``. The caller holds
    the task's row lock."""
    if withdrawal.withdraw(conn, [row["id"]], now, withdrawal.CHANGE):
        row = task_queries.get_task(conn, row["id"]) or row  # its next time moved back
    window = window_of(row)
    stored: datetime | None = row["next_execution_time"]
    if window.max_executions is not None and row["occurrence_count"] >= window.max_executions:
        return
    base = now if stored is None else min(stored, now)
    next_time = next_included(
        schedule_of(row),
        base - _MICROSECOND,
        window,
        row["occurrence_count"],
        exclusions_of_task(conn, row),
    )
    values: dict[str, Any] = {"next_execution_time": next_time, "updated_at": now}
    if next_time is not None:
        values["is_finished"] = False
    elif not task_queries.tasks_with_open_executions(conn, [row["id"]]):
        values["is_finished"] = True
    task_queries.update_task(conn, row["id"], values)
