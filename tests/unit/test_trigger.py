"""taskhub.engine.firing and taskhub.engine.exchange against real sockets on loopback only.

Every outbound connection the trigger loop makes goes through ``loop.sock_connect``;
the autouse ``loopback_only`` fixture wraps it so that any attempt to connect to a
non-loopback address fails the test instead of leaving the machine, and records every
address connected to (so "refused before connecting" is checked, not assumed).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from yarl import URL

from taskhub.core import settings as settings_mod
from taskhub.core.addresses import blocked_reason
from taskhub.core.messages import ERROR_KINDS, TriggerOutcome, TriggerRequest
from taskhub.core.sealing import Sealer, generate_key, sealer_for
from taskhub.core.settings import Settings
from taskhub.core.signing import new_secret, verify
from taskhub.engine import exchange, firing
from taskhub.engine.exchange import attempt_headers, parse_retry_after
from taskhub.engine.firing import fire
from tests.processes import free_port

T = TypeVar("T")
SCHEDULED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- guards


@dataclass
class ConnectLog:
    addresses: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.addresses.clear()


CONNECTS = ConnectLog()


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


# --------------------------------------------------------------------------- servers


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


def req(url: str, **overrides: Any) -> TriggerRequest:
    values: dict[str, Any] = {
        "execution_id": 41,
        "attempt": 1,
        "task_id": "task-7",
        "scheduled_for": SCHEDULED,
        "idempotency_key": "idem-41",
        "url": url,
        "method": "GET",
        "headers": {},
        "body": None,
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return TriggerRequest(**values)


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


# --------------------------------------------------------------------------- responses


def test_success_sends_the_task_request_and_the_taskhub_headers(target: Target) -> None:
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}?q=1",
        method="PUT",
        headers={"X-Team": "billing", "Content-Type": "application/json", "Authorization": "s3"},
        body='{"kind": "nightly", "text": "café"}',
        attempt=2,
    )
    outcome = fire_one(request)
    assert outcome.http_status == 200
    assert outcome.error is None
    assert outcome.error_kind is None
    assert outcome.response_excerpt == f"ok {token}"
    [seen] = target.hits(token)
    assert seen.method == "PUT"
    assert seen.body == '{"kind": "nightly", "text": "café"}'.encode()
    headers = dict(seen.headers)
    assert headers["X-Team"] == "billing"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "s3"
    assert headers["Idempotency-Key"] == "idem-41"
    assert headers["X-Taskhub-Task-Id"] == "task-7"
    assert headers["X-Taskhub-Scheduled-For"] == "2026-11-22T09:00:00Z"
    assert headers["X-Taskhub-Attempt"] == "2"
    assert "Cookie" not in headers


def test_taskhub_headers_win_over_task_headers(target: Target) -> None:
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        headers={"idempotency-key": "forged", "X-TASKHUB-ATTEMPT": "99", "X-Other": "kept"},
    )
    assert fire_one(request).http_status == 200
    [seen] = target.hits(token)
    lowered = [(k.lower(), v) for k, v in seen.headers]
    assert [v for k, v in lowered if k == "idempotency-key"] == ["idem-41"]
    assert [v for k, v in lowered if k == "x-taskhub-attempt"] == ["1"]
    assert ("x-other", "kept") in lowered


def test_get_without_body_sends_no_content_type(target: Target) -> None:
    token = uuid.uuid4().hex
    assert fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}")).http_status == 200
    [seen] = target.hits(token)
    assert seen.method == "GET"
    assert seen.body == b""
    assert "content-type" not in {k.lower() for k, _ in seen.headers}


def content_types(seen: Seen) -> list[str]:
    return [v for k, v in seen.headers if k.lower() == "content-type"]


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ('{"hi": 1}', {}, ["application/json"]),  # JSON, no Content-Type: application/json
        ("[1, 2]", {}, ["application/json"]),
        (" 42 ", {}, ["application/json"]),
        ('{"hi": 1}', {"content-type": "text/plain"}, ["text/plain"]),  # given: kept as is
        ('{"hi": 1}', {"Content-Type": "application/vnd.x+json"}, ["application/vnd.x+json"]),
        ("hello", {}, []),  # not JSON: nothing is guessed
        ("NaN", {}, []),  # Python's extension, not JSON
        ('{"a": 1', {}, []),
        ("", {}, []),
    ],
)
def test_a_json_body_without_a_content_type_is_sent_as_json(
    target: Target, body: str, headers: dict[str, str], expected: list[str]
) -> None:
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}", method="POST", headers=headers, body=body
    )
    assert fire_one(request).http_status == 200
    [seen] = target.hits(token)
    assert content_types(seen) == expected
    assert seen.body == body.encode()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=10,
)


@given(
    value=json_values,
    spelling=st.sampled_from(["", "Content-Type", "content-type", "CONTENT-TYPE"]),
)
def test_attempt_headers_add_json_only_when_no_content_type_is_given(
    value: Any, spelling: str
) -> None:
    given_headers = {spelling: "text/x-mine"} if spelling else {}
    headers = attempt_headers(
        req("http://x.invalid/", body=json.dumps(value), headers=given_headers)
    )
    found = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    assert found == (
        {spelling: "text/x-mine"} if spelling else {"Content-Type": "application/json"}
    )


@given(body=st.text())
def test_attempt_headers_never_call_text_that_is_not_json_json(body: str) -> None:
    try:
        json.loads(body, parse_constant=lambda c: 1 / 0)
        is_json = True
    except (ValueError, ZeroDivisionError, RecursionError):
        is_json = False
    headers = attempt_headers(req("http://x.invalid/", body=body))
    assert ("Content-Type" in headers) is is_json


def test_ipv6_loopback_literal(target: Target) -> None:
    if target.port6 is None:
        pytest.skip("no IPv6 loopback here")
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://[::1]:{target.port6}/echo/{token}"))
    assert outcome.http_status == 200
    assert len(target.hits(token)) == 1


def test_server_error_is_reported_with_excerpt(target: Target) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/status/500"))
    assert outcome.http_status == 500
    assert outcome.error_kind is None
    assert outcome.error == "HTTP 500"
    assert outcome.response_excerpt == "status 500 body"
    assert outcome.retry_after_s is None


def test_client_error_is_reported(target: Target) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/status/404"))
    assert (outcome.http_status, outcome.error_kind, outcome.error) == (404, None, "HTTP 404")


def test_429_with_retry_after_seconds(target: Target) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/retry-after?v=7"))
    assert outcome.http_status == 429
    assert outcome.error == "HTTP 429"
    assert outcome.retry_after_s == 7.0


def test_429_with_retry_after_http_date(target: Target) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    url = URL(f"http://127.0.0.1:{target.port}/retry-after").with_query(v=when)
    outcome = fire_one(req(str(url)))
    assert outcome.http_status == 429
    assert outcome.retry_after_s is not None
    assert 100 <= outcome.retry_after_s <= 121


def test_read_timeout(target: Target) -> None:
    t0 = time.monotonic()
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/sleep/10", timeout_s=0.5))
    elapsed = time.monotonic() - t0
    assert outcome.error_kind == "timeout"
    assert outcome.http_status is None
    assert outcome.error is not None and "0.5" in outcome.error
    assert elapsed < 5


def test_silent_server_times_out(raw: RawServer) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{raw.ports['silent']}/", timeout_s=0.5))
    assert outcome.error_kind == "timeout"


def test_slow_drip_is_ended_by_the_wall_clock_deadline(target: Target) -> None:
    # Every read succeeds within 0.2 s, so only a deadline over the whole attempt ends it.
    t0 = time.monotonic()
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/drip", timeout_s=1.0))
    elapsed = time.monotonic() - t0
    assert outcome.error_kind == "timeout"
    assert outcome.http_status is None
    assert outcome.error is not None and "body" in outcome.error
    assert 0.9 <= elapsed < 1.0 + 3
    assert outcome.duration_ms < 4000


def test_oversized_response_is_capped(target: Target) -> None:
    capped = make_settings(TASKHUB_MAX_RESPONSE_BYTES="4096")
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/big"), capped)
    assert outcome.http_status == 200
    assert outcome.error is None
    assert outcome.response_excerpt is not None
    assert 500 <= len(outcome.response_excerpt) <= 1024
    assert set(outcome.response_excerpt) <= {"é", "\ufffd"}


def test_endless_response_stops_at_the_cap(target: Target) -> None:
    capped = make_settings(TASKHUB_MAX_RESPONSE_BYTES="100000")
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/endless", timeout_s=10), capped)
    assert outcome.http_status == 200
    assert outcome.response_excerpt == "y" * 1024
    assert outcome.duration_ms < 9000  # ended by the cap, not by the deadline


def test_zero_byte_cap(target: Target) -> None:
    capped = make_settings(TASKHUB_MAX_RESPONSE_BYTES="0")
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/status/503"), capped)
    assert (outcome.http_status, outcome.response_excerpt) == (503, "")


def test_nul_bytes_never_reach_the_excerpt(target: Target) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/nul"))
    assert outcome.response_excerpt == "a\ufffdb"


def test_redirect_is_reported_not_followed(target: Target) -> None:
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/redirect/{token}"))
    assert outcome.http_status == 302
    assert outcome.error == "HTTP 302"
    assert target.hits(f"{token}-followed") == []


# --------------------------------------------------------------------------- failures


def test_connection_refused() -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{free_port()}/"))
    assert outcome.error_kind == "connection"
    assert outcome.http_status is None
    assert outcome.response_excerpt is None


def test_dns_failure() -> None:
    outcome = fire_one(req("http://no-such-host.invalid/", timeout_s=10))
    assert outcome.error_kind in ("dns", "timeout")  # "timeout" only if no resolver answers
    assert outcome.error is not None


def test_server_closing_without_response(raw: RawServer) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{raw.ports['close']}/"))
    assert outcome.error_kind == "connection"


def test_garbage_response(raw: RawServer) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{raw.ports['garbage']}/"))
    assert outcome.error_kind == "connection"


def test_server_closing_mid_body(raw: RawServer) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{raw.ports['partial']}/"))
    assert outcome.error_kind == "connection"
    assert outcome.http_status is None


def test_tls_to_a_plain_http_port(target: Target) -> None:
    outcome = fire_one(req(f"https://127.0.0.1:{target.port}/status/200"))
    assert outcome.error_kind == "tls"


@pytest.fixture(scope="module")
def tls_port(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a self-signed certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, shutdown_timeout=1)
    loop_thread.run(runner.setup)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    loop_thread.run(site.start)
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop_thread.run(runner.cleanup)


def test_untrusted_certificate_is_a_tls_error(tls_port: int) -> None:
    outcome = fire_one(req(f"https://127.0.0.1:{tls_port}/"))
    assert outcome.error_kind == "tls"
    assert outcome.error is not None and "certificate" in outcome.error.lower()
    assert outcome.response_excerpt is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "127.0.0.1/no-scheme",
        "",
        "http://",
        "http:///path-only",
        "http://127.0.0.1:99999/",
        "http://[::1/",
        "gopher://127.0.0.1:70/",
        "http://[]@127.0.0.1/",
    ],
)
def test_not_an_http_url(url: str) -> None:
    outcome = fire_one(req(url))
    assert outcome.error_kind == "invalid_request"
    assert outcome.http_status is None


@pytest.mark.parametrize("method", ["", "GE T", "GET\r\nX-Injected: 1", "PÖST", "CONNECT"])
def test_invalid_method(target: Target, method: str) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/x", method=method))
    assert outcome.error_kind == "invalid_request"


def test_header_injection_is_refused(target: Target) -> None:
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}", headers={"X-A": "1\r\nX-Injected: 2"}
    )
    outcome = fire_one(request)
    assert outcome.error_kind == "invalid_request"
    assert outcome.error is not None and "X-Injected" not in outcome.error
    assert target.hits(token) == []


@pytest.mark.parametrize("name", ["", "X A", "X-A\r\nX-Injected", "X:A", "Ä"])
def test_invalid_header_name_is_refused(target: Target, name: str) -> None:
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}", headers={name: "v"}))
    assert outcome.error_kind == "invalid_request"
    assert target.hits(token) == []


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_timeout(target: Target, timeout_s: float) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/x", timeout_s=timeout_s))
    assert outcome.error_kind == "invalid_request"


def test_errors_never_echo_secrets() -> None:
    outcome = fire_one(
        req(
            f"http://user:hunter2@127.0.0.1:{free_port()}/path?token=sekrit",
            headers={"Authorization": "Bearer sekrit"},
        )
    )
    assert outcome.error is not None
    for secret in ("hunter2", "sekrit", "Bearer"):
        assert secret not in outcome.error


# --------------------------------------------------------------------------- SSRF


@pytest.mark.parametrize(
    ("host", "needle"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "metadata"),
        ("10.0.0.1", "private"),
        ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
        ("[fd00:ec2::254]", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("[fe80::1%25eth0]", "link-local"),
        ("172.16.0.1", "private address (RFC 1918)"),
        ("192.168.1.1", "private address (RFC 1918)"),
        ("100.64.0.1", "shared address space"),
        ("169.254.1.1", "link-local"),
        ("[fc00::1]", "unique-local"),
        ("[fd12:3456::1]", "unique-local"),
        ("[::]", "unspecified"),
        ("[::ffff:169.254.169.254]", "IPv4-mapped cloud metadata address"),
        ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
        ("[::ffff:100.64.0.1]", "IPv4-mapped private address (shared"),
    ],
)
def test_blocked_literals_are_refused_before_connecting(
    target: Target, loopback_only: ConnectLog, host: str, needle: str
) -> None:
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://{host}:{target.port}/echo/{token}"), GUARDED)
    assert outcome.error_kind == "blocked_address"
    assert outcome.error is not None and needle in outcome.error
    assert outcome.error.startswith("blocked_address: ")
    assert loopback_only.addresses == []
    assert target.hits(token) == []


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0177.0.0.1", "0x7f000001", "0x7f.1"])
def test_legacy_numeric_hosts_are_refused(
    target: Target, loopback_only: ConnectLog, host: str
) -> None:
    loopback_only.clear()
    outcome = fire_one(req(f"http://{host}:{target.port}/echo/x"), GUARDED)
    assert outcome.error_kind in ("invalid_request", "blocked_address")
    assert loopback_only.addresses == []


@pytest.mark.parametrize("host", ["localhost", "LocalHost"])
def test_host_names_resolving_to_blocked_addresses_are_refused(
    target: Target, loopback_only: ConnectLog, host: str
) -> None:
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://{host}:{target.port}/echo/{token}"), GUARDED)
    assert outcome.error_kind == "blocked_address", outcome.error
    assert outcome.error is not None and "loopback" in outcome.error
    assert "127.0.0.1" not in outcome.error  # resolved addresses are not disclosed
    assert loopback_only.addresses == []
    assert target.hits(token) == []


def test_localhost_is_allowed_when_private_targets_are(target: Target) -> None:
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://localhost:{target.port}/echo/{token}"), OPEN)
    assert outcome.http_status == 200
    assert len(target.hits(token)) == 1


class FakeResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def test_guarded_resolver_refuses_if_any_address_is_blocked() -> None:
    guarded = exchange._GuardedResolver(FakeResolver("93.184.216.34", "10.1.2.3"))
    with pytest.raises(exchange.BlockedAddressError) as info:
        asyncio.run(guarded.resolve("mixed.example", 80))
    assert "private" in str(info.value)
    assert "10.1.2.3" not in str(info.value)


def test_guarded_resolver_passes_public_answers_through() -> None:
    guarded = exchange._GuardedResolver(FakeResolver("93.184.216.34", "2606:2800:220:1::1"))
    results = asyncio.run(guarded.resolve("example.com", 443))
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize(
    ("address", "needle"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a9fe:a9fe", "NAT64"),
        ("2002:7f00:1::", "6to4"),
        ("::127.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "reserved"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("2001::1", "reserved"),
        ("100::1", "reserved"),
        ("4000::1", "reserved"),
    ],
)
def test_blocked_reason_refuses(address: str, needle: str) -> None:
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert needle in reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "192.169.0.1",
        "100.128.0.1",
        "2606:2800:220:1:248:1893:25c8:1946",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
    ],
)
def test_blocked_reason_allows_public(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_blocked_reason_ignores_ipv6_scope() -> None:
    assert blocked_reason(ipaddress.IPv6Address("fe80::1%eth0")) == "link-local address"


class MapResolver(AbstractResolver):
    """Answers host names from a table: fire-time tests never depend on real DNS."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return await FakeResolver(*self.table[host]).resolve(host, port, family)

    async def close(self) -> None:
        pass


