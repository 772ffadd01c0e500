"""A fast recording HTTP target for the benchmark, run in its own process.

    python bench/target.py --port P --dump FILE

Raw asyncio (no framework), keep-alive HTTP/1.1. Every request is recorded as
(arrival time, Idempotency-Key, path, X-Taskhub-Scheduled-For); paths choose behaviour:
``/ok`` answers at once, ``/delay/S`` after S seconds, ``/hang`` never (until the client
gives up). The control path ``/__dump`` writes the records to FILE as JSON lines and
answers; ``/__reset`` forgets them; ``/__drain`` writes them and forgets them in one
step (nothing arrives in between). It also counts concurrent requests per Host header
(``max_concurrent``). It listens on 127.0.0.1 and 127.0.0.2, two hosts to taskhub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

#: The addresses the target listens on (each a host of its own to taskhub).
HOSTS = ("127.0.0.1", "127.0.0.2")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class State:
    def __init__(self, dump: str) -> None:
        self.dump = dump
        self.records: list[tuple[float, str, str, str]] = []
        self.current: dict[str, int] = {}
        self.peak: dict[str, int] = {}


class Target(asyncio.Protocol):
    """One connection: parse request heads (and skip bodies), answer per path."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = b""
        # Unanswered delayed requests: (timer, host), so a dropped connection releases them.
        self.pending: list[tuple[asyncio.TimerHandle, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for handle, host in self.pending:
            if not handle.cancelled():
                handle.cancel()
                self.state.current[host] -= 1  # an abandoned request is no longer in flight
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            path = lines[0].split(" ")[1] if " " in lines[0] else "/"
            self.handle(path, headers)

    def handle(self, path: str, headers: dict[str, str]) -> None:
        state = self.state
        if path == "/__dump":
            with open(state.dump, "w") as out:
                for record in state.records:
                    out.write(json.dumps(record) + "\n")
                out.write(json.dumps({"max_concurrent": state.peak}) + "\n")
            self.transport.write(OK)
            return
        if path == "/__drain":  # dump, then forget: a long run reads its records in parts
            with open(state.dump, "w") as out:
                for record in state.records:
                    out.write(json.dumps(record) + "\n")
            state.records.clear()
            self.transport.write(OK)
            return
        if path == "/__reset":
            state.records.clear()
            state.peak.clear()
            self.transport.write(OK)
            return
        state.records.append(
            (
                time.time(),
                headers.get("idempotency-key", ""),
                path,
                headers.get("x-taskhub-scheduled-for", ""),
            )
        )
        host = headers.get("host", "")
        state.current[host] = state.current.get(host, 0) + 1
        state.peak[host] = max(state.peak.get(host, 0), state.current[host])

        def answer() -> None:
            state.current[host] -= 1
            self.pending = [(h, o) for h, o in self.pending if not h.cancelled() and h is not me]
            if not self.transport.is_closing():
                self.transport.write(OK)

        delay_s = 0.0
        if path.startswith("/delay/"):
            delay_s = float(path[7:])
        elif path.startswith("/hang"):
            delay_s = 3600.0
        if delay_s <= 0:
            state.current[host] -= 1
            self.transport.write(OK)
            return
        me = asyncio.get_running_loop().call_later(delay_s, answer)
        self.pending.append((me, host))


def serve(port: int, dump: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        state = State(dump)
        # Two loopback addresses: a scenario can put two "hosts" on the one target.
        server = await loop.create_server(
            lambda: Target(state), list(HOSTS), port, reuse_port=True, backlog=4096
        )
        print("ready", flush=True)
        parent = os.getppid()
        async with server:
            while os.getppid() == parent:  # exit with the bench even if it is killed
                await asyncio.sleep(0.5)

    asyncio.run(main())


Record = tuple[float, str, str, str]


def read_dump(path: str) -> tuple[list[Record], dict[str, Any]]:
    records: list[Record] = []
    extra: dict[str, Any] = {}
    with open(path) as lines:
        for line in lines:
            value = json.loads(line)
            if isinstance(value, dict):
                extra = value
            else:
                records.append((float(value[0]), str(value[1]), str(value[2]), str(value[3])))
    return records, extra


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dump", required=True)
    args = parser.parse_args()
    serve(args.port, args.dump)
