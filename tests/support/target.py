"""A real HTTP target on loopback for tests: records every request it receives.

Paths choose behaviour: ``/ok`` answers 200, ``/missing`` 404, ``/gone`` 410 (a receiver
that wants no more, as Standard Webhooks has it), ``/flaky/N`` answers 503
to the first N attempts of each idempotency key and 200 after, ``/slow/S`` waits S
seconds before answering 200, ``/drip/S/N`` answers the first N attempts of each key
with a 200 whose body arrives one byte every quarter second for S seconds (each read
is quick, the whole is slow), and at once after; ``/headers`` answers with the request's
headers as JSON (an echo server, like httpbin's); ``/html`` answers :data:`HTML_ANSWER`
as ``text/html`` (markup a page must show as text). ``peak`` holds, per ``Host`` header,
the most requests that were in progress at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

#: What ``/html`` answers: markup that would run a script if a page used it as HTML.
HTML_ANSWER = '<h1 id="injected">hello</h1><img src=y onerror="alert(2)">'


@dataclass(frozen=True)
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: str
    at: float  # time.time()


@dataclass
class Target:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    current: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def keys(self) -> Counter[str]:
        return Counter(r.headers.get("Idempotency-Key", "") for r in self.snapshot())

    def wait_for(self, count: int, timeout_s: float) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.snapshot()
            if len(got) >= count:
                return got
            time.sleep(0.1)
        return self.snapshot()

    def settled_count(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> int:
        """How many requests arrived, once none has for ``quiet_s``: after its senders
        were killed, the requests they had sent that this process has not read yet
        (accepted by the kernel, waiting for the loop) count too."""
        count, changed = len(self.snapshot()), time.monotonic()
        deadline = changed + timeout_s
        while time.monotonic() - changed < quiet_s and time.monotonic() < deadline:
            time.sleep(0.1)
            now_count = len(self.snapshot())
            if now_count != count:
                count, changed = now_count, time.monotonic()
        return count

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.headers.get("Host", "").rsplit(":", 1)[0]
        with self.lock:
            self.current[host] += 1
            self.peak[host] = max(self.peak[host], self.current[host])
        try:
            return await self._answer(request)
        finally:
            with self.lock:
                self.current[host] -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        record = Received(request.path, request.method, dict(request.headers), body, time.time())
        with self.lock:
            self.received.append(record)
            seen = sum(
                1
                for r in self.received
                if r.headers.get("Idempotency-Key") == record.headers.get("Idempotency-Key")
            )
        parts = request.path.strip("/").split("/")
        if parts[0] == "missing":
            return web.Response(status=404, text="no such hook")
        if parts[0] == "gone":
            return web.Response(status=410, text="this endpoint is gone")
        if parts[0] == "flaky" and seen <= int(parts[1]):
            return web.Response(status=503, text="try later")
        if parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
        if parts[0] == "drip" and seen <= int(parts[2]):
            return await self.drip(request, float(parts[1]))
        if parts[0] == "html":
            return web.Response(text=HTML_ANSWER, content_type="text/html")
        if parts[0] == "headers":  # the request's headers back, as httpbin's /headers does
            return web.json_response({"headers": dict(request.headers)})
        return web.Response(text="ok")

    async def drip(self, request: web.Request, seconds: float) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_length = int(seconds * 4) + 1
        await response.prepare(request)
        try:
            for _ in range(int(seconds * 4)):
                await response.write(b".")
                await asyncio.sleep(0.25)
            await response.write(b"\n")
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, as it should
        return response


@contextmanager
def running_target(host: str = "127.0.0.1") -> Iterator[Target]:
    """A target listening on ``host`` (any 127.x address is a host of its own)."""
    target = Target()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, host, 0, backlog=2048)
        await site.start()
        target.port = runner.addresses[0][1]
        started.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield target
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
