"""``taskhub.engine.firing``: batches, send-time order and holds, clearance, flow-control
waits, the per-process loop (threads, fork, shutdown), and that :func:`fire` never raises."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from yarl import URL

from taskhub.core.addresses import blocked_reason
from taskhub.core.messages import ERROR_KINDS, TriggerOutcome, TriggerRequest
from taskhub.core.sealing import sealer_for
from taskhub.core.signing import new_secret, verify
from taskhub.engine import clearances, exchange, firing
from taskhub.engine.firing import fire
from tests.support.messages import req
from tests.support.processes import free_port
from tests.unit.firing.support import (
    GUARDED,
    OPEN,
    Target,
    fire_one,
    lanes_only,
    make_settings,
)


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


def _held_batches(port: int, token: str, not_before: datetime) -> list[list[TriggerRequest]]:
    """Eight messages of three requests held for one send time (ids ``10 * b + i``)."""
    return [
        [
            req(
                f"http://127.0.0.1:{port}/echo/{token}",
                execution_id=10 * b + i,
                idempotency_key=f"key-{b}-{i}",
                not_before=not_before,
            )
            for i in range(3)
        ]
        for b in range(8)
    ]


def test_batches_of_one_process_due_together_share_their_clearance(target: Target) -> None:
    """Eight messages held for one send time: at most two calls (the first, and one for
    every batch that asked while it ran), not eight, and each batch gets its own answer."""
    not_before = datetime.now(UTC) + timedelta(seconds=0.5)
    token = uuid.uuid4().hex
    batches = _held_batches(target.port, token, not_before)
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


def test_a_large_fire_time_is_cleared_in_calls_of_at_most_the_limit_the_first_sent_meanwhile(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight batches of three due together, at most six cleared a call: every request is
    asked about once, no call asks more than six, and the batches cleared first are at
    the target before the last call has answered."""
    monkeypatch.setattr(clearances, "CLEAR_MAX_REQUESTS", 6)
    not_before = datetime.now(UTC) + timedelta(seconds=0.5)
    token = uuid.uuid4().hex
    batches = _held_batches(target.port, token, not_before)
    asked: list[list[int]] = []
    at_the_target: list[int] = []

    def clear(batch: Any) -> set[int]:
        asked.append(sorted(r.execution_id for r in batch))
        at_the_target.append(len(target.hits(token)))
        time.sleep(0.3)  # a database at work
        return {r.execution_id for r in batch}

    with ThreadPoolExecutor(len(batches)) as pool:
        results = list(pool.map(lambda b: fire(b, OPEN, clear=clear), batches))
    assert all(len(ids) <= 6 for ids in asked), asked
    assert sorted(i for ids in asked for i in ids) == sorted(
        r.execution_id for b in batches for r in b
    )
    assert len(asked) >= 4
    assert at_the_target[0] == 0 and at_the_target[-1] >= len(asked[0])
    assert all(len(outcomes) == 3 for outcomes in results)
    assert len(target.hits(token)) == 24


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


def _prepared_at(monkeypatch: pytest.MonkeyPatch) -> dict[int, datetime]:
    """When ``exchange.prepare`` made each execution's request ready."""
    times: dict[int, datetime] = {}
    prepare = exchange.prepare

    def recording(
        pool: Any, request: TriggerRequest, settings: Any
    ) -> exchange.Prepared | exchange.Refused:
        times[request.execution_id] = datetime.now(UTC)
        return prepare(pool, request, settings)

    monkeypatch.setattr(exchange, "prepare", recording)
    return times


def test_a_batch_held_ahead_is_prepared_before_its_send_time_and_sent_as_prepared(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made ready while held, a request is sent exactly as one made ready at its send
    time: the same headers (its credential unsealed, taskhub's own) and body."""
    token = uuid.uuid4().hex
    sealed = sealer_for(OPEN).seal_json({"Authorization": "Bearer held-ahead"})

    def request(execution_id: int, not_before: datetime | None) -> TriggerRequest:
        return req(
            f"http://127.0.0.1:{target.port}/echo/{token}",
            execution_id=execution_id,
            method="POST",
            body='{"report": "daily"}',
            headers={"X-Team": "billing"},
            sealed_headers=sealed,
            not_before=not_before,
            idempotency_key="one-key",
        )

    fire_one(request(1, None))  # made ready at its send time
    prepared_at = _prepared_at(monkeypatch)
    not_before = datetime.now(UTC) + timedelta(seconds=0.6)
    outcome = fire_one(request(2, not_before))
    assert outcome.http_status == 200 and outcome.started_at >= not_before
    assert prepared_at[2] < not_before
    now_made, ahead = target.hits(token)
    assert dict(ahead.headers)["Authorization"] == "Bearer held-ahead"
    assert sorted(ahead.headers) == sorted(now_made.headers)
    assert ahead.body == now_made.body == b'{"report": "daily"}'


def test_a_signed_request_prepared_ahead_is_signed_at_its_send_time(target: Target) -> None:
    secret = new_secret()
    token = uuid.uuid4().hex
    not_before = datetime.now(UTC) + timedelta(seconds=2.1)  # two whole seconds later
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        method="POST",
        body="{}",
        sealed_signing_secrets=(sealer_for(OPEN).seal(secret),),
        not_before=not_before,
    )
    assert fire_one(request).http_status == 200
    [seen] = target.hits(token)
    [signature] = [v for k, v in seen.headers if k.lower() == "x-taskhub-signature"]
    assert verify(signature, seen.body, [secret])
    assert int(signature.split(",")[0][2:]) >= int(not_before.timestamp())


def test_a_request_refused_when_prepared_ahead_ends_refused_at_its_send_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepared_at = _prepared_at(monkeypatch)
    not_before = datetime.now(UTC) + timedelta(seconds=0.5)
    request = req("http://169.254.169.254/latest/meta-data/", not_before=not_before)
    outcome = fire_one(request)
    assert outcome.error_kind == "blocked_address"
    assert prepared_at[request.execution_id] < not_before <= outcome.started_at


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
