"""Per-tenant quotas (README, "Quotas"): how many tasks a tenant holds, how often its
schedules may fire, and how fast it may call the API.

The task count and the schedule limit are checked by the service functions that create
and change tasks, so the API and the CLI obey them alike; the two rates are counted by
the API only (the CLI is the operator's). A limit is the setting's (``TenantQuotas``)
unless the tenant has its own in ``tenant_quotas`` (``taskhub tenant limits set``).

Counted with the same care as the rest. The tasks a tenant holds are a counter on its
row of ``tenant_quotas``, kept in step by every insert and delete of a task; a create
takes its place last, just before it commits, with one conditional upsert that locks
the row until then (:func:`take_place`), so two processes never both take the last
place. A batch locks the row first and admits its creates in order (:class:`Admission`).
Rates are fixed-window counters in ``tenant_rate_windows``, shared by every API
process: one upsert per call, in the transaction that authenticates it. A refusal raises,
so its transaction rolls back and changes nothing (not even the counter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.errors import QuotaExceeded, RateLimited, ValidationError
from taskhub.core.schedules import Cron, Interval, Schedule, shortest_gap
from taskhub.core.settings import (
    QUOTA_BOUNDS,
    Settings,
    TenantQuotas,
)
from taskhub.db import quota_queries
from taskhub.db.models import tenant_quotas
from taskhub.service.apikeys import validate_tenant

#: The limits, in the order they are shown; each is a column of ``tenant_quotas``, a
#: field of ``TenantQuotas``, a ``TASKHUB_TENANT_*`` setting and a CLI option.
LIMIT_NAMES = tuple(field.name for field in fields(TenantQuotas))
#: How far ahead a cron's gaps are judged across its zone's offset changes: a year.
GAP_HORIZON = timedelta(days=367)

Q = tenant_quotas.c


#: One call counted, in one statement both databases run (SQLite 3.35+): a new window
#: starts at 1. A call stamped before the stored window (a process whose clock lags)
#: counts toward the stored one, never resets it. Plain SQL: SQLAlchemy compiles an
#: upsert anew on every call, which cost more than the statement itself.
_COUNT_CALL = sa.text(
    "INSERT INTO tenant_rate_windows (tenant, kind, window_start, hits) "
    "VALUES (:tenant, :kind, :start, 1) "
    "ON CONFLICT (tenant, kind) DO UPDATE SET "
    "hits = CASE WHEN tenant_rate_windows.window_start >= excluded.window_start "
    "THEN tenant_rate_windows.hits + 1 ELSE 1 END, "
    "window_start = CASE WHEN tenant_rate_windows.window_start >= excluded.window_start "
    "THEN tenant_rate_windows.window_start ELSE excluded.window_start END "
    "RETURNING hits, window_start"
)


@dataclass(frozen=True)
class Rate:
    """A rate limit: at most the tenant's ``limit`` calls of ``kind`` per window."""

    kind: str
    limit: str
    window_s: int
    what: str


REQUESTS = Rate("requests", "requests_per_second", 1, "API requests in one second")
RUNS = Rate("runs", "runs_per_minute", 60, "run-now, backfill and redrive calls in one minute")


@dataclass(frozen=True)
class Limits:
    """One tenant's limits in force, and which of them are its own (not the default)."""

    tenant: str
    max_tasks: int
    min_interval_seconds: int
    runs_per_minute: int
    requests_per_second: int
    own: frozenset[str] = frozenset()

    def value(self, name: str) -> int:
        value: int = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "limits": {
                name: {
                    "value": self.value(name),
                    "source": "tenant" if name in self.own else "default",
                }
                for name in LIMIT_NAMES
            },
        }


# --- pure parts -----------------------------------------------------------------------


def rate_window(now: datetime, window_s: int) -> tuple[int, int]:
    """The fixed window ``now`` falls in: its start (unix seconds, a multiple of
    ``window_s``) and the whole seconds until it ends, at least 1 (``Retry-After``)."""
    instant = now.timestamp()
    start = math.floor(instant / window_s) * window_s
    return start, max(1, math.ceil(start + window_s - instant))


