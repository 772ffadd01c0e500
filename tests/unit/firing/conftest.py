"""Fixtures of the firing tests: real sockets, on loopback only.

Every outbound connection the trigger loop makes goes through ``loop.sock_connect``;
the autouse ``loopback_only`` fixture wraps it so that any attempt to connect to a
non-loopback address fails the test instead of leaving the machine, and records every
address connected to (so "refused before connecting" is checked, not assumed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from taskhub.engine import firing
from tests.unit.firing.support import (
    CONNECTS,
    ConnectLog,
    LoopThread,
    RawServer,
    Target,
    ipv6_loopback_available,
)


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> Iterator[ConnectLog]:
    log = CONNECTS
    original = asyncio.selector_events.BaseSelectorEventLoop.sock_connect

    async def guarded(self: Any, sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        log.addresses.append(host)
        if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            log.violations.append(host)
            raise ConnectionRefusedError(f"test tried to connect to non-loopback {host}")
        await original(self, sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(asyncio.selector_events.BaseSelectorEventLoop, "sock_connect", guarded)
        yield log


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture(scope="module")
def target(loop_thread: LoopThread) -> Iterator[Target]:
    tgt = Target()
    runner = web.AppRunner(tgt.app(), shutdown_timeout=1)
    loop_thread.run(runner.setup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop_thread.run(site.start)
    tgt.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if ipv6_loopback_available():
        site6 = web.TCPSite(runner, "::1", 0)
        loop_thread.run(site6.start)
        tgt.port6 = site6._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield tgt
    loop_thread.run(runner.cleanup)


@pytest.fixture(scope="module")
def raw(loop_thread: LoopThread) -> Iterator[RawServer]:
    server = RawServer()
    loop_thread.run(server.start)
    yield server
    loop_thread.run(server.stop)


@pytest.fixture(scope="module", autouse=True)
def _shutdown_trigger_loop() -> Iterator[None]:
    yield
    firing.shutdown()
