"""The staging loop: second precision while beat ticks once a minute.

The minute's tick writes what falls due before the next tick as ``queued`` executions
with ``next_attempt_at`` = the second to fire them (``discovery``). This loop runs in a
thread of every worker that consumes the discovery queue and, on each whole second,
claims and publishes what has come due: staged occurrences, retries whose backoff
ended, throttled fires, and occurrences of tasks created or changed since the tick.

Nothing waits on the broker, and the loop holds no state: the database is the staging
area. Two loops (two discovery workers) are harmless, the claims skip each other's
rows; no loop (its worker died) only makes those fires wait for the next tick.

Beat is the clock. The loop refines the minute's tick, it does not replace it: it
claims only while a tick has ended within the last ``TICKS_BEFORE_IDLE`` tick periods
(the ``taskhub_last_tick_timestamp_seconds`` gauge, shared by every worker through the
database). With beat stopped, scheduling stops within two ticks, as with any Celery
periodic task, and starts again at the first tick after beat returns.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from sqlalchemy.engine import Engine

from taskhub.core.settings import Settings
from taskhub.db import metric_queries
from taskhub.engine import discovery, holders
from taskhub.engine.once_threads import OnceThread
from taskhub.observability import metric_names

log = logging.getLogger(__name__)


#: How many tick periods without a tick before the loop stops claiming.
TICKS_BEFORE_IDLE = 2


def beat_is_ticking(last_tick_s: float | None, now_s: float, tick_s: float) -> bool:
    """Whether a tick has ended recently enough for the loop to claim."""
    return last_tick_s is not None and now_s - last_tick_s <= TICKS_BEFORE_IDLE * tick_s


def last_tick_s(engine: Engine) -> float | None:
    with engine.connect() as conn:
        return metric_queries.read_gauge(conn, metric_names.LAST_TICK)


def next_pass_at(now_s: float, interval_s: float) -> float:
    """The first instant on the grid of ``interval_s`` (from the epoch) after ``now_s``:
    with a one-second interval, the next whole second, so an occurrence due at 12:00:37
    is claimed at 12:00:37.00x."""
    return (math.floor(now_s / interval_s) + 1) * interval_s


def run(
    engine: Engine,
    settings: Settings,
    publish: discovery.Publish,
    clock: discovery.Clock,
    stop: threading.Event,
    lookup: holders.Lookup | None = None,
) -> None:
    """Until ``stop`` is set: wake on each grid instant, claim and publish what is due."""
    interval_s = settings.stage_interval_s
    idle = False
    while not stop.is_set():
        if stop.wait(max(0.0, next_pass_at(time.time(), interval_s) - time.time())):
            return
        report = discovery.TickReport()
        try:
            ticking = beat_is_ticking(last_tick_s(engine), time.time(), settings.tick_seconds)
            if ticking:
                discovery.claim_and_publish(
                    engine,
                    settings,
                    publish,
                    clock,
                    0.0,
                    settings.tick_seconds * 0.8,
                    report,
                    lookup,
                )
        except Exception:  # the database or broker is away: the next pass tries again
            log.warning("staging pass failed; retrying at the next second", exc_info=True)
            continue
        if idle == ticking:
            idle = not ticking
            if idle:
                log.info(
                    "staging: idle, no tick in %d tick periods (is beat running?)",
                    TICKS_BEFORE_IDLE,
                )
            else:
                log.info("staging: ticks seen; claiming at each second")
        if report.published:
            log.info(
                "staging: %d occurrences claimed, %d executions published again, %d published",
                report.occurrences_claimed,
                report.executions_redispatched,
                report.published,
            )


_thread = OnceThread("taskhub-staging")


def start(
    engine: Engine,
    settings: Settings,
    publish: discovery.Publish,
    clock: discovery.Clock,
    lookup: holders.Lookup | None = None,
) -> threading.Event | None:
    """Start this process's loop (once); returns the event that stops it, or None when
    staging is switched off (``TASKHUB_STAGE_INTERVAL_SECONDS=0``). ``lookup`` reads
    outcomes from the result backend (``holders``)."""
    if settings.stage_interval_s <= 0:
        return None
    return _thread.start(lambda stop: run(engine, settings, publish, clock, stop, lookup))
