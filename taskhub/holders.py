"""Who holds a send, so that a send is repeated only when its outcome is really lost.

A claim writes a dispatch lease (``discovery.lease_until``); without more, the lease is
the only way to tell a lost send from a slow one, and it ran out under load while a
message still waited in a live worker's queue or its outcome waited for the chord
callback: the send was repeated though nothing was lost. Three things narrow it:

1. **A message takes its sends when it starts** (:func:`start`): each execution still
   ``running``, waiting for exactly that attempt and not yet taken, is marked with the
   process that took it (its heartbeat identity, ``held_by``) and the message's id
   (``message_id``), and its lease is counted again from now. Of two messages carrying
   one send (the lease ran out before the first started, or the broker delivered it
   twice) only the first to start fires it.
2. **An outcome in the result backend is recorded, not sent again**
   (:func:`recover_outcomes`): a chord header's result is stored under its message's
   id; before a tick sends again what a message held, it looks there, and records what
   it finds, as the chord callback would have.
3. **A dead holder is noticed from its heartbeats** (:func:`dead_holders`): once a
   process has not written its heartbeat for ``worker_dead_after_s``, what it held is
   sent again without waiting for the lease, which stays long enough for slow targets.
   Only a process that has itself written its heartbeat for that long judges others, so
   a database outage, which silences everyone, kills no one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from taskhub import heartbeat, queries, state
from taskhub.settings import Settings
from taskhub.trigger import TriggerOutcome, TriggerRequest

log = logging.getLogger(__name__)

#: Message ids → the outcomes (``TriggerOutcome.to_message``) their stored result holds,
#: for the messages whose result the backend has.
Lookup = Callable[[Sequence[str]], Mapping[str, Sequence[Mapping[str, Any]]]]


def start(
    engine: Engine,
    requests: Sequence[TriggerRequest],
    leases: Sequence[datetime],
    message_id: str,
    now: datetime,
) -> list[TriggerRequest]:
    """Take the sends of a message that starts in this process; returns the requests to
    fire (the others were taken by another message, or have ended). ``leases`` holds
    each request's new lease, counted from its start."""
    if not requests:
        return []
    holds = [
        {"b_id": r.execution_id, "b_attempt": r.attempt, "b_lease_until": lease}
        for r, lease in zip(requests, leases, strict=True)
    ]
    with engine.begin() as conn:
        heartbeat.ensure_written(conn, now)
        taken = queries.hold_executions(conn, holds, heartbeat.this_process(), message_id)
    return [r for r in requests if r.execution_id in taken]


def dead_holders(conn: Connection, now: datetime, settings: Settings) -> list[str]:
    """Processes silent for ``worker_dead_after_s`` (but not so long ago that their
    heartbeat row may be gone), judged only by a process whose own heartbeats went
    through all that time; none otherwise."""
    dead_after_s = settings.worker_dead_after_s
    if dead_after_s <= 0 or heartbeat.writing_for_s() < dead_after_s:
        return []
    seen_before = now - timedelta(seconds=dead_after_s)
    return queries.stale_processes(
        conn, seen_before, seen_since=seen_before - timedelta(seconds=heartbeat.STALE_AFTER_S)
    )


def recover_outcomes(
    engine: Engine,
    settings: Settings,
    now: datetime,
    lookup: Lookup,
    rand: Callable[[], float],
) -> int:
    """Record the outcomes that reached the result backend of sends about to be sent
    again (lease run out, or holder dead); returns how many were recorded. A backend
    that cannot answer changes nothing: the sends go out again, as before."""
    with engine.connect() as conn:
        dead = dead_holders(conn, now, settings)
        rows = queries.held_sends_to_look_up(conn, now, dead, settings.claim_batch_size)
    if not rows:
        return 0
    wanted = {(row["id"], row["attempts"] + 1) for row in rows}
    try:
        stored = lookup(sorted({row["message_id"] for row in rows}))
    except Exception:
        log.warning("could not read outcomes from the result backend", exc_info=True)
        return 0
    outcomes = [
        outcome
        for messages in stored.values()
        for outcome in map(TriggerOutcome.from_message, messages)
        if (outcome.execution_id, outcome.attempt) in wanted
    ]
    if not outcomes:
        return 0
    report = state.record_outcomes(engine, outcomes, settings, now, rand)
    recorded = report.applied + report.throttled
    if recorded:
        log.info(
            "recorded %d outcomes found in the result backend (their write-back was late"
            " or lost): not sent again",
            recorded,
        )
    return recorded
