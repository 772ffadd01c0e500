"""A batch of tasks (``POST /v1/tasks:batch``): up to :data:`limits.MAX_BATCH_ITEMS`
task definitions and names to delete, in one transaction, with a result per item.

Each definition is read exactly as one create reads it (:func:`task_service.parse_task`)
and matched by ``name`` in the tenant: a new name is **created**; a name the tenant
holds is an upsert, **updated** when the definition differs from the stored one (the
definition replaces the task's whole definition: a field left out takes its default),
or **unchanged** (nothing written). A refused item is an **error** naming its field and
stores nothing. Names in ``delete`` are deleted (``deleted``), as one delete would.

``atomic``: all or nothing; one refused item and nothing of the batch is stored (the
other items still say what they would have been). Without it, the good items are stored
and only the refused ones are not. ``dry_run``: every item is done as it would be, then
the whole batch is rolled back; the results are exactly those of the real run.

Efficient by construction: the creates (the bulk of a batch) are validated in Python and
written with one multi-row insert (:func:`task_queries.insert_tasks`), one insert of
their next occurrences and one read back; the names, the calendars and the tenant's
quota row are each read once. Updates and deletes go through the one-task service
functions, each in a savepoint (so a refused one undoes only itself); an unchanged item
costs no write at all.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core import credentials, limits
from taskhub.core.definitions import TaskDefinition, parse_definition
from taskhub.core.errors import Conflict, NotFound, TaskhubError, ValidationError
from taskhub.core.occurrences import first_included
from taskhub.core.schedules import OneTime
from taskhub.core.settings import Settings
from taskhub.db import exclusion_queries, task_queries, withdrawal_queries
from taskhub.db.rows import schedule_of
from taskhub.service import quotas, task_service
from taskhub.service.task_views import definition_dict, stored_secrets, task_view

#: The fields of a batch request.
BATCH_FIELDS = ("tasks", "delete", "atomic", "dry_run")

CREATED, UPDATED, UNCHANGED, DELETED, ERROR = "created", "updated", "unchanged", "deleted", "error"
STATUSES = (CREATED, UPDATED, UNCHANGED, DELETED, ERROR)

#: The parts of a definition compared one by one (each named ``part.field``, as a user
#: names it); ``window``'s fields are top-level fields of a task. Every other field of
#: :class:`TaskDefinition` (a new one too) is compared whole, under its own name.
_COMPARED_BY_FIELD = ("target", "retry")
_WINDOW = "window"


@dataclass(frozen=True)
class BatchRequest:
    tasks: tuple[Any, ...]
    delete: tuple[str, ...]
    atomic: bool = False
    dry_run: bool = False


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError(name, "must be true or false")
    return value


def parse_batch(data: Any) -> BatchRequest:
    """The batch as a whole: its shape and size (each item is read on its own later, so
    a bad item refuses only itself)."""
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key not in BATCH_FIELDS:
            raise ValidationError(str(key), "unknown field")
    tasks = data.get("tasks") or []
    if not isinstance(tasks, list):
        raise ValidationError("tasks", "must be a list of task definitions")
    delete = data.get("delete") or []
    if not isinstance(delete, list):
        raise ValidationError("delete", "must be a list of task names")
    for i, name in enumerate(delete):
        if not isinstance(name, str) or not name:
            raise ValidationError(f"delete.{i}", "must be a task's name")
    total = len(tasks) + len(delete)
    if not limits.MIN_BATCH_ITEMS <= total <= limits.MAX_BATCH_ITEMS:
        raise ValidationError(
            "tasks",
            f"a batch holds {limits.MIN_BATCH_ITEMS} to {limits.MAX_BATCH_ITEMS} items "
            f"(tasks and delete together); this one holds {total}",
        )
    return BatchRequest(tuple(tasks), tuple(delete), _flag(data, "atomic"), _flag(data, "dry_run"))


def _error(error: TaskhubError) -> dict[str, Any]:
    return error.to_dict()["error"]


@dataclass
class _Item:
    index: int
    name: str | None
    status: str = ERROR
    task: dict[str, Any] | None = None
    changes: list[str] = dataclasses.field(default_factory=list)
    error: dict[str, Any] | None = None
    definition: TaskDefinition | None = None

    def refuse(self, error: TaskhubError) -> None:
        self.status, self.error, self.task, self.changes = ERROR, _error(error), None, []

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "status": self.status,
            "task": self.task,
            "changes": self.changes,
            "error": self.error,
        }


def _name_of(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, Mapping) else None
    return name if isinstance(name, str) else None


def stored_definition(row: RowMapping, settings: Settings, now: datetime) -> TaskDefinition:
    """The task's definition as stored, credentials in plaintext (to compare with)."""
    data = definition_dict(row, settings)
    if data["target"].get("url") is not None:
        plain = {
            k: v
            for k, v in dict(row["headers"]).items()
            if not credentials.is_secret(k, settings.secret_headers)
        }
        data["target"]["headers"] = {**plain, **stored_secrets(row, settings)}
    return parse_definition(data, now, require_future_at=False)


