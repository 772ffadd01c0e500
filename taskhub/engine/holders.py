"""Who holds a fire, so that a fire is repeated only when its outcome is really lost.

A claim writes a publish lease (``discovery.lease_until``); without more, the lease is
the only way to tell a lost send from a slow one, and it ran out under load while a
message still waited in a live worker's queue or its outcome waited for the chord
callback: the fire was repeated though nothing was lost. Three things narrow it:

1. **A message takes its fires when it starts** (:func:`start`): each execution still
   ``running``, waiting for exactly that attempt and not yet taken, is marked with the
   process that took it (its heartbeat identity, ``held_by``) and the message's id
   (``message_id``), and its lease is counted again from now. Of two messages carrying
   one fire (the lease ran out before the first started, or the broker delivered it
   twice) only the first to start fires it. The clearance at the fire time checks the
   hold again (``withdrawal_queries.held_by_carrier``): a lease that ran out under a
   live message (renewed too late by a starved process) publishes the fire again and
   clears the hold, and only one of the two messages then fires it.
2. **An outcome in the result backend is recorded, not published again**
   (:func:`recover_outcomes`): a chord header's result is stored under its message's
   id; before a tick publishes again what a message held, it looks there, and records what
   it finds, as the chord callback would have. The claim that follows publishes again
   only what was looked for (``discovery.LookedUp``): a lease that ran out during the
   lookup waits for the next pass.
3. **A live holder renews its leases** (:func:`renewing`): a message still running a
   third of a lease after it started (slow targets, a busy process) has the leases of
   its fires counted again from now, every third of a lease, so the lease never runs
   out under a message that is still at work (up to ``MAX_HELD_S``).
4. **A dead holder is noticed from its heartbeats** (:func:`dead_holders`): once a
   process has not written its heartbeat for ``worker_dead_after_s``, what it held is
   published again without waiting for the lease, which stays long enough for slow targets.
   Only a process that has itself written its heartbeat for that long judges others, so
   a database outage, which silences everyone, kills no one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import SQLAlchemyError

from taskhub.core.clock import utcnow
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings
from taskhub.db import heartbeat_queries, hold_queries
from taskhub.db.rows import Hold
from taskhub.engine import writeback
from taskhub.observability import heartbeat

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
    """Take the fires of a message that starts in this process; returns the requests to
    fire (the others were taken by another message, or have ended). ``leases`` holds
    each request's new lease, counted from its start."""
    if not requests:
        return []
    holds = [
        Hold(r.execution_id, r.attempt, lease) for r, lease in zip(requests, leases, strict=True)
    ]
    with engine.begin() as conn:
        heartbeat.ensure_written(conn, now)
        taken = hold_queries.hold_executions(conn, holds, heartbeat.this_process(), message_id)
    return [r for r in requests if r.execution_id in taken]


#: How long a running message's leases are renewed at most: Redis's visibility timeout
#: (kombu's default), after which the broker hands the message out again anyway.
MAX_HELD_S = 3600.0

LeaseOf = Callable[[datetime, float], datetime]


@dataclass
class _Held:
    execution_ids: list[int]
    longest_timeout_s: float
    started: float  # monotonic


_held: dict[str, _Held] = {}
_held_lock = threading.Lock()
_renewer_pid: int | None = None


@contextmanager
def renewing(
    engine: Engine,
    message_id: str,
    requests: Sequence[TriggerRequest],
    lease_s: float,
    lease_of: LeaseOf,
) -> Iterator[None]:
    """While the block runs (the message fires ``requests``), this process renews their
    leases every ``lease_s / 3`` (``lease_of(now, timeout_s)``: the new lease's end).
    A third, not a half: a message is renewed within two thirds of a lease after it
    started, and then every third, whatever the phase of the renewing thread."""
    if not requests:
        yield
        return
    held = _Held(
        [r.execution_id for r in requests],
        max(r.timeout_s for r in requests),
        time.monotonic(),
    )
    with _held_lock:
        _held[message_id] = held
        _start_renewer(engine, lease_s, lease_of)
    try:
        yield
    finally:
        with _held_lock:
            _held.pop(message_id, None)


