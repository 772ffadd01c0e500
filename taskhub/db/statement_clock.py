"""This process's database statements: how many, and how long they took, across every
engine it made (the heartbeat reports them). The cost is two monotonic reads a statement."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_lock = threading.Lock()
_statements = 0
_seconds = 0.0


def instrument(engine: Engine) -> None:
    """Time every statement ``engine`` runs."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _sql: Any, _params: Any, _ctx: Any, _many: Any) -> None:
        conn.info.setdefault("taskhub_query_t0", []).append(time.monotonic())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, _sql: Any, _params: Any, _ctx: Any, _many: Any) -> None:
        global _statements, _seconds
        started = conn.info["taskhub_query_t0"].pop()
        with _lock:
            _statements += 1
            _seconds += time.monotonic() - started


def read() -> tuple[int, float]:
    """(statements, seconds) since this process started."""
    with _lock:
        return _statements, _seconds


def reset_after_fork() -> None:
    """A forked child counts its own statements, not its parent's."""
    global _lock, _statements, _seconds
    _lock = threading.Lock()
    _statements, _seconds = 0, 0.0
