"""What the firing tests share: the loopback guard's log, the servers they fire at, and
settings."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from taskhub.core import settings as settings_mod
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings
from taskhub.engine.firing import fire

T = TypeVar("T")


@dataclass
class ConnectLog:
    addresses: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.addresses.clear()


CONNECTS = ConnectLog()


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def go() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Seen:
    method: str
    headers: list[tuple[str, str]]
    body: bytes


class Target:
    """An aiohttp app on 127.0.0.1 (and ::1 when available) recording what it receives."""

    def __init__(self) -> None:
        self.seen: dict[str, list[Seen]] = {}
        self.lock = threading.Lock()
        self.drips_ended = 0
        self.port = 0
        self.port6: int | None = None

    def hits(self, token: str) -> list[Seen]:
        with self.lock:
            return list(self.seen.get(token, []))

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = Seen(
            request.method,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body,
        )
        with self.lock:
            self.seen.setdefault(request.match_info["token"], []).append(seen)
        return web.Response(text=f"ok {request.match_info['token']}")

    async def status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code} body")

    async def retry_after(self, request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": request.query["v"]}, text="slow")

    async def sleep(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.match_info["seconds"]))
        return web.Response(text="late")

    async def drip(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"x")
                await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.CancelledError):
            self.drips_ended += 1
            raise

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"y" * 65536
        while True:  # until the client goes away
            await response.write(chunk)

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body="é".encode() * 600_000)

    async def nul(self, request: web.Request) -> web.Response:
        return web.Response(body=b"a\x00b")

    async def redirect(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        raise web.HTTPFound(f"/echo/{token}-followed")

    async def redirect_away(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def mirror(self, request: web.Request) -> web.Response:
        """The request's headers back, as httpbin's /headers does, after ``pad`` bytes."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.raw_headers}
        pad = "." * int(request.query.get("pad", "0"))
        if "only" in request.query:  # that header's value alone, at byte ``pad``
            return web.Response(text=pad + headers[request.query["only"]] + " and more")
        return web.Response(text=pad + json.dumps({"headers": headers}, indent=2))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/echo/{token}", self.echo)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/retry-after", self.retry_after)
        app.router.add_get("/sleep/{seconds}", self.sleep)
        app.router.add_get("/drip", self.drip)
        app.router.add_get("/endless", self.endless)
        app.router.add_get("/big", self.big)
        app.router.add_get("/nul", self.nul)
        app.router.add_get("/redirect/{token}", self.redirect)
        app.router.add_get("/redirect-away", self.redirect_away)
        app.router.add_get("/mirror", self.mirror)
        return app


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class RawServer:
    """Misbehaving servers: each port answers every connection the same wrong way."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        for mode in ("close", "garbage", "partial", "silent"):
            server = await asyncio.start_server(
                functools.partial(self.handle, mode), "127.0.0.1", 0
            )
            self.servers.append(server)
            self.ports[mode] = server.sockets[0].getsockname()[1]

    async def handle(self, mode: str, reader: asyncio.StreamReader, writer: Any) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if mode == "garbage":
                writer.write(b"THIS IS NOT HTTP\r\n\r\n")
            elif mode == "partial":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            elif mode == "silent":
                await asyncio.sleep(30)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


def make_settings(allow_private: bool = True, **env: str) -> Settings:
    values = {
        "TASKHUB_ALLOW_PRIVATE_TARGETS": "1" if allow_private else "0",
        "TASKHUB_ENCRYPTION_KEYS": os.environ["TASKHUB_ENCRYPTION_KEYS"],  # set by conftest
        **env,
    }
    return settings_mod.load(values)


OPEN = make_settings()
GUARDED = make_settings(allow_private=False)


def lanes_only(**env: str) -> Settings:
    """The lanes alone, no host or tenant share (these tests call one host)."""
    return make_settings(
        True, TASKHUB_FAST_LANE_SHARE_PERCENT="100", TASKHUB_SLOW_LANE_SHARE_PERCENT="100", **env
    )


def fire_one(request: TriggerRequest, settings: Settings = OPEN) -> TriggerOutcome:
    [outcome] = fire([request], settings)
    assert CONNECTS.violations == []
    assert outcome.execution_id == request.execution_id
    assert outcome.attempt == request.attempt
    assert outcome.started_at.tzinfo is not None
    assert outcome.duration_ms >= 0
    # Exactly one of "a response arrived" and "an error kind" holds.
    assert (outcome.http_status is None) != (outcome.error_kind is None)
    return outcome