_fresh_clients = iter(range(1000, 2000))


@pytest.fixture
def resolving(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings whose (new) HTTP client resolves host names from a table; a distinct
    ``TASKHUB_MAX_IN_FLIGHT`` makes :func:`fire` build a fresh client for them."""

    def make(table: dict[str, list[str]], **env: str) -> Settings:
        monkeypatch.setattr(exchange, "DefaultResolver", lambda: MapResolver(table))
        fresh = str(next(_fresh_clients))
        return make_settings(allow_private=False, TASKHUB_MAX_IN_FLIGHT=fresh, **env)

    return make


#: Every refused class, as the one address a host name resolves to.
RESOLVED_BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private address (RFC 1918)"),
    ("172.20.0.1", "private address (RFC 1918)"),
    ("192.168.0.10", "private address (RFC 1918)"),
    ("100.100.0.1", "shared address space"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.3.4", "link-local"),
    ("fe80::1", "link-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fd12::1", "unique-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
]


@pytest.mark.parametrize(("address", "needle"), RESOLVED_BLOCKED)
def test_a_host_name_resolving_to_any_blocked_class_is_refused_at_fire_time(
    target: Target,
    loopback_only: ConnectLog,
    resolving: Callable[..., Settings],
    address: str,
    needle: str,
) -> None:
    settings = resolving({"internal.example": [address]})
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://internal.example:{target.port}/echo/{token}"), settings)
    assert outcome.error_kind == "blocked_address"
    assert outcome.error is not None
    assert re.match(r"blocked_address: internal\.example resolves to an? ", outcome.error)
    assert needle in outcome.error
    assert address not in outcome.error.replace("internal.example", "")
    assert loopback_only.addresses == []
    assert target.hits(token) == []


def test_one_blocked_answer_among_public_ones_refuses_the_name(
    target: Target, loopback_only: ConnectLog, resolving: Callable[..., Settings]
) -> None:
    settings = resolving({"mixed.example": ["93.184.216.34", "169.254.169.254"]})
    loopback_only.clear()
    outcome = fire_one(req(f"http://mixed.example:{target.port}/echo/x"), settings)
    assert outcome.error_kind == "blocked_address"
    assert loopback_only.addresses == []


def test_allowed_networks_let_chosen_addresses_through_and_guard_the_rest(
    target: Target, loopback_only: ConnectLog, resolving: Callable[..., Settings]
) -> None:
    settings = resolving(
        {"svc.internal": ["127.0.0.1"], "meta.internal": ["169.254.169.254"]},
        TASKHUB_ALLOWED_TARGET_NETWORKS="127.0.0.0/8, ::1/128",
    )
    assert settings.address_policy.allowed_networks
    for url in (
        f"http://127.0.0.1:{target.port}/echo/{{}}",
        f"http://svc.internal:{target.port}/echo/{{}}",
    ):
        token = uuid.uuid4().hex
        outcome = fire_one(req(url.format(token)), settings)
        assert outcome.http_status == 200, outcome.error
        assert len(target.hits(token)) == 1
    loopback_only.clear()
    for url in (
        f"http://10.0.0.1:{target.port}/",
        f"http://169.254.169.254:{target.port}/",
        f"http://meta.internal:{target.port}/",
    ):
        outcome = fire_one(req(url), settings)
        assert outcome.error_kind == "blocked_address", url
    assert loopback_only.addresses == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254:{port}/latest/meta-data/",
        "http://[fd00:ec2::254]:{port}/",
        "http://[::ffff:169.254.170.2]:{port}/",
        "http://\uff11\uff16\uff19\u3002254\u3002169\u3002254:{port}/",
        "http://meta.internal:{port}/",
        "http://ecs.internal:{port}/",
    ],
)
def test_metadata_addresses_stay_closed_with_private_targets_allowed(
    target: Target,
    loopback_only: ConnectLog,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    table = {"meta.internal": ["169.254.169.254"], "ecs.internal": ["127.0.0.1", "169.254.170.2"]}
    monkeypatch.setattr(exchange, "DefaultResolver", lambda: MapResolver(table))
    settings = make_settings(TASKHUB_MAX_IN_FLIGHT=str(next(_fresh_clients)))
    assert settings.allow_private_targets
    loopback_only.clear()
    outcome = fire_one(req(url.format(port=target.port)), settings)
    assert outcome.error_kind == "blocked_address", outcome.error
    assert outcome.error is not None and "cloud metadata address" in outcome.error
    assert loopback_only.addresses == []
    # Named exactly, the address opens (here the resolver's answer, to show the rule).
    named = make_settings(
        TASKHUB_MAX_IN_FLIGHT=str(next(_fresh_clients)),
        TASKHUB_ALLOWED_TARGET_NETWORKS="169.254.169.254/32",
    )
    table["meta.internal"] = ["127.0.0.1"]
    token = uuid.uuid4().hex
    opened = fire_one(req(f"http://meta.internal:{target.port}/echo/{token}"), named)
    assert opened.http_status == 200 and len(target.hits(token)) == 1


def test_a_port_outside_the_allow_list_is_refused_before_connecting(
    target: Target, loopback_only: ConnectLog
) -> None:
    settings = make_settings(TASKHUB_ALLOWED_TARGET_PORTS="443")
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}"), settings)
    assert outcome.error_kind == "blocked_address"
    assert outcome.error == (
        f"blocked_address: port {target.port} is not allowed (TASKHUB_ALLOWED_TARGET_PORTS=443)"
    )
    assert loopback_only.addresses == [] and target.hits(token) == []
    allowed = make_settings(TASKHUB_ALLOWED_TARGET_PORTS=f"443,{target.port}")
    assert fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}"), allowed).http_status == 200


@pytest.mark.parametrize(
    "to",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/",
        "http://localhost/",
        "http://10.0.0.1/",
    ],
)
def test_a_redirect_to_a_blocked_address_is_reported_never_followed(
    target: Target, loopback_only: ConnectLog, to: str
) -> None:
    settings = make_settings(allow_private=False, TASKHUB_ALLOWED_TARGET_NETWORKS="127.0.0.0/8")
    loopback_only.clear()
    outcome = fire_one(
        req(f"http://127.0.0.1:{target.port}/redirect-away?to={to}", timeout_s=5), settings
    )
    assert outcome.http_status == 302
    assert outcome.error == "HTTP 302"
    assert set(loopback_only.addresses) <= {"127.0.0.1"}


# --------------------------------------------------------------------------- credentials

SEKRIT = "Bearer sekrit-0123456789-wxyz"


def test_sealed_headers_travel_sealed_and_are_sent_unsealed(target: Target) -> None:
    sealer = sealer_for(OPEN)
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        headers={"X-Team": "billing"},
        sealed_headers=sealer.seal_json({"Authorization": SEKRIT}),
    )
    message = json.dumps(request.to_message())
    assert "sekrit" not in message
    outcome = fire_one(TriggerRequest.from_message(json.loads(message)))
    assert outcome.http_status == 200
    [seen] = target.hits(token)
    headers = dict(seen.headers)
    assert headers["Authorization"] == SEKRIT and headers["X-Team"] == "billing"


@pytest.mark.parametrize("pad", [0, 500, 900])
def test_an_echoed_credential_never_reaches_the_excerpt(target: Target, pad: int) -> None:
    """Wherever the echo puts it, even across the excerpt's cut, no credential value of
    the request (sealed headers, a plain header named like one, signing secrets) is in
    the outcome: it goes to the result backend, the database and the API from here."""
    signing_secret = new_secret()
    sealer = sealer_for(OPEN)
    sealed = {"Authorization": SEKRIT, "X-Access-Token": "xat-0123456789abcdef"}
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad={pad}",
        headers={"X-Team": "billing", "Private-Token": "glpat-legacy-plain-0123"},
        sealed_headers=sealer.seal_json(sealed),
        sealed_signing_secrets=(sealer.seal(signing_secret),),
    )
    outcome = fire_one(request)
    assert outcome.http_status == 200
    excerpt = outcome.response_excerpt
    assert excerpt is not None and len(excerpt.encode()) <= exchange.EXCERPT_BYTES
    message = json.dumps(outcome.to_message())
    for value in ("sekrit-0123456789-wxyz", "xat-0123", "glpat-legacy", signing_secret[6:14]):
        assert value not in message
    if pad < 400:  # the whole echo fits: the rest of it is kept as it was
        assert '"Authorization": "[redacted]"' in excerpt
        assert '"X-Team": "billing"' in excerpt


@pytest.mark.parametrize("before_cut", [1, 4, 8, 12, 20, 28, 29, 30])
def test_a_credential_cut_by_the_excerpt_leaves_no_part_of_itself(
    target: Target, before_cut: int
) -> None:
    """The value starts ``before_cut`` bytes before the excerpt's end."""
    pad = exchange.EXCERPT_BYTES - before_cut
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad={pad}&only=Authorization",
        sealed_headers=sealer_for(OPEN).seal_json({"Authorization": SEKRIT}),
    )
    excerpt = fire_one(request).response_excerpt
    assert excerpt is not None and excerpt.startswith("." * pad)
    shown = excerpt[pad:]
    assert len(shown) <= before_cut
    credential = SEKRIT.removeprefix("Bearer ")
    assert not any(credential[:n] in shown for n in range(4, len(credential) + 1)), shown