def check_schedule_limit(schedule: Schedule, min_interval_s: int, now: datetime) -> None:
    """Refuse a schedule that fires more often than ``min_interval_s`` allows, naming
    ``schedule.interval_seconds`` or ``schedule.cron`` and the limit. A cron is judged by
    its shortest gap between two fires (daylight-saving changes of the next year
    included); the window starts at the day's start, so its zone is probed once a day."""
    if isinstance(schedule, Interval):
        if schedule.interval_seconds < min_interval_s:
            raise ValidationError(
                "schedule.interval_seconds",
                f"must be at least {min_interval_s}: the tenant's min_interval_seconds limit",
            )
        return
    if not isinstance(schedule, Cron):
        return
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    gap = shortest_gap(schedule, day, day + GAP_HORIZON, below=timedelta(seconds=min_interval_s))
    if gap is not None:
        raise ValidationError(
            "schedule.cron",
            f"fires as often as every {_duration(gap)}: more often than the tenant's "
            f"min_interval_seconds limit of {min_interval_s} allows",
        )


def _duration(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def parse_limit(name: str, value: Any) -> int | None:
    """A limit's new value as an operator gives it: an integer within its bounds, or
    None (``default``: back to the setting's)."""
    if name not in QUOTA_BOUNDS:
        raise ValidationError(name, f"unknown limit; the limits are {', '.join(LIMIT_NAMES)}")
    if value is None or value == "default":
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    low, high = QUOTA_BOUNDS[name]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        off = " (0: no limit)" if low == 0 else ""
        raise ValidationError(
            name, f"must be a whole number from {low} to {high}{off}, or 'default'"
        )
    return value


# --- limits in force ------------------------------------------------------------------


def _limits(tenant: str, row: RowMapping | None, defaults: TenantQuotas) -> Limits:
    own = {n: row[n] for n in LIMIT_NAMES if row is not None and row[n] is not None}
    values = {n: own.get(n, getattr(defaults, n)) for n in LIMIT_NAMES}
    return Limits(tenant=tenant, own=frozenset(own), **values)


# Built once: the API reads a tenant's limits on every request.
_READ_LIMITS = sa.select(tenant_quotas).where(Q.tenant == sa.bindparam("tenant"))


def limits_of(conn: Connection, tenant: str, settings: Settings) -> Limits:
    row = conn.execute(_READ_LIMITS, {"tenant": tenant}).mappings().first()
    return _limits(tenant, row, settings.tenant_quotas)


def _insert(conn: Connection) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        tenant_quotas
    )


def _lock(conn: Connection, tenant: str, settings: Settings) -> Limits:
    """The tenant's limits, its row locked until the caller's transaction ends (made
    first if it has none): creates of one tenant take turns from here on."""
    query = sa.select(tenant_quotas).where(Q.tenant == tenant).with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        conn.execute(_insert(conn).values(tenant=tenant).on_conflict_do_nothing())
        row = conn.execute(query).mappings().one()
    return _limits(tenant, row, settings.tenant_quotas)


def tasks_held(conn: Connection, tenant: str) -> int:
    """The tenant's tasks, every status (its counter, kept by every insert and delete)."""
    return quota_queries.tasks_held(conn, tenant)


def _full(held: int, limits: Limits) -> QuotaExceeded:
    return QuotaExceeded(
        f"the tenant holds {held} tasks, and its max_tasks limit is {limits.max_tasks}: "
        "delete tasks it no longer needs, or ask an operator to raise the limit"
    )


# --- what the service functions and the API call -------------------------------------


def take_place(conn: Connection, tenant: str, settings: Settings) -> None:
    """A create's last step before it commits: count its task among the tenant's, or
    refuse it (409) if the tenant holds its ``max_tasks`` already. The tenant's row is
    locked from here to the commit only, so creates of one tenant wait on each other
    for that long, and two processes never both take the last place."""
    if not quota_queries.take_place(conn, tenant, settings.tenant_quotas.max_tasks):
        raise _full(tasks_held(conn, tenant), limits_of(conn, tenant, settings))


