"""A task's callback: its field, the document posted, and a delivery's retry schedule
(pure: ``core.callbacks``), and the request the sender builds of a delivery."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core import callbacks
from taskhub.core.addresses import AddressPolicy
from taskhub.core.callbacks import Callback, callback_of, judge, parse_callback, retry_in_s
from taskhub.core.definitions import parse_definition
from taskhub.core.errors import ValidationError
from taskhub.core.messages import TriggerOutcome
from taskhub.core.statuses import CallbackStatus, ExecutionStatus
from taskhub.engine import callback_outbox, callback_sender

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _task(callback: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "schedule": {"interval_seconds": 60},
        "target": {"url": "https://example.com/hook"},
        "callback": callback,
    }


# --- the field --------------------------------------------------------------------------


def test_on_defaults_to_every_ending() -> None:
    parsed = parse_callback({"url": "https://example.com/cb"})
    assert parsed == Callback("https://example.com/cb", ("success", "failure", "dead"))
    assert parsed is not None and parsed.to_dict()["on"] == ["success", "failure", "dead"]


def test_on_is_kept_in_a_fixed_order_each_event_once() -> None:
    parsed = parse_callback({"url": "https://example.com/cb", "on": ["dead", "success", "dead"]})
    assert parsed is not None and parsed.on == ("success", "dead")


def test_a_task_carries_its_callback_and_none_by_default() -> None:
    assert parse_definition(_task(None), NOW).callback is None
    definition = parse_definition(_task({"url": "https://example.com/cb", "on": ["dead"]}), NOW)
    assert definition.callback == Callback("https://example.com/cb", ("dead",))


@pytest.mark.parametrize(
    ("callback", "field", "words"),
    [
        ("https://example.com/cb", "callback", "must be an object"),
        ({}, "callback.url", "is required"),
        ({"url": 5}, "callback.url", "is required"),
        ({"url": "ftp://example.com/cb"}, "callback.url", "http"),
        ({"url": "https://exa mple.com/cb"}, "callback.url", "spaces"),
        ({"url": "https://example.com/" + "a" * 3000}, "callback.url", "at most"),
        ({"url": "https://example.com/cb", "on": []}, "callback.on", "non-empty list"),
        ({"url": "https://example.com/cb", "on": "dead"}, "callback.on", "non-empty list"),
        ({"url": "https://example.com/cb", "on": ["finished"]}, "callback.on", "one of"),
        ({"url": "https://example.com/cb", "on": ["dead", 3]}, "callback.on", "one of"),
        ({"url": "https://example.com/cb", "when": ["dead"]}, "callback.when", "unknown field"),
    ],
)
def test_a_bad_callback_is_refused_naming_its_field(callback: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_definition(_task(callback), NOW)
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest", "http://127.0.0.1:8080/cb", "http://10.0.0.5/cb"],
)
def test_a_blocked_literal_address_is_refused_as_a_target_url_is(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_definition(_task({"url": url}), NOW, address_policy=AddressPolicy())
    assert caught.value.field == "callback.url"


@given(st.lists(st.sampled_from(callbacks.EVENTS), min_size=1))
def test_reports_exactly_the_endings_named(on: list[str]) -> None:
    parsed = parse_callback({"url": "https://example.com/cb", "on": on})
    assert parsed is not None
    assert callback_of(parsed.to_dict()) == parsed
    for status, event in callbacks.EVENT_OF_STATUS.items():
        assert parsed.reports(status) == (event in on)
    # An execution still open is never reported.
    assert not parsed.reports(ExecutionStatus.QUEUED.value)
    assert not parsed.reports(ExecutionStatus.RUNNING.value)


# --- the document -----------------------------------------------------------------------


EXECUTION = {"id": 41, "task_id": uuid.UUID(int=7), "scheduled_for": NOW}
TASK = {"tenant": "acme", "callback": {"url": "https://example.com/cb", "on": ["dead"]}}


@given(
    status=st.sampled_from(sorted(callbacks.EVENT_OF_STATUS)),
    attempts=st.integers(1, 100),
    http_status=st.none() | st.integers(100, 599),
    duration_ms=st.none() | st.integers(0, 10**6),
    excerpt=st.none() | st.text(max_size=50),
)
def test_the_document_has_exactly_its_keys_and_is_json(
    status: str,
    attempts: int,
    http_status: int | None,
    duration_ms: int | None,
    excerpt: str | None,
) -> None:
    document = callbacks.document(
        task_id="t",
        execution_id=3,
        scheduled_for=NOW,
        status=status,
        attempts=attempts,
        http_status=http_status,
        duration_ms=duration_ms,
        response_excerpt=excerpt,
    )
    assert tuple(document) == callbacks.DOCUMENT_KEYS
    assert json.loads(json.dumps(document)) == document
    assert document["scheduled_for"] == "2026-11-22T12:00:00+00:00"


def test_only_an_ending_the_callback_names_is_written_down() -> None:
    dead = callback_outbox.delivery(TASK, EXECUTION, "dead", 3, 503, 12, "busy")
    assert dead is not None
    assert (dead.execution_id, dead.tenant, dead.url, dead.event) == (
        41,
        "acme",
        "https://example.com/cb",
        "dead",
    )
    assert dead.document == {
        "task_id": str(uuid.UUID(int=7)),
        "execution_id": 41,
        "scheduled_for": NOW.isoformat(),
        "status": "dead",
        "attempts": 3,
        "http_status": 503,
        "duration_ms": 12,
        "response_excerpt": "busy",
    }
    assert callback_outbox.delivery(TASK, EXECUTION, "succeeded", 1, 200, 5, "ok") is None
    no_callback = {**TASK, "callback": None}
    assert callback_outbox.delivery(no_callback, EXECUTION, "dead", 3, 503, 1, "") is None


# --- the retry schedule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "http_status", "error_kind", "status"),
    [
        (1, 200, None, CallbackStatus.DELIVERED),
        (3, 204, None, CallbackStatus.DELIVERED),
        (1, 500, None, CallbackStatus.PENDING),
        (1, 404, None, CallbackStatus.PENDING),
        (2, 301, None, CallbackStatus.PENDING),
        (1, None, "timeout", CallbackStatus.PENDING),
        (1, None, "configuration", CallbackStatus.PENDING),
        (3, 500, None, CallbackStatus.FAILED),
        (3, None, "connection", CallbackStatus.FAILED),
        (1, None, "blocked_address", CallbackStatus.FAILED),
        (1, None, "invalid_request", CallbackStatus.FAILED),
    ],
)
def test_judge_table(
    attempt: int, http_status: int | None, error_kind: str | None, status: CallbackStatus
) -> None:
    verdict = judge(attempt, http_status, error_kind)
    assert verdict.status is status
    assert (verdict.retry_in_s is not None) == (status is CallbackStatus.PENDING)


def test_the_schedule_is_5_10_seconds_then_failed() -> None:
    assert [retry_in_s(a) for a in (1, 2)] == [5.0, 10.0]
    assert callbacks.MAX_ATTEMPTS == 3


@given(st.integers(1, 1000), st.none() | st.integers(100, 599), st.none() | st.text(max_size=20))
def test_a_delivery_ends_within_its_budget(
    attempt: int, http_status: int | None, error_kind: str | None
) -> None:
    verdict = judge(attempt, http_status, error_kind)
    if attempt >= callbacks.MAX_ATTEMPTS:
        assert verdict.status is not CallbackStatus.PENDING
    if verdict.retry_in_s is not None:
        assert 0 < verdict.retry_in_s <= callbacks.MAX_BACKOFF_S
        # Waits never shrink from one attempt to the next.
        assert retry_in_s(attempt + 1) >= verdict.retry_in_s
    # A lease outlasts an attempt, so a live sender's delivery is never taken again.
    assert callbacks.LEASE_S > callbacks.TIMEOUT_S


# --- the sender's request and its record -----------------------------------------------


DELIVERY = {
    "id": 9,
    "execution_id": 41,
    "task_id": uuid.UUID(int=7),
    "tenant": "acme",
    "url": "https://example.com/cb",
    "attempts": 2,
    "document": dict(
        reversed(
            list(
                callbacks.document(
                    task_id=str(uuid.UUID(int=7)),
                    execution_id=41,
                    scheduled_for=NOW,
                    status="dead",
                    attempts=3,
                    http_status=503,
                    duration_ms=12,
                    response_excerpt="busy",
                ).items()
            )
        )
    ),
}


def test_the_request_posts_the_document_signed_with_the_tenants_secrets() -> None:
    request = callback_sender.request_for(
        DELIVERY, {"taskhub": ["sealed-1"], "standard-webhooks": ["sealed-2"]}
    )
    assert request.method == "POST" and request.url == "https://example.com/cb"
    assert request.body is not None
    assert list(json.loads(request.body)) == list(callbacks.DOCUMENT_KEYS)
    assert request.idempotency_key == "taskhub-callback-9"
    assert request.attempt == 2
    assert request.sealed_signing_secrets == ("sealed-1",)
    assert request.sealed_webhook_secrets == ("sealed-2",)
    assert request.timeout_s == callbacks.TIMEOUT_S
    unsigned = callback_sender.request_for(DELIVERY, {})
    assert unsigned.sealed_signing_secrets == () and unsigned.sealed_webhook_secrets == ()


def test_a_failed_attempt_is_due_again_after_its_backoff() -> None:
    outcome = TriggerOutcome(41, 2, NOW, 250, http_status=502, error="HTTP 502")
    result = callback_sender.attempt_result(DELIVERY, outcome, NOW)
    assert result.status == "pending" and result.attempt == 2
    assert result.next_attempt_at == NOW + timedelta(milliseconds=250, seconds=retry_in_s(2))
    assert result.http_status == 502 and result.error == "HTTP 502"
    done = callback_sender.attempt_result(
        DELIVERY, TriggerOutcome(41, 2, NOW, 5, http_status=200), NOW
    )
    assert done.status == "delivered" and done.next_attempt_at is None and done.error is None


def test_the_api_document_names_the_same_events() -> None:
    from typing import get_args

    from taskhub.api.schemas import CallbackEvent

    assert get_args(CallbackEvent) == callbacks.EVENTS