def test_a_credential_cut_by_the_response_cap_leaves_no_part_of_itself(target: Target) -> None:
    settings = make_settings(TASKHUB_MAX_RESPONSE_BYTES="110")
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad=100&only=Authorization",
        sealed_headers=sealer_for(OPEN).seal_json({"Authorization": SEKRIT}),
    )
    excerpt = fire_one(request, settings).response_excerpt
    assert excerpt == "." * 100 + "[redacted]"  # "Bearer sek", read up to the cap


def test_credentials_that_cannot_be_unsealed_fail_clearly_without_sending(
    target: Target,
) -> None:
    foreign = Sealer((generate_key(),), "elsewhere").seal_json({"Authorization": SEKRIT})
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}", sealed_headers=foreign))
    assert outcome.error_kind == "configuration"
    assert outcome.error is not None and "TASKHUB_ENCRYPTION_KEYS" in outcome.error
    assert "sekrit" not in outcome.error and foreign not in outcome.error
    assert target.hits(token) == []


def test_errors_never_echo_sealed_credentials() -> None:
    sealed = sealer_for(OPEN).seal_json({"Authorization": SEKRIT, "Cookie": "session=sekrit"})
    outcome = fire_one(req(f"http://127.0.0.1:{free_port()}/", sealed_headers=sealed))
    assert outcome.error_kind == "connection"
    assert outcome.error is not None and "sekrit" not in outcome.error


