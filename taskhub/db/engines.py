"""Engines: one per process and URL, configured for each backend's concurrency.

SQLite: WAL (readers never block the writer), a busy timeout (writers wait instead of
failing) and ``BEGIN IMMEDIATE`` for every transaction, because pysqlite would
otherwise start a transaction lazily and let two claimers read the same due rows before
either writes. PostgreSQL: ``pool_pre_ping`` so that a restarted server costs one retry,
not a failed tick.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from taskhub.db import statement_clock

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10

_engines: dict[str, tuple[int, Engine]] = {}
_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Let users write ``postgresql://`` and still get psycopg 3, the driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _configure_sqlite(engine)
        statement_clock.instrument(engine)
        return engine
    # A server that blackholes packets (rather than refusing) must fail a tick in
    # seconds, not after TCP's own minutes-long timeout.
    kwargs.setdefault("connect_args", {"connect_timeout": PG_CONNECT_TIMEOUT_S})
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    engine = sa.create_engine(url, **kwargs)
    event.listen(engine, "connect", _utc_session)
    statement_clock.instrument(engine)
    return engine


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """Sessions in UTC, as Django sets them: psycopg then returns instants as
    ``datetime.UTC`` and they need no conversion (a claim reads five per task). A server
    whose default zone is UTC already costs no round trip."""
    if dbapi_connection.info.parameter_status("TimeZone") != "UTC":
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: str) -> Engine:
    """The process's engine for ``url``; a forked child gets a fresh pool, never its
    parent's sockets."""
    pid = os.getpid()
    with _lock:
        cached = _engines.get(url)
        if cached is not None and cached[0] == pid:
            return cached[1]
        if cached is not None:
            cached[1].dispose(close=False)
        engine = create_engine(url)
        _engines[url] = (pid, engine)
        return engine


def dispose_after_fork() -> None:
    """Drop inherited pools without closing the parent's connections: a forked child
    must never use its parent's sockets."""
    with _lock:
        for _pid, engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()
    statement_clock.reset_after_fork()
