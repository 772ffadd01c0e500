"""What history retention removes, as pure rules: the sweeps of one prune pass.

An ended execution (``succeeded`` or ``failed``) is kept for its task's
``retention_days``, or the installation's execution retention if the task sets none; a
dead letter for the dead-letter retention, whatever its task sets. A retention of 0
days keeps that kind for ever. The installation's retentions may be fractions of a day; a
task's ``retention_days`` is whole days. Executions that have not ended (``queued``: waiting for a
retry; ``running``) are never removed.

After a pass that removed rows, the tables it removed them from may be vacuumed
(PostgreSQL only): deleted rows leave their space unusable until a VACUUM, which the
server's autovacuum does unless it is switched off (:func:`tables_to_vacuum`).

Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Kind = Literal["execution", "dead_letter"]

#: When a pass vacuums the tables it removed rows from (TASKHUB_PRUNE_VACUUM): ``auto``
#: only those the server's autovacuum will not visit, ``always`` all of them, ``never``
#: none.
VacuumMode = Literal["auto", "always", "never"]
VACUUM_MODES: tuple[VacuumMode, ...] = ("auto", "always", "never")


@dataclass(frozen=True)
class Sweep:
    """One part of a pass: the executions of ``kind`` that ended before ``cutoff``.

    ``task_days``: for ``execution``, None sweeps the tasks without ``retention_days``,
    a number the tasks with exactly that many; for ``dead_letter`` it is None and every
    task's dead letters are swept."""

    kind: Kind
    cutoff: datetime
    task_days: int | None = None


def cutoff(now: datetime, days: float) -> datetime:
    """The instant before which an execution kept for ``days`` days has expired."""
    return now - timedelta(days=days)


def sweeps(
    now: datetime, execution_days: float, dead_letter_days: float, override_days: Iterable[int]
) -> list[Sweep]:
    """The sweeps of a pass at ``now``: the default retention (if not 0), each distinct
    task override, then the dead letters (if not 0)."""
    planned: list[Sweep] = []
    if execution_days > 0:
        planned.append(Sweep("execution", cutoff(now, execution_days)))
    for days in sorted(set(override_days)):
        planned.append(Sweep("execution", cutoff(now, days), days))
    if dead_letter_days > 0:
        planned.append(Sweep("dead_letter", cutoff(now, dead_letter_days)))
    return planned


@dataclass(frozen=True)
class Autovacuum:
    """Whether the server vacuums tables by itself: its ``autovacuum`` and
    ``track_counts`` settings (autovacuum needs both), and each table's
    ``autovacuum_enabled`` storage parameter (None: not set)."""

    server: bool
    track_counts: bool = True
    table_enabled: Mapping[str, bool | None] = field(default_factory=dict)

    def covers(self, table: str) -> bool:
        """True if autovacuum will visit ``table`` once enough of it is dead."""
        return self.server and self.track_counts and self.table_enabled.get(table) is not False


def tables_to_vacuum(
    mode: VacuumMode, removed: Mapping[str, int], autovacuum: Autovacuum | None
) -> tuple[str, ...]:
    """The tables to vacuum after a pass that removed ``removed[table]`` rows from each
    table, in that order: none that lost no row; under ``auto`` only those
    ``autovacuum`` does not cover (None: not known, so none)."""
    touched = tuple(table for table, count in removed.items() if count > 0)
    if mode == "never":
        return ()
    if mode == "always":
        return touched
    if autovacuum is None:
        return ()
    return tuple(table for table in touched if not autovacuum.covers(table))


#: Autovacuum's own default rule, which a pass applies to the tables every claim rewrites
#: when autovacuum will not: vacuum once the dead rows exceed this many plus this share
#: of the live ones.
CHURN_VACUUM_MIN_DEAD_ROWS = 50
CHURN_VACUUM_DEAD_SHARE = 0.2


def churned_to_vacuum(
    mode: VacuumMode, rows: Mapping[str, tuple[int, int]], autovacuum: Autovacuum | None
) -> tuple[str, ...]:
    """Of the tables every claim rewrites (``rows``: each one's dead and live rows, as the
    server counts them), those to vacuum after a pass: the ones past autovacuum's own
    threshold, under ``auto`` only those ``autovacuum`` does not cover; none under
    ``never``. They lose no rows to retention, but each update leaves a dead version of
    a row behind, so they grow just the same where nothing vacuums them."""
    if mode == "never":
        return ()
    due = tuple(
        table
        for table, (dead, live) in rows.items()
        if dead > CHURN_VACUUM_MIN_DEAD_ROWS + CHURN_VACUUM_DEAD_SHARE * live
    )
    if mode == "always":
        return due
    if autovacuum is None:
        return ()
    return tuple(table for table in due if not autovacuum.covers(table))