def test_the_signature_is_made_at_send_time_over_the_exact_body(target: Target) -> None:
    secret = new_secret()
    token = uuid.uuid4().hex
    body = '{"kind": "nightly", "é": 1}'
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        method="POST",
        body=body,
        headers={"X-Taskhub-Signature": "t=1,v1=00"},  # a task's own cannot forge it
        sealed_signing_secrets=(sealer_for(OPEN).seal(secret),),
    )
    assert secret not in json.dumps(request.to_message())
    before = int(time.time())
    outcome = fire_one(TriggerRequest.from_message(request.to_message()))
    after = int(time.time())
    assert outcome.http_status == 200
    [seen] = target.hits(token)
    signatures = [v for k, v in seen.headers if k.lower() == "x-taskhub-signature"]
    assert len(signatures) == 1
    assert verify(signatures[0], seen.body, [secret])
    assert seen.body == body.encode()
    assert before <= int(signatures[0].split(",")[0][2:]) <= after


def test_no_signing_secrets_no_signature(target: Target) -> None:
    token = uuid.uuid4().hex
    fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}"))
    [seen] = target.hits(token)
    assert all(k.lower() != "x-taskhub-signature" for k, _ in seen.headers)


# --------------------------------------------------------------------------- pure parts

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-5", None),
        ("soon", None),
        ("1e3", None),
        ("9" * 400, None),
        ("Sun, 22 Nov 2026 09:01:00 GMT", 60.0),
        ("Sunday, 22-Nov-26 09:02:00 GMT", 120.0),
        ("Sun Nov 22 09:00:30 2026", 30.0),
        ("Sun, 22 Nov 2026 08:00:00 GMT", 0.0),  # in the past: never negative
        ("Sun, 22 Nov 2026 10:00:00 +0100", 0.0),
        ("Sun, 32 Nov 2026 09:01:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_naive_now_is_utc() -> None:
    assert parse_retry_after("Sun, 22 Nov 2026 09:01:00 GMT", NOW.replace(tzinfo=None)) == 60.0


def test_attempt_headers() -> None:
    request = req(
        "http://x.invalid/",
        headers={"X-A": "1", "x-taskhub-task-id": "forged", "Content-Length": "999"},
        attempt=3,
        scheduled_for=datetime(2026, 11, 22, 17, 0, tzinfo=UTC),
    )
    assert attempt_headers(request) == {
        "X-A": "1",
        "Idempotency-Key": "idem-41",
        "X-Taskhub-Task-Id": "task-7",
        "X-Taskhub-Scheduled-For": "2026-11-22T17:00:00Z",
        "X-Taskhub-Attempt": "3",
    }


def test_scheduled_for_header_is_utc() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 22, 17, 0, 0, 500000, tzinfo=ZoneInfo("Asia/Taipei"))
    headers = attempt_headers(req("http://x.invalid/", scheduled_for=local))
    assert headers["X-Taskhub-Scheduled-For"] == "2026-11-22T09:00:00.500000Z"


