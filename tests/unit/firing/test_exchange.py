"""One attempt over HTTP (``taskhub.engine.exchange``): responses, failures, and the
headers an attempt sends, against real sockets on loopback (see ``conftest``)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from taskhub.engine.exchange import attempt_headers, make_attempt_blocking, parse_retry_after
from tests.support.messages import req
from tests.support.processes import free_port
from tests.unit.firing.support import (
    GUARDED,
    LoopThread,
    RawServer,
    Seen,
    Target,
    fire_one,
    make_settings,
)

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


def test_a_blocking_attempt_from_a_plain_thread_is_a_guarded_attempt(target: Target) -> None:
    token = uuid.uuid4().hex
    request = req(f"http://127.0.0.1:{target.port}/echo/{token}", method="POST", body="{}")
    outcome = make_attempt_blocking(request, make_settings())
    assert outcome.http_status == 200
    assert ("Content-Type", "application/json") in target.hits(token)[0].headers
    refused = make_attempt_blocking(request, GUARDED)
    assert refused.error_kind == "blocked_address"
