"""The prune pass: history retention's removal of expired executions, attempts and dead
letters, a short transaction per batch (docs/operations/retention.md).

Beat sends one pass every TASKHUB_PRUNE_INTERVAL_SECONDS to the state queue; ``taskhub
db prune`` runs one by hand. A pass takes the ``prune`` lease first and renews it in
every batch's transaction, so two passes never run at once (a second one returns at
once, skipped); a holder that dies leaves the lease to run out. Each batch locks up to
TASKHUB_PRUNE_BATCH_SIZE expired executions oldest first (``SKIP LOCKED``: rows a
write-back or redrive holds are left for later), deletes their attempts and them, and
counts what it removed in ``taskhub_history_removed_total``, all in one transaction;
then the pass pauses TASKHUB_PRUNE_PAUSE_SECONDS so claims and write-backs always get
their turn. Counters and histograms live in ``metric_counters``, not in these rows: no
removal changes them.

On PostgreSQL, a pass then vacuums the tables it removed rows from, and the tables every
claim rewrites once their dead rows pass autovacuum's own threshold, still under its
lease, as TASKHUB_PRUNE_VACUUM says (``auto``: only those autovacuum will not visit), so
the space dead rows held is reused by new ones. A dry run and a skipped pass vacuum
nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from taskhub.core.retention import Sweep, churned_to_vacuum, sweeps, tables_to_vacuum
from taskhub.core.settings import RetentionSettings
from taskhub.db import metric_queries, retention_queries
from taskhub.db.models import attempts, callback_deliveries, executions, notifications
from taskhub.observability import counters

log = logging.getLogger(__name__)

LEASE_NAME = "prune"
#: How long a pass holds its lease past its last batch: far longer than one batch takes.
LEASE_S = 300.0
#: How long a VACUUM waits for its table's lock (held by another VACUUM, an index build,
#: a schema change) before the pass leaves that table for the next one.
VACUUM_LOCK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PruneReport:
    """What one pass removed (with ``dry_run``: what it would remove)."""

    executions: int = 0
    dead_letters: int = 0
    attempts: int = 0
    batches: int = 0
    dry_run: bool = False
    #: False if the pass stopped at its time budget with more to remove.
    complete: bool = True
    #: True if another pass held the lease: this one did nothing.
    skipped: bool = False
    #: The tables vacuumed after the removal (PostgreSQL; TASKHUB_PRUNE_VACUUM).
    vacuumed: tuple[str, ...] = ()
    #: How long those vacuums took, in seconds.
    vacuum_s: float = 0.0


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_pass(
    engine: Engine,
    retention: RetentionSettings,
    now: Callable[[], datetime],
    *,
    dry_run: bool = False,
    time_budget_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> PruneReport:
    """One pass: every sweep of :func:`taskhub.core.retention.sweeps`, until nothing
    expired is left or ``time_budget_s`` has passed (None: no budget)."""
    started = monotonic()
    with engine.connect() as conn:
        planned = sweeps(
            now(),
            retention.execution_days,
            retention.dead_letter_days,
            retention_queries.override_days(conn),
        )
    if dry_run:
        return _count(engine, planned)
    holder = holder_name()
    removed = {"execution": 0, "dead_letter": 0}
    removed_attempts = batches = 0
    #: Rows removed per table, for the vacuum.
    rows = dict.fromkeys(retention_queries.PRUNED_TABLES, 0)
    vacuumed: tuple[str, ...] = ()
    vacuum_s = 0.0
    complete = True
    held = False
    try:
        for sweep in planned:
            while True:
                if time_budget_s is not None and monotonic() - started >= time_budget_s:
                    complete = False
                    break
                with engine.begin() as conn:
                    held = _renew(conn, holder, now())
                    if not held:
                        if batches == 0:
                            return PruneReport(skipped=True, complete=False)
                        log.warning("prune pass lost its lease; stopping")
                        complete = False
                        break
                    count, attempt_count, delivery_count = _batch(conn, sweep, retention.batch_size)
                batches += 1
                removed[sweep.kind] += count
                removed_attempts += attempt_count
                rows[executions.name] += count
                rows[attempts.name] += attempt_count
                rows[callback_deliveries.name] += delivery_count
                if count < retention.batch_size:
                    break
                if retention.pause_s:
                    sleep(retention.pause_s)
            if not complete:
                break
        if complete and held and retention.execution_days:
            # The messages sent to notification channels: a few a minute per channel.
            with engine.begin() as conn:
                rows[notifications.name] += retention_queries.delete_notifications_before(
                    conn, now() - timedelta(days=retention.execution_days)
                )
        if held and _may_vacuum(engine, retention):
            with engine.begin() as conn:
                held = _renew(conn, holder, now())  # the vacuum runs under the lease too
            if held:
                vacuumed, vacuum_s = _vacuum(engine, retention, rows, monotonic)
    finally:
        if held:
            with engine.begin() as conn:
                retention_queries.release_lease(conn, LEASE_NAME, holder, now())
    report = PruneReport(
        removed["execution"],
        removed["dead_letter"],
        removed_attempts,
        batches,
        False,
        complete,
        vacuumed=vacuumed,
        vacuum_s=vacuum_s,
    )
    if report.executions or report.dead_letters or report.vacuumed:
        log.info("prune pass removed %s", report)
    return report


def _renew(conn: Connection, holder: str, now: datetime) -> bool:
    return retention_queries.take_lease(
        conn, LEASE_NAME, holder, now, now + timedelta(seconds=LEASE_S)
    )


def _may_vacuum(engine: Engine, retention: RetentionSettings) -> bool:
    """On PostgreSQL, unless TASKHUB_PRUNE_VACUUM is ``never`` (SQLite reuses the pages
    deleted rows free for new rows by itself)."""
    return retention.vacuum != "never" and engine.dialect.name == "postgresql"


def _vacuum(
    engine: Engine,
    retention: RetentionSettings,
    rows: dict[str, int],
    monotonic: Callable[[], float],
) -> tuple[tuple[str, ...], float]:
    """Vacuum the tables that lost rows, and those every claim rewrites once enough of
    them is dead, as ``retention.vacuum`` says: those vacuumed, and the seconds their
    vacuums took."""
    churned = retention_queries.CHURNED_TABLES
    with engine.connect() as plain:
        # VACUUM cannot run inside a transaction block.
        conn = plain.execution_options(isolation_level="AUTOCOMMIT")
        autovacuum = None
        if retention.vacuum == "auto":
            touched = [t for t, n in rows.items() if n]
            autovacuum = retention_queries.autovacuum(conn, [*touched, *churned])
        dead_and_live = retention_queries.dead_and_live_rows(conn, churned)
        tables = tables_to_vacuum(retention.vacuum, rows, autovacuum) + churned_to_vacuum(
            retention.vacuum, dead_and_live, autovacuum
        )
        started = monotonic()
        done = tuple(
            table
            for table in tables
            if retention_queries.vacuum(conn, table, VACUUM_LOCK_TIMEOUT_S)
        )
        seconds = round(monotonic() - started, 3) if tables else 0.0
    if len(done) < len(tables):
        log.warning("prune pass left %s unvacuumed: locked", sorted(set(tables) - set(done)))
    return done, seconds


def _statuses(sweep: Sweep) -> tuple[str, ...]:
    return retention_queries.DEAD if sweep.kind == "dead_letter" else retention_queries.ENDED


def _batch(conn: Connection, sweep: Sweep, limit: int) -> tuple[int, int, int]:
    ids = retention_queries.lock_expired(
        conn,
        _statuses(sweep),
        sweep.cutoff,
        limit,
        retention_days=sweep.task_days,
        per_task=sweep.kind == "execution",
    )
    removed, removed_attempts, removed_deliveries = retention_queries.delete_executions(conn, ids)
    dead = sweep.kind == "dead_letter"
    metric_queries.add_to_counters(
        conn,
        counters.for_history_removed(
            0 if dead else removed, removed if dead else 0, removed_attempts
        ),
    )
    return removed, removed_attempts, removed_deliveries


def _count(engine: Engine, planned: list[Sweep]) -> PruneReport:
    found = {"execution": 0, "dead_letter": 0}
    found_attempts = 0
    with engine.connect() as conn:
        for sweep in planned:
            count, attempt_count = retention_queries.count_expired(
                conn,
                _statuses(sweep),
                sweep.cutoff,
                retention_days=sweep.task_days,
                per_task=sweep.kind == "execution",
            )
            found[sweep.kind] += count
            found_attempts += attempt_count
    return PruneReport(found["execution"], found["dead_letter"], found_attempts, 0, True)