def test_request_message_round_trip() -> None:
    request = req(
        "https://example.invalid/hook",
        method="POST",
        headers={"X-Team": "billing"},
        body='{"a": 1}',
        timeout_s=12.5,
        tenant="acme",
    )
    message = request.to_message()
    assert message["tenant"] == "acme"
    assert json.loads(json.dumps(message)) == message
    assert message["scheduled_for"] == "2026-11-22T09:00:00+00:00"
    assert TriggerRequest.from_message(json.loads(json.dumps(message))) == request


def test_request_message_writes_every_instant_in_utc() -> None:
    from zoneinfo import ZoneInfo

    utc = datetime(2026, 11, 22, 9, 0, 0, 250000, tzinfo=UTC)
    expected = "2026-11-22T09:00:00.250000+00:00"
    for when in (
        utc,
        utc.astimezone(ZoneInfo("Asia/Taipei")),
        utc.astimezone(ZoneInfo("UTC")),  # zero offset, another tzinfo object
        utc.replace(tzinfo=None),  # naive: taken as UTC
    ):
        message = req(
            "http://x.invalid/", scheduled_for=when, send_by=when, not_before=when
        ).to_message()
        assert message["scheduled_for"] == message["send_by"] == expected
        assert message["not_before"] == expected


def test_request_copies_its_headers() -> None:
    headers = {"X-A": "1"}
    request = req("http://x.invalid/", headers=headers)
    headers["X-A"] = "2"
    assert request.headers == {"X-A": "1"}


def test_outcome_message_round_trip() -> None:
    outcome = TriggerOutcome(
        execution_id=5,
        attempt=2,
        started_at=datetime(2026, 11, 22, 9, 0, 1, 250000, tzinfo=UTC),
        duration_ms=37,
        http_status=429,
        error_kind=None,
        error="HTTP 429",
        retry_after_s=7.0,
        response_excerpt="slow down",
    )
    message = outcome.to_message()
    assert json.loads(json.dumps(message)) == message
    assert TriggerOutcome.from_message(json.loads(json.dumps(message))) == outcome
    failed = TriggerOutcome(5, 1, NOW, 5000, None, "timeout", "no response", None, None)
    assert TriggerOutcome.from_message(failed.to_message()) == failed


