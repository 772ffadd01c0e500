"""The messages between processes (``taskhub.core.messages``): requests and outcomes
survive the trip through JSON, and a request's size is bounded without encoding it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.host_limits import HostLimit
from taskhub.core.messages import (
    TriggerOutcome,
    TriggerRequest,
    float_bytes,
    json_str_bytes,
    message_bytes,
)
from tests.support.messages import req

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- round trips


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


def test_standard_webhooks_secrets_travel_only_when_there_are_some() -> None:
    plain = req("https://example.invalid/hook")
    assert "sealed_webhook_secrets" not in plain.to_message()
    signed = req("https://example.invalid/hook", sealed_webhook_secrets=["s1", "s2"])
    message = json.loads(json.dumps(signed.to_message()))
    assert message["sealed_webhook_secrets"] == ["s1", "s2"]
    assert TriggerRequest.from_message(message) == signed
    assert signed.sealed_webhook_secrets == ("s1", "s2")  # a list becomes a tuple


def test_an_overlap_policy_travels_only_when_it_is_not_allow() -> None:
    plain = req("https://example.invalid/hook")
    assert "overlap" not in plain.to_message() and plain.overlap is None
    guarded = req("https://example.invalid/hook", overlap="buffer_one")
    message = json.loads(json.dumps(guarded.to_message()))
    assert message["overlap"] == "buffer_one"
    assert TriggerRequest.from_message(message) == guarded


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
    assert "accepted" not in message and "result_due_by" not in failed.to_message()


def test_a_celery_outcome_carries_its_acceptance_and_its_result_due_time() -> None:
    sent = TriggerOutcome(5, 1, NOW, 3, accepted=True)
    tracked = TriggerOutcome(6, 2, NOW, 4, accepted=True, result_due_by=NOW.replace(minute=5))
    for outcome in (sent, tracked):
        message = json.loads(json.dumps(outcome.to_message()))
        assert message["http_status"] is None and message["error_kind"] is None
        assert TriggerOutcome.from_message(message) == outcome
    assert tracked.to_message()["result_due_by"] == "2026-11-22T09:05:00+00:00"


# --------------------------------------------------------------------------- sizing

times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
texts = st.text(max_size=60)


def encoded(request: TriggerRequest) -> int:
    return len(json.dumps(request.to_message()).encode())


@given(texts | st.text(st.characters(max_codepoint=127), max_size=60))
def test_json_str_bytes_is_the_encoded_length(text: str) -> None:
    assert json_str_bytes(text) == len(json.dumps(text))


@given(st.floats())
def test_float_bytes_is_the_encoded_length(value: float) -> None:
    assert float_bytes(value) == len(json.dumps(value))


@given(
    execution_id=st.integers(min_value=1, max_value=2**63 - 1),
    attempt=st.integers(min_value=1, max_value=1000),
    url=texts,
    method=st.sampled_from(["GET", "POST"]),
    headers=st.dictionaries(texts, texts, max_size=5),
    body=st.none() | texts,
    timeout_s=st.floats(min_value=0.001, max_value=3600),
    scheduled_for=times,
    send_by=st.none() | times,
    not_before=st.none() | times,
    sealed_headers=st.none() | texts,
    secrets=st.lists(texts, max_size=3),
    webhook_secrets=st.lists(texts, max_size=3),
    limit=st.none()
    | st.builds(HostLimit, st.none() | st.integers(1, 10**6), st.none() | st.floats(0.01, 1e6)),
    tenant=st.none() | texts,
    overlap=st.none() | st.sampled_from(["skip", "buffer_one"]),
)
def test_message_bytes_bounds_the_encoded_size_closely(
    execution_id: int,
    attempt: int,
    url: str,
    method: str,
    headers: dict[str, str],
    body: str | None,
    timeout_s: float,
    scheduled_for: datetime,
    send_by: datetime | None,
    not_before: datetime | None,
    sealed_headers: str | None,
    secrets: list[str],
    webhook_secrets: list[str],
    limit: HostLimit | None,
    tenant: str | None,
    overlap: str | None,
) -> None:
    request = TriggerRequest(
        execution_id=execution_id,
        attempt=attempt,
        task_id="7d1f3c1e-0f6b-4e0a-9d0e-2b8c1c2d3e4f",
        scheduled_for=scheduled_for,
        idempotency_key="0b5f9d5e-6a2c-5e47-8f5a-1c2d3e4f5a6b",
        url=url,
        method=method,
        headers=headers,
        body=body,
        timeout_s=timeout_s,
        send_by=send_by,
        sealed_headers=sealed_headers,
        sealed_signing_secrets=tuple(secrets),
        sealed_webhook_secrets=tuple(webhook_secrets),
        rate_limit=limit,
        not_before=not_before,
        tenant=tenant,
        overlap=overlap,
    )
    exact = encoded(request)
    assert exact <= message_bytes(request) <= exact + 64