def refuse_if_full(conn: Connection, tenant: str, settings: Settings) -> None:
    """Refuse (409) a create of a tenant that holds its ``max_tasks`` already, whatever
    else is wrong with it: what a create whose name is taken checks first."""
    limits = limits_of(conn, tenant, settings)
    held = tasks_held(conn, tenant)
    if held >= limits.max_tasks:
        raise _full(held, limits)


def check_schedule(
    conn: Connection, tenant: str, schedule: Schedule, now: datetime, settings: Settings
) -> None:
    """Before a schedule is changed: refuse one denser than the tenant's limit (422)."""
    check_schedule_limit(schedule, limits_of(conn, tenant, settings).min_interval_seconds, now)


def count_call(
    conn: Connection,
    tenant: str,
    rate: Rate,
    now: datetime,
    settings: Settings,
    limit: int | None = None,
) -> None:
    """Count one call of the tenant against ``rate``; over the limit, raise
    :class:`RateLimited` (the caller rolls back, so a refused call is not counted).
    ``limit``: the tenant's limit of ``rate`` as the caller knows it (else it is read)."""
    if limit is None:
        limit = limits_of(conn, tenant, settings).value(rate.limit)
    if limit == 0:
        return
    start, retry_after_s = rate_window(now, rate.window_s)
    if conn.dialect.name == "postgresql":
        # A counter lost in a crash costs nothing; waiting for the WAL flush would cost
        # every request a disk sync (this transaction was read-only before).
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
    row = conn.execute(_COUNT_CALL, {"tenant": tenant, "kind": rate.kind, "start": start}).one()
    hits, stored_start = row
    if hits > limit:
        if stored_start != start:  # counted toward a later window (this clock lags)
            retry_after_s = max(1, math.ceil(stored_start + rate.window_s - now.timestamp()))
        raise RateLimited(
            f"more than {limit} {rate.what}: the tenant's {rate.limit} limit is {limit}; "
            f"retry after {retry_after_s} s",
            retry_after_s,
        )


def set_limits(
    conn: Connection,
    tenant: str,
    changes: Mapping[str, Any],
    now: datetime,
    settings: Settings,
) -> Limits:
    """Give the tenant its own value of each named limit (None or ``default``: the
    setting's again); the others are kept. Existing tasks are never touched: a lowered
    ``max_tasks`` or a raised ``min_interval_seconds`` refuses only later creates and
    schedule changes."""
    validate_tenant(tenant)
    values = {name: parse_limit(name, value) for name, value in changes.items()}
    if not values:
        raise ValidationError("limits", f"name at least one of {', '.join(LIMIT_NAMES)}")
    statement = _insert(conn).values(tenant=tenant, updated_at=now, **values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant"], set_={"updated_at": now, **values}
        )
    )
    return limits_of(conn, tenant, settings)


def show(conn: Connection, tenant: str, settings: Settings) -> dict[str, Any]:
    """The tenant's limits in force, where each comes from, and its tasks held."""
    validate_tenant(tenant)
    return {**limits_of(conn, tenant, settings).to_dict(), "tasks_held": tasks_held(conn, tenant)}


class Admission:
    """The creates of one batch, admitted one by one as one create is (its schedule
    against the tenant's limit, then its place among ``max_tasks``): the tenant's row
    locked once, first (:meth:`of`), so nothing else takes a place meanwhile, then each
    create checked in the batch's order. Their places are counted as they are inserted
    (``task_queries.insert_tasks``)."""

    def __init__(self, limits: Limits, held: int, now: datetime) -> None:
        self.limits = limits
        self.held = held
        self.now = now

    @classmethod
    def of(cls, conn: Connection, tenant: str, now: datetime, settings: Settings) -> Admission:
        limits = _lock(conn, tenant, settings)
        return cls(limits, tasks_held(conn, tenant), now)

    def release(self, count: int) -> None:
        """``count`` of the tenant's tasks were deleted: their places are free."""
        self.held -= count

    def admit(self, schedule: Schedule) -> None:
        check_schedule_limit(schedule, self.limits.min_interval_seconds, self.now)
        if self.held >= self.limits.max_tasks:
            raise QuotaExceeded(
                f"the tenant would hold more than {self.limits.max_tasks} tasks, its max_tasks "
                "limit: delete tasks it no longer needs, or ask an operator to raise the limit"
            )
        self.held += 1
