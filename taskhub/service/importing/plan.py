"""The plan of an import or a sync: for each entry, create, update, unchanged or refused
(with the reason), by comparing it with the tenant's task of the same name; applied
through the service functions the API uses, so every rule of the API holds.

A dry run applies the plan exactly as a real run does, in one transaction that is then
rolled back: every refusal the service would make (a definition it refuses, a quota, a
name taken) shows in the plan, and nothing changes. Each entry is applied in a savepoint
of its own, so a refused entry leaves the others applied.

An import decides a task's schedule, its Celery call (task, args, kwargs, queue, broker,
expiry), its window (``start_at``, ``end_at``, ``max_executions``) and whether it is
paused; everything else (retry policy, misfire policy, rate limit, whether the Celery
task's result is tracked, ...) is left as it is set in taskhub.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy.engine import Connection, Engine

from taskhub.core import limits
from taskhub.core.celery_calls import CeleryCall
from taskhub.core.definitions import parse_schedule, parse_time, schedule_to_dict
from taskhub.core.errors import TaskhubError
from taskhub.core.settings import Settings
from taskhub.service import task_service, task_views
from taskhub.service.importing.entries import DISABLED_AT_SOURCE, Entry

CREATE: Final = "create"
UPDATE: Final = "update"
UNCHANGED: Final = "unchanged"
REFUSED: Final = "refused"
DELETE: Final = "delete"

#: The tag ``taskhub sync`` marks its tasks with, its value the app (``MODULE:APP``):
#: ``--prune`` deletes only tasks that carry it.
SYNC_TAG: Final = "taskhub-sync"
#: The fields of ``target.celery`` an import decides.
CELERY_FIELDS: Final = ("task", "args", "kwargs", "queue", "broker", "expires_seconds")
_WINDOW_INSTANTS: Final = ("start_at", "end_at")


@dataclass(frozen=True)
class Step:
    """What the plan does with one entry (or, pruning, with one task)."""

    name: str
    action: str
    #: An update's changed fields; a refusal's reason.
    detail: str = ""
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply(
    engine: Engine,
    tenant: str,
    entries: Sequence[Entry],
    now: datetime,
    settings: Settings,
    *,
    dry_run: bool = False,
    sync: str | None = None,
    prune: bool = False,
    broker: str = limits.DEFAULT_CELERY_BROKER,
) -> list[Step]:
    """Make the tenant's tasks match ``entries``, their Celery tasks sent to ``broker``
    (a name of ``TASKHUB_CELERY_BROKERS``). ``sync``: the app a sync reads (its tasks are
    tagged with it); ``prune`` then deletes its tagged tasks no entry names."""
    tags = {} if sync is None else {SYNC_TAG: sync}
    entries = [with_broker(entry, broker) for entry in entries]
    counts = Counter(entry.name for entry in entries)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            steps = [
                Step(entry.name, REFUSED, "the name is declared more than once")
                if counts[entry.name] > 1
                else _apply_one(conn, tenant, entry, tags, now, settings)
                for entry in entries
            ]
            if prune and sync is not None:
                steps += _prune(conn, tenant, sync, set(counts), now, settings)
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return steps


def with_broker(entry: Entry, broker: str) -> Entry:
    if entry.definition is None:
        return entry
    target = entry.definition["target"]
    celery = {**target["celery"], "broker": broker}
    return replace(entry, definition={**entry.definition, "target": {**target, "celery": celery}})


def _apply_one(
    conn: Connection,
    tenant: str,
    entry: Entry,
    tags: Mapping[str, str],
    now: datetime,
    settings: Settings,
) -> Step:
    if entry.definition is None:
        return Step(entry.name, REFUSED, entry.refusal or "")
    savepoint = conn.begin_nested()
    try:
        step = _write(conn, tenant, entry, entry.definition, tags, now, settings)
    except TaskhubError as error:
        savepoint.rollback()
        return Step(entry.name, REFUSED, str(error))
    savepoint.commit()
    return step


def _stored(
    conn: Connection, tenant: str, name: str, settings: Settings, now: datetime
) -> dict[str, Any] | None:
    items = task_views.list_tasks(conn, tenant, settings, name=name, limit=1, now=now)["items"]
    return items[0] if items else None


def _write(
    conn: Connection,
    tenant: str,
    entry: Entry,
    desired: Mapping[str, Any],
    tags: Mapping[str, str],
    now: datetime,
    settings: Settings,
) -> Step:
    current = _stored(conn, tenant, entry.name, settings, now)
    if current is None:
        task = task_service.add_task(conn, tenant, {**desired, "tags": dict(tags)}, now, settings)
        if entry.paused:
            pause = {"reason": DISABLED_AT_SOURCE}
            task_service.pause_task(conn, tenant, task["id"], now, settings, pause)
        return Step(entry.name, CREATE, "paused" if entry.paused else "", task["id"])
    patch = changes(current, desired, tags, now)
    if patch:
        task_service.update_task(conn, tenant, current["id"], patch, now, settings)
    changed = list(patch)
    status = status_change(current, entry.paused)
    if status == "paused":
        pause = {"reason": DISABLED_AT_SOURCE}
        task_service.pause_task(conn, tenant, current["id"], now, settings, pause)
        changed.append("paused")
    elif status == "resumed":
        task_service.resume_task(conn, tenant, current["id"], now, settings)
        changed.append("resumed")
    return Step(entry.name, UPDATE if changed else UNCHANGED, ", ".join(changed), current["id"])


def _schedule(value: Any, now: datetime) -> dict[str, Any]:
    return schedule_to_dict(parse_schedule(value, now, require_future_at=False))


def _celery(value: Any) -> str:
    """The fields of a Celery call an import decides, as one comparable text (JSON, so
    that ``1`` and ``true`` differ)."""
    if not isinstance(value, Mapping) or "task" not in value:
        return ""
    shown = CeleryCall.from_dict(value).to_dict()
    return json.dumps({field: shown[field] for field in CELERY_FIELDS}, sort_keys=True)


def changes(
    current: Mapping[str, Any], desired: Mapping[str, Any], tags: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """The patch that makes the stored task ``current`` (as the API shows it) what
    ``desired`` says: only the fields that differ, in the API's merge-patch shape."""
    patch: dict[str, Any] = {}
    if _schedule(current["schedule"], now) != _schedule(desired["schedule"], now):
        patch["schedule"] = desired["schedule"]
    stored = current["target"].get("celery")
    wanted = desired["target"]["celery"]
    if _celery(stored) != _celery(wanted):
        decided = {field: wanted.get(field) for field in CELERY_FIELDS}
        patch["target"] = {"celery": {**(stored or {}), **decided}}
    for field in _WINDOW_INSTANTS:
        if parse_time(current.get(field), field) != parse_time(desired.get(field), field):
            patch[field] = desired.get(field)
    if current.get("max_executions") != desired.get("max_executions"):
        patch["max_executions"] = desired.get("max_executions")
    if any(current["tags"].get(key) != value for key, value in tags.items()):
        patch["tags"] = {**current["tags"], **tags}
    return patch


def status_change(current: Mapping[str, Any], paused: bool) -> str | None:
    """``paused`` or ``resumed`` when the entry's being enabled at its source says so.
    Only a pause an import made is undone: a user's own pause, or an auto-pause, is kept."""
    if paused and current["status"] == "active":
        return "paused"
    if (
        not paused
        and current["status"] == "paused"
        and current.get("paused_reason") == DISABLED_AT_SOURCE
    ):
        return "resumed"
    return None


def _prune(
    conn: Connection,
    tenant: str,
    sync: str,
    declared: set[str],
    now: datetime,
    settings: Settings,
) -> list[Step]:
    """Delete the tasks a sync of this app made that nothing declares any more."""
    stale: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = task_views.list_tasks(
            conn, tenant, settings, tags=[f"{SYNC_TAG}:{sync}"], cursor=cursor, now=now
        )
        stale += [task for task in page["items"] if task["name"] not in declared]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for task in stale:
        task_service.delete_task(conn, tenant, task["id"], now)
    return [Step(task["name"], DELETE, "no longer declared", task["id"]) for task in stale]