def _start_renewer(engine: Engine, lease_s: float, lease_of: LeaseOf) -> None:
    """One renewing thread per process (a forked child starts its own); under the lock."""
    global _renewer_pid
    if _renewer_pid == os.getpid():
        return
    _renewer_pid = os.getpid()
    threading.Thread(
        target=_renew_forever,
        args=(engine, lease_s / 3, lease_of),
        name=f"taskhub-lease-renewer-{_renewer_pid}",
        daemon=True,
    ).start()


def _renew_forever(engine: Engine, period_s: float, lease_of: LeaseOf) -> None:
    while True:
        time.sleep(period_s)
        try:
            renew_once(engine, period_s, lease_of, utcnow(), time.monotonic())
        except SQLAlchemyError as error:  # the database is away: the leases may run out
            log.warning("leases of running messages not renewed (%s)", error.__class__.__name__)


def renew_once(
    engine: Engine, period_s: float, lease_of: LeaseOf, now: datetime, monotonic_now: float
) -> int:
    """Renew the leases of this process's messages that have run for ``period_s`` or
    more (and less than ``MAX_HELD_S``); returns how many fires were renewed."""
    with _held_lock:
        due = [
            (message_id, held)
            for message_id, held in _held.items()
            if period_s <= monotonic_now - held.started < MAX_HELD_S
        ]
    renewed = 0
    for message_id, held in due:
        with engine.begin() as conn:
            renewed += hold_queries.renew_holds(
                conn,
                held.execution_ids,
                heartbeat.this_process(),
                message_id,
                lease_of(now, held.longest_timeout_s),
            )
    return renewed


def dead_holders(conn: Connection, now: datetime, settings: Settings) -> list[str]:
    """Processes silent for ``worker_dead_after_s`` (but not so long ago that their
    heartbeat row may be gone), judged only by a process whose own heartbeats went
    through all that time; none otherwise."""
    dead_after_s = settings.worker_dead_after_s
    if dead_after_s <= 0 or heartbeat.writing_for_s() < dead_after_s:
        return []
    seen_before = now - timedelta(seconds=dead_after_s)
    return heartbeat_queries.stale_processes(
        conn, seen_before, seen_since=seen_before - timedelta(seconds=heartbeat.STALE_AFTER_S)
    )


def recover_outcomes(
    engine: Engine,
    settings: Settings,
    now: datetime,
    dead: Sequence[str],
    lookup: Lookup,
    rand: Callable[[], float],
) -> int:
    """Record the outcomes that reached the result backend of fires about to be published
    again (lease run out by ``now``, or holder in ``dead``); returns how many were
    recorded. All such fires are looked for, page by page: the claim that follows
    publishes again only what was looked for (``held_due_by``). A backend that cannot
    answer changes nothing: the executions are published again, as before."""
    recorded = after_id = 0
    while True:
        with engine.connect() as conn:
            rows = hold_queries.held_fires_to_look_up(
                conn, now, dead, settings.claim_batch_size, after_id
            )
        if not rows:
            break
        found = _recorded_from_backend(engine, settings, now, rows, lookup, rand)
        if found is None:
            break
        recorded += found
        if len(rows) < settings.claim_batch_size:
            break
        after_id = rows[-1]["id"]
    if recorded:
        log.info(
            "recorded %d outcomes found in the result backend (their write-back was late"
            " or lost): not published again",
            recorded,
        )
    return recorded


def _recorded_from_backend(
    engine: Engine,
    settings: Settings,
    now: datetime,
    rows: Sequence[RowMapping],
    lookup: Lookup,
    rand: Callable[[], float],
) -> int | None:
    """Record what the backend holds of these fires; None if it could not answer."""
    wanted = {(row["id"], row["attempts"] + 1) for row in rows}
    try:
        stored = lookup(sorted({row["message_id"] for row in rows}))
    except Exception:
        log.warning("could not read outcomes from the result backend", exc_info=True)
        return None
    outcomes = [
        outcome
        for messages in stored.values()
        for outcome in map(TriggerOutcome.from_message, messages)
        if (outcome.execution_id, outcome.attempt) in wanted
    ]
    if not outcomes:
        return 0
    report = writeback.record_outcomes(engine, outcomes, settings, now, rand)
    return report.applied + report.throttled