def test_fired_outcome_round_trips(target: Target) -> None:
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/status/503"))
    message = json.loads(json.dumps(outcome.to_message()))
    assert TriggerOutcome.from_message(message) == outcome


# --------------------------------------------------------------------------- concurrency


def test_empty_batch() -> None:
    assert fire([], OPEN) == []


def test_two_hundred_requests_in_one_batch(target: Target) -> None:
    token = uuid.uuid4().hex
    requests = [
        req(f"http://127.0.0.1:{target.port}/echo/{token}", execution_id=i) for i in range(200)
    ]
    outcomes = fire(requests, OPEN)
    assert [o.execution_id for o in outcomes] == list(range(200))
    assert all(o.http_status == 200 for o in outcomes), {o.error for o in outcomes}
    assert len(target.hits(token)) == 200


def test_mixed_batch_keeps_order_and_isolates_failures(target: Target) -> None:
    base = f"http://127.0.0.1:{target.port}"
    requests = [
        req(f"{base}/status/200", execution_id=1),
        req(f"{base}/sleep/10", execution_id=2, timeout_s=0.5),
        req("ftp://nope/", execution_id=3),
        req(f"{base}/status/503", execution_id=4),
        req(f"http://127.0.0.1:{free_port()}/", execution_id=5),
    ]
    outcomes = fire(requests, OPEN)
    assert [o.execution_id for o in outcomes] == [1, 2, 3, 4, 5]
    assert [o.http_status for o in outcomes] == [200, None, None, 503, None]
    assert [o.error_kind for o in outcomes] == [
        None,
        "timeout",
        "invalid_request",
        None,
        "connection",
    ]
    assert outcomes[0].duration_ms < 3000  # a slow neighbour does not delay the others


def test_fire_from_eight_threads_at_once(target: Target) -> None:
    token = uuid.uuid4().hex

    def batch(n: int) -> list[TriggerOutcome]:
        requests = [
            req(f"http://127.0.0.1:{target.port}/echo/{token}", execution_id=n * 100 + i)
            for i in range(25)
        ]
        return fire(requests, OPEN)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(batch, range(8)))
    for n, outcomes in enumerate(results):
        assert [o.execution_id for o in outcomes] == [n * 100 + i for i in range(25)]
        assert all(o.http_status == 200 for o in outcomes)
    assert len(target.hits(token)) == 200


def test_connector_limit_bounds_in_flight_without_blaming_targets(target: Target) -> None:
    # 2 slots, 6 requests of 0.3 s each: they queue for a slot, and waiting is not timed.
    narrow = lanes_only(TASKHUB_MAX_IN_FLIGHT="2", TASKHUB_MAX_SLOW_IN_FLIGHT="0")
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.3", execution_id=i, timeout_s=0.8)
        for i in range(6)
    ]
    t0 = time.monotonic()
    outcomes = fire(requests, narrow)
    elapsed = time.monotonic() - t0
    assert all(o.http_status == 200 for o in outcomes), [o.error for o in outcomes]
    assert elapsed >= 0.85  # three waves of two
    assert all(o.duration_ms < 800 for o in outcomes)


def _most_at_once(outcomes: list[TriggerOutcome]) -> int:
    """The most attempts in flight at one instant, from the attempts' own clocks (an
    end is taken 1 ms early: ``duration_ms`` is rounded, the next start follows it)."""
    edges: list[tuple[float, int]] = []
    for o in outcomes:
        start = o.started_at.timestamp()
        edges += [(start, 1), (start + o.duration_ms / 1000 - 0.001, -1)]
    now = most = 0
    for _, step in sorted(edges):
        now += step
        most = max(most, now)
    return most


def test_hanging_requests_move_to_the_slow_lane_and_free_the_fast_one(target: Target) -> None:
    # One fast slot, both hung requests first in the batch: without the slow lane the
    # quick ones would wait for the hung ones' timeouts.
    lanes = make_settings(
        TASKHUB_MAX_IN_FLIGHT="1",
        TASKHUB_MAX_SLOW_IN_FLIGHT="10",
        TASKHUB_SLOW_AFTER_SECONDS="0.05",
    )
    base = f"http://127.0.0.1:{target.port}"
    requests = [req(f"{base}/sleep/10", execution_id=i, timeout_s=2) for i in range(2)]
    requests += [req(f"{base}/status/204", execution_id=10 + i) for i in range(4)]
    outcomes = fire(requests, lanes)
    hung, quick = outcomes[:2], outcomes[2:]
    assert [o.error_kind for o in hung] == ["timeout", "timeout"]
    assert [o.http_status for o in quick] == [204] * 4
    hung_end = min(o.started_at.timestamp() + o.duration_ms / 1000 for o in hung)
    assert all(o.started_at.timestamp() < hung_end for o in quick)
    assert all(o.duration_ms >= 2000 for o in hung)  # their clocks ran in the slow lane too


def test_a_full_slow_lane_keeps_attempts_in_the_fast_one(target: Target) -> None:
    lanes = lanes_only(
        TASKHUB_MAX_IN_FLIGHT="1", TASKHUB_MAX_SLOW_IN_FLIGHT="1", TASKHUB_SLOW_AFTER_SECONDS="0.05"
    )
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.4", execution_id=i, timeout_s=2)
        for i in range(4)
    ]
    outcomes = fire(requests, lanes)
    assert [o.http_status for o in outcomes] == [200] * 4
    assert _most_at_once(outcomes) == 2  # one slow, one fast, never more


def test_no_slow_lane_means_one_limit(target: Target) -> None:
    single = lanes_only(TASKHUB_MAX_IN_FLIGHT="2", TASKHUB_MAX_SLOW_IN_FLIGHT="0")
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.3", execution_id=i, timeout_s=2)
        for i in range(5)
    ]
    outcomes = fire(requests, single)
    assert [o.http_status for o in outcomes] == [200] * 5
    assert _most_at_once(outcomes) == 2


#: 4 fast and 8 slow slots; a host or tenant holds at most 1 fast (25 %) and 4 slow (50 %).
SHARED = make_settings(
    TASKHUB_MAX_IN_FLIGHT="4",
    TASKHUB_MAX_SLOW_IN_FLIGHT="8",
    TASKHUB_SLOW_AFTER_SECONDS="0.05",
    TASKHUB_FAST_LANE_SHARE_PERCENT="25",
    TASKHUB_SLOW_LANE_SHARE_PERCENT="50",
)


