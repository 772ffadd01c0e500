"""Message sizing without encoding, and what each message shows in events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from taskhub.core import settings
from taskhub.core.host_limits import HostLimit
from taskhub.core.messages import TriggerRequest, float_bytes, json_str_bytes, message_bytes
from taskhub.engine.fanout import build_chords
from taskhub.worker.celery_app import fire_triggers, record_chunk

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
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
    limit=st.none()
    | st.builds(HostLimit, st.none() | st.integers(1, 10**6), st.none() | st.floats(0.01, 1e6)),
    tenant=st.none() | texts,
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
    limit: HostLimit | None,
    tenant: str | None,
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
        rate_limit=limit,
        not_before=not_before,
        tenant=tenant,
    )
    exact = encoded(request)
    assert exact <= message_bytes(request) <= exact + 64


def request(i: int, body: str = "") -> TriggerRequest:
    return TriggerRequest(
        execution_id=i,
        attempt=1,
        task_id="7d1f3c1e-0f6b-4e0a-9d0e-2b8c1c2d3e4f",
        scheduled_for=NOW,
        idempotency_key=f"key-{i}",
        url="http://target.test/hook",
        method="POST",
        headers={"X-Team": "billing"},
        body=body,
        timeout_s=30.0,
        send_by=NOW + timedelta(minutes=2),
    )


def test_messages_stay_under_the_byte_limit_and_show_a_short_argsrepr() -> None:
    s = settings.load({"TASKHUB_MAX_MESSAGE_BYTES": "16384", "TASKHUB_TRIGGERS_PER_MESSAGE": "50"})
    requests = [request(i, "é" * (i % 400)) for i in range(300)]
    [canvas] = build_chords(requests, s, fire_triggers, record_chunk)
    sent: list[int] = []
    for message in canvas.tasks:
        [payload] = message.args
        assert len(payload) <= 50
        assert len(json.dumps(payload).encode()) <= s.max_message_bytes
        assert message.options["argsrepr"] == (
            f"({len(payload)} requests: executions {payload[0]['execution_id']}..)"
        )
        assert "target.test" not in message.options["argsrepr"]
        sent.extend(m["execution_id"] for m in payload)
    assert sent == list(range(300))
