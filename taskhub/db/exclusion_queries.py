"""The SQL of exclusions: a tenant's exclusion calendars, the occurrences skipped one by
one, and the :class:`~taskhub.core.exclusions.Exclusions` of the tasks a claim plans."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.exclusions import Calendar, Exclusions
from taskhub.db.dialects import as_uuid, one_of
from taskhub.db.models import calendars, occurrence_skips, scheduled_tasks

C = calendars.c
S = occurrence_skips.c
T = scheduled_tasks.c

# --- calendars ------------------------------------------------------------------------


def insert_calendar(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(sa.insert(calendars).values(id=uuid.uuid4(), **values))


def get_calendar(conn: Connection, tenant: str, name: str, lock: bool = False) -> RowMapping | None:
    query = sa.select(calendars).where(C.tenant == tenant, C.name == name)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def list_calendars(conn: Connection, tenant: str) -> Sequence[RowMapping]:
    return (
        conn.execute(sa.select(calendars).where(C.tenant == tenant).order_by(C.name))
        .mappings()
        .all()
    )


def update_calendar(conn: Connection, tenant: str, name: str, values: Mapping[str, Any]) -> None:
    conn.execute(sa.update(calendars).where(C.tenant == tenant, C.name == name).values(**values))


def delete_calendar(conn: Connection, tenant: str, name: str) -> None:
    conn.execute(sa.delete(calendars).where(C.tenant == tenant, C.name == name))


def existing_calendar_names(conn: Connection, tenant: str, names: Sequence[str]) -> set[str]:
    if not names:
        return set()
    rows = conn.execute(sa.select(C.name).where(C.tenant == tenant, C.name.in_(list(names))))
    return {row.name for row in rows}


def tasks_naming_calendar(conn: Connection, tenant: str, name: str) -> list[RowMapping]:
    """The tenant's tasks whose ``exclude_calendars`` names ``name`` (id and name), in
    name order. The list is read and filtered here: the same on both databases."""
    rows = conn.execute(
        sa.select(T.id, T.name, T.exclude_calendars)
        .where(T.tenant == tenant, T.exclude_calendars.is_not(None))
        .order_by(T.name)
    ).mappings()
    return [row for row in rows if name in (row["exclude_calendars"] or ())]


# --- skips ----------------------------------------------------------------------------


def add_skip(conn: Connection, task_id: uuid.UUID, scheduled_for: datetime, now: datetime) -> bool:
    """Store the skip (once); whether it is new. Marks the task ``has_skips``."""
    exists = conn.execute(
        sa.select(S.task_id).where(S.task_id == task_id, S.scheduled_for == scheduled_for)
    ).first()
    if exists is None:
        conn.execute(
            sa.insert(occurrence_skips).values(
                task_id=task_id, scheduled_for=scheduled_for, created_at=now
            )
        )
    conn.execute(sa.update(scheduled_tasks).where(T.id == task_id).values(has_skips=True))
    return exists is None


def remove_skip(conn: Connection, task_id: uuid.UUID, scheduled_for: datetime) -> bool:
    """Remove the skip; whether there was one. ``has_skips`` follows."""
    removed = conn.execute(
        sa.delete(occurrence_skips).where(S.task_id == task_id, S.scheduled_for == scheduled_for)
    ).rowcount
    _refresh_has_skips(conn, task_id)
    return bool(removed)


def _refresh_has_skips(conn: Connection, task_id: uuid.UUID) -> None:
    remaining = sa.exists().where(S.task_id == task_id)
    conn.execute(sa.update(scheduled_tasks).where(T.id == task_id).values(has_skips=remaining))


def count_skips(conn: Connection, task_id: uuid.UUID) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(occurrence_skips).where(S.task_id == task_id)
        ).scalar_one()
    )


def skips_of(conn: Connection, task_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, set[datetime]]:
    if not task_ids:
        return {}
    found: dict[uuid.UUID, set[datetime]] = {}
    for row in conn.execute(
        sa.select(S.task_id, S.scheduled_for).where(one_of(conn, S.task_id, list(task_ids)))
    ):
        found.setdefault(row.task_id, set()).add(row.scheduled_for)
    return found


def prune_skips(conn: Connection, before: datetime, task_id: uuid.UUID | None = None) -> int:
    """Delete skips of occurrences before ``before`` (they can no longer fall due), of
    one task or of all; ``has_skips`` follows for the tasks that had them. Returns how
    many."""
    old = S.scheduled_for < before
    if task_id is not None:
        old = sa.and_(old, S.task_id == task_id)
    tasks = [row.task_id for row in conn.execute(sa.select(S.task_id).where(old).distinct())]
    if not tasks:
        return 0
    count = conn.execute(sa.delete(occurrence_skips).where(old)).rowcount
    for task_id in tasks:
        _refresh_has_skips(conn, task_id)
    return int(count)


# --- what a plan needs ----------------------------------------------------------------


def calendar_of(row: RowMapping | Mapping[str, Any]) -> Calendar:
    return Calendar(
        row["name"], row["timezone"], frozenset(date.fromisoformat(d) for d in row["dates"])
    )


def exclusions_of(
    conn: Connection, tasks: Iterable[RowMapping | Mapping[str, Any]]
) -> dict[str, Exclusions]:
    """By task id (as text), the exclusions of the tasks that have any: rows holding
    ``id``, ``tenant``, ``exclude_calendars`` and ``has_skips``. Two statements at most,
    none for tasks without exclusions (the claim's common case)."""
    wanted = [t for t in tasks if t["exclude_calendars"] or t["has_skips"]]
    if not wanted:
        return {}
    skipped = skips_of(conn, [as_uuid(t["id"]) for t in wanted if t["has_skips"]])
    named = {(t["tenant"], n) for t in wanted for n in (t["exclude_calendars"] or ())}
    by_name: dict[tuple[str, str], Calendar] = {}
    if named:
        tenants = sorted({tenant for tenant, _ in named})
        names = sorted({name for _, name in named})
        for row in conn.execute(
            sa.select(calendars).where(C.tenant.in_(tenants), C.name.in_(names))
        ).mappings():
            by_name[(row["tenant"], row["name"])] = calendar_of(row)
    found: dict[str, Exclusions] = {}
    for t in wanted:
        found[str(t["id"])] = Exclusions(
            skips=frozenset(skipped.get(as_uuid(t["id"]), ())) if t["has_skips"] else frozenset(),
            calendars=tuple(
                by_name[(t["tenant"], n)]
                for n in (t["exclude_calendars"] or ())
                if (t["tenant"], n) in by_name
            ),
        )
    return found