def test_a_hung_tenant_holds_its_share_and_the_others_are_not_delayed(target: Target) -> None:
    # 12 requests of one tenant to a host that does not answer in time: 4 move to the
    # slow lane, 1 stays stuck in the fast one, the other 7 are not sent (throttled).
    # Then another tenant's requests, to another host, find the fast lane open.
    hung = [
        req(f"http://127.0.0.1:{target.port}/sleep/10", execution_id=i, timeout_s=1.5, tenant="a")
        for i in range(12)
    ]
    later = datetime.now(UTC) + timedelta(seconds=0.5)  # once the hung ones hold their share
    quick = [
        req(
            f"http://localhost:{target.port}/status/204",
            execution_id=100 + i,
            tenant="b",
            not_before=later,
        )
        for i in range(6)
    ]
    outcomes = fire(hung + quick, SHARED)
    by_id = {o.execution_id: o for o in outcomes}
    attempted = [by_id[i] for i in range(12) if by_id[i].error_kind == "timeout"]
    throttled = [by_id[i] for i in range(12) if by_id[i].error_kind == "throttled"]
    assert (len(attempted), len(throttled)) == (5, 7), [o.error_kind for o in outcomes]
    assert all(o.duration_ms == 0 and o.retry_after_s == 1.5 for o in throttled)
    assert all(TriggerOutcome.from_message(o.to_message()) == o for o in throttled)
    first_hung_end = min(o.started_at.timestamp() + o.duration_ms / 1000 for o in attempted)
    for i in range(6):
        assert by_id[100 + i].http_status == 204
        assert by_id[100 + i].started_at.timestamp() < first_hung_end  # not behind them


def test_a_tenant_holds_its_share_across_hosts(target: Target) -> None:
    hosts = ["127.0.0.1", "localhost"]
    hung = [
        req(
            f"http://{hosts[i % 2]}:{target.port}/sleep/10",
            execution_id=i,
            timeout_s=1,
            tenant="a",
        )
        for i in range(12)
    ]
    outcomes = fire(hung, SHARED)
    kinds = Counter(o.error_kind for o in outcomes)
    assert kinds == {"timeout": 5, "throttled": 7}  # each host alone would allow 5


def test_without_shares_one_host_may_hold_every_slot(target: Target) -> None:
    unshared = replace(SHARED, fast_lane_share_percent=100.0, slow_lane_share_percent=100.0)
    hung = [
        req(f"http://127.0.0.1:{target.port}/sleep/10", execution_id=i, timeout_s=1, tenant="a")
        for i in range(12)
    ]
    outcomes = fire(hung, unshared)
    assert Counter(o.error_kind for o in outcomes) == {"timeout": 12}  # 12 = 4 fast + 8 slow


def test_a_quick_host_alone_may_use_the_whole_fast_lane(target: Target) -> None:
    # Young attempts that end quickly never count against the host's share: 40 quick
    # requests to one host are all sent, 4 at a time (not 1, the fast share).
    quick = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.02", execution_id=i, tenant="a")
        for i in range(40)
    ]
    outcomes = fire(quick, SHARED)
    assert [o.http_status for o in outcomes] == [200] * 40
    assert _most_at_once(outcomes) > 1


def test_a_batch_starts_a_task_only_for_a_request_that_has_a_slot(target: Target) -> None:
    # 40 requests, 2 fast slots, no slow lane: the batch and the 2 admitted requests are
    # tasks on the loop (3), never a task per request (41).
    narrow = lanes_only(TASKHUB_MAX_IN_FLIGHT="2", TASKHUB_MAX_SLOW_IN_FLIGHT="0")
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.05", execution_id=i, timeout_s=2)
        for i in range(40)
    ]
    fire_one(req(f"http://127.0.0.1:{target.port}/status/204"), narrow)  # the loop exists
    loop = firing._get_runtime().loop

    async def count_tasks() -> int:
        return len(asyncio.all_tasks()) - 1  # not this one

    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(fire, requests, narrow)
        seen = []
        while not batch.done():
            seen.append(asyncio.run_coroutine_threadsafe(count_tasks(), loop).result(5))
            time.sleep(0.02)
        outcomes = batch.result()
    assert [o.execution_id for o in outcomes] == list(range(40))
    assert all(o.http_status == 200 for o in outcomes)
    assert max(seen) == 3  # sampled while the batch ran, and never more


def test_a_batch_starts_its_requests_in_send_time_order(target: Target) -> None:
    single = make_settings(TASKHUB_MAX_IN_FLIGHT="1", TASKHUB_MAX_SLOW_IN_FLIGHT="0")
    now = datetime.now(UTC)
    offsets_s = [0.3, 0.0, 0.2, 0.1]
    requests = [
        req(
            f"http://127.0.0.1:{target.port}/status/204",
            execution_id=i,
            not_before=now + timedelta(seconds=offset),
        )
        for i, offset in enumerate(offsets_s)
    ]
    outcomes = fire(requests, single)
    assert [o.execution_id for o in outcomes] == [0, 1, 2, 3]  # in the batch's order
    started = sorted(outcomes, key=lambda o: o.started_at)
    assert [o.execution_id for o in started] == [1, 3, 2, 0]
    for o, offset in zip(outcomes, offsets_s, strict=True):
        assert o.started_at >= now + timedelta(seconds=offset)


def test_a_batch_sends_only_what_its_clearance_lets_go_one_call_per_send_time(
    target: Target,
) -> None:
    now = datetime.now(UTC)
    token = uuid.uuid4().hex
    offsets_s = [0.0, 0.0, 0.3, 0.3, 0.6]  # three send times: three clearances, not five
    requests = [
        req(
            f"http://127.0.0.1:{target.port}/echo/{token}",
            execution_id=i,
            idempotency_key=f"key-{i}",
            not_before=now + timedelta(seconds=offset),
        )
        for i, offset in enumerate(offsets_s)
    ]
    asked: list[tuple[datetime, list[int]]] = []

    def clear(batch: Any) -> set[int]:
        asked.append((datetime.now(UTC), [r.execution_id for r in batch]))
        return {r.execution_id for r in batch} - {1, 3}  # withdrawn meanwhile

    outcomes = fire(requests, OPEN, clear=clear)
    assert [o.execution_id for o in outcomes] == [0, 2, 4]
    assert all(o.http_status == 200 for o in outcomes)
    sent = {dict(seen.headers)["Idempotency-Key"] for seen in target.hits(token)}
    assert sent == {"key-0", "key-2", "key-4"}
    assert [ids for _, ids in asked] == [[0, 1], [2, 3], [4]]
    for (when, ids), offset in zip(asked, (0.0, 0.3, 0.6), strict=True):
        assert when >= now + timedelta(seconds=offset), ids  # asked at the send time


