"""Recording notification events in the transactions that cause them (the outbox).

The write-back records ``dead_letter``, ``auto_paused``, ``recovered`` and lag-``late``
events as it writes the outcomes that raise them; a claim records ``late`` for a task
whose occurrences were missed (its misfire policy applied). Each call works out the
events in memory and writes nothing, and asks nothing of the database, when there are
none; with some, one query finds the tenants' channels and one insert adds a row per
channel told about the event (none when the tenant has no channel). The notifier
(``notifier``) sends them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.messages import TriggerOutcome
from taskhub.core.notifications import EventKind, RaisedEvent, ended_events, is_late, lag_s
from taskhub.db import notification_queries


class _Ended(Protocol):
    @property
    def scheduled_for(self) -> datetime: ...
    @property
    def status(self) -> Any: ...
    @property
    def error(self) -> str | None: ...


def record_ended(
    conn: Connection,
    tasks: Mapping[uuid.UUID, RowMapping],
    ended: Mapping[uuid.UUID, Sequence[_Ended]],
    paused: Iterable[uuid.UUID],
    now: datetime,
) -> int:
    """Dead letters, recoveries and auto-pauses of one write-back (``tasks`` as locked,
    before this write-back's updates)."""
    raised: list[tuple[str, RaisedEvent]] = []
    for task_id, results in ended.items():
        task = tasks[task_id]
        events = ended_events(
            str(task_id),
            task["consecutive_failures"],
            ((r.scheduled_for, str(r.status.value), r.error) for r in results),
        )
        raised.extend((task["tenant"], event) for event in events)
    for task_id in paused:
        task = tasks[task_id]
        limit = task["auto_pause_after_failures"]
        detail = f"auto-paused after {limit} failed executions in a row"
        raised.append(
            (task["tenant"], RaisedEvent(EventKind.AUTO_PAUSED, str(task_id), None, detail))
        )
    return notification_queries.record_events(conn, raised, now)


def record_late(
    conn: Connection,
    tasks: Mapping[uuid.UUID, RowMapping],
    sent: Iterable[tuple[TriggerOutcome, RowMapping]],
    now: datetime,
) -> int:
    """A ``late`` event for each first attempt (``sent``: its outcome and execution row)
    started more than its task's ``max_lag_seconds`` after its due time."""
    raised: list[tuple[str, RaisedEvent]] = []
    for outcome, row in sent:
        if outcome.attempt != 1:
            continue
        task = tasks.get(row["task_id"])
        if task is None or task["max_lag_seconds"] is None:
            continue
        due = row["scheduled_for"]
        if is_late(due, outcome.started_at, task["max_lag_seconds"]):
            detail = (
                f"sent {lag_s(due, outcome.started_at):.1f} s after its due time "
                f"(max_lag_seconds: {task['max_lag_seconds']})"
            )
            raised.append(
                (task["tenant"], RaisedEvent(EventKind.LATE, str(row["task_id"]), due, detail))
            )
    return notification_queries.record_events(conn, raised, now)


def record_missed(
    conn: Connection, claimed: Iterable[RowMapping], now: datetime, misfire_grace_s: float
) -> int:
    """A ``late`` event for each claimed task (``tenant``, ``id`` as text,
    ``next_execution_time``, ``misfire_policy``) whose first due occurrence is older
    than the misfire grace: occurrences were missed and its misfire policy applied."""
    horizon = now - timedelta(seconds=misfire_grace_s)
    raised: list[tuple[str, RaisedEvent]] = []
    for row in claimed:
        due = row["next_execution_time"]
        if due is not None and due < horizon:
            detail = (
                f"occurrences missed since {due.isoformat()} "
                f"(misfire_policy: {row['misfire_policy']})"
            )
            raised.append((row["tenant"], RaisedEvent(EventKind.LATE, str(row["id"]), due, detail)))
    return notification_queries.record_events(conn, raised, now)
