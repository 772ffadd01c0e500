"""What only a process can measure about itself, written to the database every few
seconds so that /metrics and `taskhub stats` can read it on any broker.

Celery's events would carry some of this, but they do not exist on SQS. Each worker
process (each prefork child too), beat, and the API measure: resident memory, their
database pool (size and connections checked out), their database query count and total
query time, and the trigger requests they have in flight. A process that stops writing
disappears from the metrics after ``STALE_AFTER_S``; the sends it held go out again
sooner (``holders.dead_holders``).
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from taskhub.core.clock import utcnow
from taskhub.db import heartbeat_queries, statement_clock

log = logging.getLogger(__name__)

INTERVAL_S = 10.0
STALE_AFTER_S = 60.0


def reset_after_fork() -> None:
    """A forked child writes its own row, from its own start (its parent's are not its own)."""
    global _written, _writing_since
    statement_clock.reset_after_fork()
    _written = False
    _writing_since = None


#: Whether this process's heartbeat row exists (written once at least).
_written = False
#: Since when (monotonic) every heartbeat write of this process has succeeded; None
#: while the database is unreachable or before the first write.
_writing_since: float | None = None


def writing_for_s() -> float:
    """How long this process has written its heartbeat without a failure: once it is
    longer than a few intervals, another process's silence over that time is its own."""
    since = _writing_since
    return 0.0 if since is None else time.monotonic() - since


def ensure_written(conn: Connection, now: datetime) -> None:
    """Write this process's heartbeat in ``conn``'s transaction unless it was written
    before: a process that holds sends is known alive from its first one."""
    global _written
    if not _written:
        heartbeat_queries.write_heartbeat(conn, measure(role(), None, now, now, 0))
        _written = True


def rss_bytes() -> int:
    """Resident memory now (Linux), else the peak the OS reports."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


def pool_figures(engine: Engine | None) -> tuple[int, int]:
    """(size, checked out) of the engine's pool; (0, 0) for a pool without a size."""
    if engine is None:
        return 0, 0
    pool: Any = engine.pool
    try:
        return int(pool.size()), int(pool.checkedout())
    except AttributeError:
        return 0, 0


def process_name(node: str | None = None) -> str:
    return f"{node or socket.gethostname()}:{os.getpid()}"


def measure(
    role: str, engine: Engine | None, started_at: datetime, now: datetime, in_flight: int
) -> dict[str, Any]:
    size, checked_out = pool_figures(engine)
    query_count, query_seconds = statement_clock.read()
    return {
        "process": process_name(_node),
        "role": role,
        "started_at": started_at,
        "seen_at": now,
        "rss_bytes": rss_bytes(),
        "in_flight": in_flight,
        "db_pool_size": size,
        "db_pool_checked_out": checked_out,
        "db_queries": query_count,
        "db_query_seconds": query_seconds,
    }


_node: str | None = None


def set_node(node: str) -> None:
    """The Celery node name (``trigger@host``), inherited by prefork children."""
    global _node
    _node = node


def this_process() -> str:
    """This process's heartbeat identity (``worker_heartbeats.process``)."""
    return process_name(_node)


def role() -> str:
    """The process's role, from its node name (``trigger@host`` → ``trigger``)."""
    return _node.split("@", 1)[0] if _node and "@" in _node else "worker"


InFlight = Callable[[], int]


def beat_once(engine: Engine, role: str, started_at: datetime, in_flight: InFlight) -> None:
    global _written
    now = utcnow()
    with engine.begin() as conn:
        heartbeat_queries.write_heartbeat(conn, measure(role, engine, started_at, now, in_flight()))
    _written = True


def start(engine: Engine, role: str, in_flight: InFlight = lambda: 0) -> threading.Thread:
    """Write this process's heartbeat now and every ``INTERVAL_S`` in a daemon thread.

    A failed write (the database is down) is logged and retried at the next interval;
    it never stops the process."""
    started_at = utcnow()

    def run() -> None:
        global _writing_since
        while True:
            try:
                beat_once(engine, role, started_at, in_flight)
                if _writing_since is None:
                    _writing_since = time.monotonic()
            except sa.exc.SQLAlchemyError as error:
                _writing_since = None
                log.warning("heartbeat not written (%s)", error.__class__.__name__)
            time.sleep(INTERVAL_S)

    thread = threading.Thread(target=run, name=f"taskhub-heartbeat-{os.getpid()}", daemon=True)
    thread.start()
    return thread


def live_since(now: datetime) -> datetime:
    return now - timedelta(seconds=STALE_AFTER_S)