def test_batches_of_one_process_due_together_share_their_clearance(target: Target) -> None:
    """Eight messages held for one send time: at most two calls (the first, and one for
    every batch that asked while it ran), not eight, and each batch gets its own answer."""
    not_before = datetime.now(UTC) + timedelta(seconds=0.5)
    token = uuid.uuid4().hex
    batches = [
        [
            req(
                f"http://127.0.0.1:{target.port}/echo/{token}",
                execution_id=10 * b + i,
                idempotency_key=f"key-{b}-{i}",
                not_before=not_before,
            )
            for i in range(3)
        ]
        for b in range(8)
    ]
    asked: list[list[int]] = []

    def clear(batch: Any) -> set[int]:
        asked.append(sorted(r.execution_id for r in batch))
        time.sleep(0.2)  # a database at work: the late wakers gather meanwhile
        return {r.execution_id for r in batch if r.execution_id % 10 != 1}

    with ThreadPoolExecutor(len(batches)) as pool:
        results = list(pool.map(lambda b: fire(b, OPEN, clear=clear), batches))
    assert 1 <= len(asked) <= 2, asked
    assert sorted(i for ids in asked for i in ids) == sorted(
        r.execution_id for b in batches for r in b
    )
    for b, outcomes in enumerate(results):
        assert [o.execution_id for o in outcomes] == [10 * b, 10 * b + 2]
    assert len(target.hits(token)) == 16


def test_a_clearance_that_fails_sends_nothing(target: Target) -> None:
    token = uuid.uuid4().hex
    requests = [req(f"http://127.0.0.1:{target.port}/echo/{token}", execution_id=i) for i in (1, 2)]

    def unreachable(batch: Any) -> set[int]:
        raise ConnectionError("the database is away")

    assert fire(requests, OPEN, clear=unreachable) == []
    assert target.hits(token) == []


def test_fire_works_again_after_shutdown(target: Target) -> None:
    url = f"http://127.0.0.1:{target.port}/status/204"
    assert fire_one(req(url)).http_status == 204
    firing.shutdown()
    assert fire_one(req(url)).http_status == 204


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_loop(target: Target) -> None:
    url = f"http://127.0.0.1:{target.port}/status/201"
    assert fire_one(req(url)).http_status == 201  # the parent's loop exists before the fork
    parent_loop = firing._get_runtime().loop
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any pytest machinery
        code = 1
        try:
            [outcome] = fire([req(url)], OPEN)
            runtime = firing._get_runtime()
            fresh = runtime.loop is not parent_loop and runtime.pid == os.getpid()
            os.write(write_fd, f"{outcome.http_status} {fresh}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "201 True"
    assert fire_one(req(url)).http_status == 201  # the parent's loop is untouched


# --------------------------------------------------------------------------- never raises

SAFE_HOSTS = [
    "127.0.0.1",
    "[::1]",
    "localhost",
    "10.0.0.1",
    "169.254.169.254",
    "[fd00:ec2::254]",
    "no-such-host.invalid",
    "",
    "[::1",
    "127.1",
    "[fe80::1%25lo]",
    "%00",
    "a..b.invalid",
]


def _is_safe(url: str) -> bool:
    """True if firing ``url`` under GUARDED settings cannot leave the machine."""
    try:
        host = URL(url).host
    except Exception:
        return True
    if not host:
        return True
    if host.rstrip(".").endswith(".invalid") or host.rstrip(".").lower() == "localhost":
        return True
    try:
        return blocked_reason(ipaddress.ip_address(host)) is not None
    except ValueError:
        return not any(c.isalnum() for c in host)  # anything else might resolve somewhere


@st.composite
def junk_urls(draw: st.DrawFn) -> str:
    structured = draw(st.booleans())
    if not structured:
        return draw(st.text(max_size=40))
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "", "ht tp", "http:"]))
    host = draw(st.sampled_from(SAFE_HOSTS))
    port = draw(st.sampled_from(["", ":0", ":1", ":65535", ":99999", ":abc", ":"]))
    rest = draw(st.text(max_size=20))
    return f"{scheme}://{host}{port}/{rest}"


@hyp_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    url=junk_urls(),
    method=st.one_of(st.sampled_from(["GET", "POST", "get", "DELETE"]), st.text(max_size=10)),
    headers=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    body=st.one_of(st.none(), st.text(max_size=50)),
)
def test_fire_never_raises(
    url: str, method: str, headers: dict[str, str], body: str | None
) -> None:
    assume(_is_safe(url))
    request = req(url, method=method, headers=headers, body=body, timeout_s=2.0)
    outcome = fire_one(request, GUARDED)
    assert outcome.http_status is None
    assert outcome.error_kind in ERROR_KINDS
    assert outcome.error is not None
    assert not outcome.error.startswith("unexpected"), outcome.error


def test_a_request_published_ahead_is_held_until_its_send_time(target: Target) -> None:
    token = uuid.uuid4().hex
    not_before = datetime.now(UTC) + timedelta(seconds=0.6)
    request = req(f"http://127.0.0.1:{target.port}/echo/{token}", not_before=not_before)
    assert TriggerRequest.from_message(request.to_message()) == request
    outcome = fire_one(request)
    assert outcome.http_status == 200
    assert outcome.started_at >= not_before
    assert len(target.hits(token)) == 1


def test_a_host_with_no_slot_in_time_is_throttled_not_sent(target: Target) -> None:
    from taskhub.core.host_limits import HostLimit
    from taskhub.engine.flow_control import LocalLimiter

    limiter = LocalLimiter()
    limited = replace(
        OPEN, host_limits=(("127.0.0.1", HostLimit(1, None)),), flow_control_max_wait_s=0.3
    )
    token = uuid.uuid4().hex
    slow = req(f"http://127.0.0.1:{target.port}/sleep/1", execution_id=1)
    other = req(f"http://127.0.0.1:{target.port}/echo/{token}", execution_id=2)
    elsewhere = req(f"http://localhost:{target.port}/echo/{token}", execution_id=3)
    outcomes = fire([slow, other, elsewhere], limited, limiter)
    kinds = sorted((o.execution_id, o.error_kind or str(o.http_status)) for o in outcomes)
    # One of the two 127.0.0.1 requests got the only slot; the other was not sent.
    assert ("throttled" in {k for _, k in kinds[:2]}) and kinds[2] == (3, "200")
    throttled = next(o for o in outcomes if o.error_kind == "throttled")
    assert throttled.retry_after_s is not None and throttled.retry_after_s >= 0.05
    assert TriggerOutcome.from_message(throttled.to_message()) == throttled