def changed_fields(old: TaskDefinition, new: TaskDefinition) -> list[str]:
    """The fields (dotted, as a user names them) in which ``new`` differs from ``old``."""
    changes: list[str] = []
    for part in dataclasses.fields(TaskDefinition):
        before, after = getattr(old, part.name), getattr(new, part.name)
        if before == after or part.name == "name":
            continue
        if part.name in _COMPARED_BY_FIELD or part.name == _WINDOW:
            prefix = "" if part.name == _WINDOW else f"{part.name}."
            changes += [
                f"{prefix}{f.name}"
                for f in dataclasses.fields(before)
                if getattr(before, f.name) != getattr(after, f.name)
            ]
        else:
            changes.append(part.name)
    return sorted(changes)


def _replacement(item: Mapping[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """The patch that makes a task's definition the item's (:func:`update_task` merges a
    patch): each changed top-level field, whole; ``target`` and ``retry`` with every part
    given, so nothing of the old ones is kept but what the item says."""
    keys = {change.split(".")[0] for change in changes}
    patch: dict[str, Any] = {}
    for key in keys:
        if key == "target":
            given = dict(item["target"])
            if given.get("celery") is not None:
                base: dict[str, Any] = {"url": None, "method": None, "headers": None, "body": None}
            else:
                base = {
                    "celery": None,
                    "method": limits.DEFAULT_METHOD,
                    "headers": {},
                    "body": None,
                }
            patch[key] = {**base, "timeout_seconds": limits.DEFAULT_TIMEOUT_S, **given}
        elif key == "retry":
            patch[key] = {
                "max_attempts": limits.DEFAULT_MAX_ATTEMPTS,
                "backoff_seconds": limits.DEFAULT_BACKOFF_S,
                "max_backoff_seconds": limits.DEFAULT_MAX_BACKOFF_S,
                **(item.get("retry") or {}),
            }
        elif key == "tags":
            patch[key] = item.get("tags") or {}
        elif key == "exclude_calendars":
            patch[key] = item.get("exclude_calendars") or []
        else:
            patch[key] = item.get(key)
    return patch


def run_batch(
    conn: Connection, tenant: str, data: Any, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Do a batch (see the module) in the caller's transaction, inside a savepoint that a
    dry run, or an atomic batch with a refused item, rolls back."""
    request = parse_batch(data)
    outer = conn.begin_nested()
    try:
        items, deletions = _run(conn, tenant, request, now, settings)
    except BaseException:
        outer.rollback()
        raise
    refused = any(i.status == ERROR for i in (*items, *deletions))
    stored = not request.dry_run and not (request.atomic and refused)
    if stored:
        outer.commit()
    else:
        outer.rollback()
    counts = dict.fromkeys(STATUSES, 0)
    for item in (*items, *deletions):
        counts[item.status] += 1
    return {
        "tenant": tenant,
        "atomic": request.atomic,
        "dry_run": request.dry_run,
        "stored": stored,
        "counts": counts,
        "results": [item.to_dict() for item in items],
        "deletions": [
            {"index": d.index, "name": d.name, "status": d.status, "error": d.error}
            for d in deletions
        ],
    }


def _run(
    conn: Connection, tenant: str, request: BatchRequest, now: datetime, settings: Settings
) -> tuple[list[_Item], list[_Item]]:
    # The tenant's quota row first, as one create takes it: creates of the tenant take
    # turns from here on, so names and the task count cannot change under the batch.
    admission = quotas.Admission.of(conn, tenant, now, settings)
    items = [_Item(i, _name_of(data)) for i, data in enumerate(request.tasks)]
    deletions = [_Item(i, name) for i, name in enumerate(request.delete)]
    names = {i.name for i in items if i.name} | set(request.delete)
    existing = {row["name"]: row for row in task_queries.tenant_tasks_named(conn, tenant, names)}

    seen: set[str] = set()
    deleting = set(request.delete)
    for item, data in zip(items, request.tasks, strict=True):
        try:
            _read(item, data, existing, seen, deleting, now, settings)
        except TaskhubError as error:
            item.refuse(error)

    # Calendars named, read once for all.
    wanted = {n for i in items if i.definition for n in i.definition.exclude_calendars}
    found = exclusion_queries.existing_calendar_names(conn, tenant, sorted(wanted))
    for item in items:
        missing = (
            [n for n in item.definition.exclude_calendars if n not in found]
            if item.definition
            else []
        )
        if missing:
            item.refuse(
                ValidationError(
                    "exclude_calendars", f"no such calendar: {', '.join(missing)} (create it first)"
                )
            )

    # Deletes first: the places they free count for this batch's creates.
    for deletion in deletions:
        _delete(conn, tenant, deletion, existing, now)
    admission.release(sum(d.status == DELETED for d in deletions))
    for item in items:  # the tenant's limits, in the items' order
        if item.status == CREATED and item.definition is not None:
            try:
                admission.admit(item.definition.schedule)
            except TaskhubError as error:
                item.refuse(error)

    _create(conn, tenant, [i for i in items if i.status == CREATED], now, settings)
    for item, data in zip(items, request.tasks, strict=True):
        if item.status == UPDATED:
            _update(conn, tenant, item, data, existing, now, settings)
    _show_unchanged(conn, [i for i in items if i.status == UNCHANGED], existing, now, settings)
    return items, deletions


def _read(
    item: _Item,
    data: Any,
    existing: Mapping[str, RowMapping],
    seen: set[str],
    deleting: set[str],
    now: datetime,
    settings: Settings,
) -> None:
    """Read one item as a create would, and say what it does: created, updated or
    unchanged. A one-time schedule in the past is refused only when it is new."""
    definition = task_service.parse_task(data, now, settings, require_future_at=False)
    name = definition.name
    if name in seen:
        raise Conflict("the batch holds another task of this name", "name")
    seen.add(name)
    if name in deleting:
        raise Conflict("the batch also deletes a task of this name", "name")
    row = existing.get(name)
    if row is None:
        if isinstance(definition.schedule, OneTime) and definition.schedule.at < now:
            task_service.parse_task(data, now, settings)  # raises as one create does
        item.definition, item.status = definition, CREATED
        return
    old = stored_definition(row, settings, now)
    new = task_service.keep_masked(definition, stored_secrets(row, settings))
    item.changes = changed_fields(old, new)
    item.definition = new
    item.status = UPDATED if item.changes else UNCHANGED


def _create(
    conn: Connection, tenant: str, items: Sequence[_Item], now: datetime, settings: Settings
) -> None:
    """The new tasks, as :func:`task_service.create_task` writes one, in three
    statements: one multi-row insert, their next occurrences, and the rows read back."""
    if not items:
        return
    rows: list[dict[str, Any]] = []
    # Ids in ascending order: tasks created at one moment list by id, so in the batch's order.
    ids = sorted(uuid.uuid4() for _ in items)
    for item, task_id in zip(items, ids, strict=True):
        assert item.definition is not None
        columns = task_service.definition_columns(item.definition, settings)
        rows.append({"id": task_id, "tenant": tenant, **columns, "has_skips": False})
    exclusions = exclusion_queries.exclusions_of(conn, rows)
    values = []
    for item, row in zip(items, rows, strict=True):
        assert item.definition is not None
        schedule = schedule_of({**row, "created_at": now})
        first = first_included(
            schedule, now, item.definition.window, exclusions.get(str(row["id"]))
        )
        values.append(
            {
                **{k: v for k, v in row.items() if k != "has_skips"},
                "is_active": True,
                "is_finished": first is None,
                "next_execution_time": first,
                "created_at": now,
                "updated_at": now,
            }
        )
    task_queries.insert_tasks(conn, values)
    stored = {row["id"]: row for row in task_queries.get_tasks(conn, ids)}
    for item, task_id in zip(items, ids, strict=True):
        item.task = task_view(stored[task_id], settings)


def _update(
    conn: Connection,
    tenant: str,
    item: _Item,
    data: Mapping[str, Any],
    existing: Mapping[str, RowMapping],
    now: datetime,
    settings: Settings,
) -> None:
    """One update, as ``PATCH`` does it, in a savepoint: refused, it undoes only itself."""
    assert item.name is not None
    row = existing[item.name]
    savepoint = conn.begin_nested()
    try:
        item.task = task_service.update_task(
            conn, tenant, row["id"], _replacement(data, item.changes), now, settings
        )
    except TaskhubError as error:
        savepoint.rollback()
        item.refuse(error)
        return
    savepoint.commit()


def _show_unchanged(
    conn: Connection,
    items: Sequence[_Item],
    existing: Mapping[str, RowMapping],
    now: datetime,
    settings: Settings,
) -> None:
    rows = [existing[i.name] for i in items if i.name is not None]
    active = [r["id"] for r in rows if r["is_active"] and not r["is_finished"]]
    unsent = withdrawal_queries.unfired_occurrences(conn, active, now)
    for item, row in zip(items, rows, strict=True):
        item.task = task_view(row, settings, unsent.get(row["id"]))


def _delete(
    conn: Connection,
    tenant: str,
    deletion: _Item,
    existing: Mapping[str, RowMapping],
    now: datetime,
) -> None:
    assert deletion.name is not None
    row = existing.get(deletion.name)
    if row is None:
        deletion.refuse(NotFound("the tenant holds no task of this name", "name"))
        return
    savepoint = conn.begin_nested()
    try:
        task_service.delete_task(conn, tenant, row["id"], now)
    except TaskhubError as error:
        savepoint.rollback()
        deletion.refuse(error)
        return
    savepoint.commit()
    deletion.status = DELETED
