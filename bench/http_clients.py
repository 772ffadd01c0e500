"""Requests per second of HTTP clients against a fast local target on 127.0.0.1.

    python bench/http_clients.py --requests 5000

Starts a minimal keep-alive HTTP/1.1 target (raw asyncio, one or more processes sharing
the port with SO_REUSEPORT), measures its capacity with a few aiohttp load processes,
then times each client making ``--requests`` GETs and prints one JSON line per client:

- ``requests``: one ``requests.Session`` per thread, 16 threads
- ``urllib3``: one shared ``PoolManager``, 16 threads
- ``aiohttp``: one process, one session, all requests gathered (connector limit 100)
- ``taskhub.engine.http_client``: taskhub's own, one process, 100 at a time
- ``taskhub.engine.firing.fire``: batches of 25 from 16 threads

Everything runs on this machine: the target competes with the clients for CPU, so the
figures compare clients with each other, not with production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

THREADS = 16
BATCH = 25
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# --------------------------------------------------------------------------- the target


class _Target(asyncio.Protocol):
    """Answers every request head with a fixed 200 (GETs only, pipelining allowed)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


def serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Target, "127.0.0.1", port, reuse_port=True, backlog=4096)
        print("ready", flush=True)
        parent = os.getppid()
        async with server:
            while os.getppid() == parent:  # exit with the bench even if it is killed
                await asyncio.sleep(0.5)

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_target(processes: int) -> tuple[int, list[subprocess.Popen[str]]]:
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the target did not start")
    return port, procs


# --------------------------------------------------------------------------- clients


def run_threads(total: int, threads: int, work: Callable[[int], int]) -> int:
    """Split ``total`` over ``threads`` workers; return the number of errors."""
    shares = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(work, shares))


def bench_requests(url: str, total: int) -> int:
    import requests

    def work(n: int) -> int:
        errors = 0
        with requests.Session() as session:
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1)
            session.mount("http://", adapter)
            for _ in range(n):
                response = session.get(url, timeout=(5, 10), allow_redirects=False)
                errors += response.status_code != 200
        return errors

    return run_threads(total, THREADS, work)


def bench_urllib3(url: str, total: int) -> int:
    import urllib3

    pool = urllib3.PoolManager(maxsize=THREADS, block=True, retries=False)

    def work(n: int) -> int:
        errors = 0
        for _ in range(n):
            response = pool.request("GET", url, timeout=urllib3.Timeout(connect=5, read=10))
            errors += response.status != 200
        return errors

    try:
        return run_threads(total, THREADS, work)
    finally:
        pool.clear()


async def _aiohttp_load(url: str, total: int, limit: int) -> int:
    import aiohttp

    async def one(session: aiohttp.ClientSession) -> int:
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            return int(response.status != 200)

    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:
        return sum(await asyncio.gather(*(one(session) for _ in range(total))))


def bench_aiohttp(url: str, total: int) -> int:
    return asyncio.run(_aiohttp_load(url, total, 100))


async def _http_client_load(url: str, total: int, limit: int) -> int:
    from yarl import URL

    from taskhub.engine import http_client

    async def resolve(host: str, port: int) -> list[str]:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port)
        return [str(answer[4][0]) for answer in answers]

    pool = http_client.Pool(resolve, limit=limit, keepalive_s=4, dns_ttl_s=30, user_agent="bench")
    target = URL(url)
    slots = asyncio.Semaphore(limit)

    async def one() -> int:
        async with slots:
            response = await pool.request("GET", target, {}, None, 5.0, 65536)
            await response.read()
            return int(response.status != 200)

    try:
        return sum(await asyncio.gather(*(one() for _ in range(total))))
    finally:
        await pool.close()


def bench_http_client(url: str, total: int) -> int:
    return asyncio.run(_http_client_load(url, total, 100))


def bench_trigger(url: str, total: int) -> int:
    from taskhub.core import settings as settings_mod
    from taskhub.core.messages import TriggerRequest
    from taskhub.engine import firing

    settings = settings_mod.load({"TASKHUB_ALLOW_PRIVATE_TARGETS": "1"})
    now = datetime.now(UTC)

    def request(i: int) -> TriggerRequest:
        return TriggerRequest(
            execution_id=i,
            attempt=1,
            task_id="bench",
            scheduled_for=now,
            idempotency_key=f"bench-{i}",
            url=url,
            method="GET",
            headers={},
            body=None,
            timeout_s=10.0,
        )

    def work(n: int) -> int:
        errors = 0
        for start in range(0, n, BATCH):
            batch = [request(i) for i in range(start, min(n, start + BATCH))]
            errors += sum(o.http_status != 200 for o in firing.fire(batch, settings))
        return errors

    return run_threads(total, THREADS, work)


CLIENTS: dict[str, Callable[[str, int], int]] = {
    "requests (Session per thread, 16 threads)": bench_requests,
    "urllib3 (PoolManager, 16 threads)": bench_urllib3,
    "aiohttp (1 process, limit 100)": bench_aiohttp,
    "taskhub.engine.http_client (1 process, limit 100)": bench_http_client,
    "taskhub.engine.firing.fire (batches of 25, 16 threads)": bench_trigger,
}


def _load_process(url: str, total: int, queue: Any) -> None:
    asyncio.run(_aiohttp_load(url, min(200, total), 64))  # warm-up, not timed
    t0 = time.perf_counter()
    errors = asyncio.run(_aiohttp_load(url, total, 64))
    queue.put((errors, time.perf_counter() - t0))


def measure_capacity(url: str, total: int, processes: int) -> dict[str, Any]:
    """Requests/second the target sustains under ``processes`` aiohttp load processes."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    share = max(1, total // processes)
    procs = [
        context.Process(target=_load_process, args=(url, share, queue)) for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join()
    slowest = max(elapsed for _, elapsed in results)
    return {
        "target_capacity_rps": round(share * processes / slowest),
        "load_processes": processes,
        "requests": share * processes,
        "errors": sum(errors for errors, _ in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--target-processes", type=int, default=1)
    parser.add_argument("--capacity-processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="time each client this often")
    parser.add_argument("--only", action="append", help="substring of a client name")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    port, target = start_target(args.target_processes)
    url = f"http://127.0.0.1:{port}/hook"
    try:
        print(
            json.dumps(
                {
                    "target": url,
                    "target_processes": args.target_processes,
                    "cpus": os.cpu_count(),
                    **measure_capacity(url, args.requests * 2, args.capacity_processes),
                }
            ),
            flush=True,
        )
        for name, bench in CLIENTS.items():
            if args.only and not any(s in name for s in args.only):
                continue
            bench(url, min(200, args.requests))  # warm-up: imports, pools, the trigger loop
            for round_ in range(1, args.rounds + 1):
                t0 = time.perf_counter()
                errors = bench(url, args.requests)
                elapsed = time.perf_counter() - t0
                line = {
                    "client": name,
                    "round": round_,
                    "requests": args.requests,
                    "seconds": round(elapsed, 3),
                    "rps": round(args.requests / elapsed),
                    "errors": errors,
                }
                print(json.dumps(line), flush=True)
    finally:
        for proc in target:
            proc.terminate()
        for proc in target:
            proc.wait(10)


if __name__ == "__main__":
    main()
