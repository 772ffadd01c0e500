"""The pure parts of sending a Celery target's task (``taskhub.engine.celery_publishing``):
the message is the one Celery itself would build, its headers are taskhub's, a broker
is a host for flow control, and a failure's words never hold a broker's URL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import amqp.exceptions
import pytest
from celery import Celery
from kombu.exceptions import OperationalError

from taskhub.core.celery_calls import CeleryCall
from taskhub.core.host_limits import HostLimit, parse_host_limits
from taskhub.core.messages import TriggerRequest
from taskhub.engine import celery_messages, celery_publishing, exchange, firing
from taskhub.engine.celery_messages import task_message
from taskhub.engine.celery_publishing import Publisher, _reason
from taskhub.observability import counters
from tests.support.messages import req

CALL = CeleryCall(
    "billing.tasks.nightly_report", args=(1, "a"), kwargs={"region": "eu"}, queue="reports"
)


def celery_request(call: CeleryCall = CALL, **overrides: object) -> TriggerRequest:
    values: dict[str, object] = {"method": "", "attempt": 3, "celery": call, **overrides}
    return req("", **values)


def test_the_message_is_the_one_celery_builds_with_the_key_as_its_task_id() -> None:
    request = celery_request()
    message = task_message(request)
    builder = Celery("builder", set_as_current=False)
    headers, properties, body, _ = builder.amqp.as_task_v2(
        request.idempotency_key, CALL.task, tuple(CALL.args), dict(CALL.kwargs)
    )
    taskhub_headers = {
        "taskhub_task_id": "task-7",
        "taskhub_scheduled_for": "2026-11-22T09:00:00Z",
        "taskhub_attempt": 3,
    }
    assert message.headers == {**headers, "origin": message.headers["origin"], **taskhub_headers}
    assert message.headers["id"] == message.headers["root_id"] == "idem-41"
    assert message.headers["origin"].startswith("taskhub@")
    assert message.properties == properties
    assert message.body == (list(body[0]), body[1], body[2])
    assert message.queue == "reports"


def test_the_scheduled_for_header_is_the_http_headers_text() -> None:
    when = datetime(2026, 11, 22, 9, 0, 0, 250000, tzinfo=UTC)
    request = celery_request(scheduled_for=when)
    http = exchange.attempt_headers(request)[exchange.SCHEDULED_FOR]
    assert task_message(request).headers["taskhub_scheduled_for"] == http
    assert http == "2026-11-22T09:00:00.250000Z"


def test_expires_counts_from_the_occurrences_due_time() -> None:
    assert task_message(celery_request()).headers["expires"] is None
    expiring = CeleryCall("a.b", expires_seconds=90)
    message = task_message(celery_request(expiring))
    assert message.headers["expires"] == "2026-11-22T09:01:30+00:00"


def test_long_arguments_are_shown_cut_as_celery_cuts_them() -> None:
    message = task_message(celery_request(CeleryCall("a.b", args=("x" * 5000,))))
    assert len(message.headers["argsrepr"]) <= celery_messages.REPR_MAX_CHARS + 10
    assert message.body[0] == ["x" * 5000]


def test_a_broker_is_a_host_for_flow_control_and_lane_shares() -> None:
    assert celery_publishing.host_key("default") == "celery:default"
    limits = parse_host_limits("celery:default=5/10, api.example=2")
    assert limits["celery:default"] == HostLimit(5, 10.0)
    request = celery_request(CeleryCall("a.b", broker="eu-1"))
    assert firing._lane_key(request) == firing._host_of(request) == "celery:eu-1"
    assert firing._lane_key(req("https://API.example:8443/x")) == "api.example"


def test_a_celery_send_holds_its_slot_for_the_send_not_for_the_result() -> None:
    tracked = celery_request(CeleryCall("a.b", track=True), timeout_s=3600.0)
    assert firing._attempt_s(tracked) == celery_publishing.SEND_TIMEOUT_S
    assert firing._attempt_s(req("https://api.example/", timeout_s=12.0)) == 12.0


def test_an_accepted_attempt_counts_as_a_success() -> None:
    assert counters.attempt_outcome(None, None) == "success"
    assert counters.attempt_outcome(None, "connection") == "connection"


# --------------------------------------------------------------------------- failures


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise error from inner
    except BaseException as outer:
        return outer


def test_a_failures_words_never_hold_the_brokers_address() -> None:
    refused = raised_from(
        OperationalError("Error 111 connecting to redis.internal:6390. Connection refused."),
        ConnectionRefusedError(111, "Connection refused"),
    )
    assert _reason(refused) == "Connection refused"
    assert _reason(OperationalError("redis://:pw@h:1/0 said no")) == "OperationalError"
    assert _reason(TimeoutError("timed out")) == "the broker did not answer in time"
    nacked = amqp.exceptions.MessageNacked("nack")
    assert _reason(nacked) == "the broker refused the message (nack)"
    refused_login = amqp.exceptions.AccessRefused("ACCESS_REFUSED - Login was refused")
    assert _reason(refused_login) == "ACCESS_REFUSED - Login was refused"


@pytest.mark.parametrize(
    ("brokers", "error"),
    [
        ({}, "the Celery broker 'default' is not configured (TASKHUB_CELERY_BROKERS)"),
        (
            {"default": "nosuch://:pw@host/0"},
            "the Celery broker 'default' has a URL whose transport cannot be used (KeyError)",
        ),
    ],
)
def test_a_broker_not_configured_or_unusable_is_a_configuration_error(
    brokers: dict[str, str], error: str
) -> None:
    publisher = Publisher()
    try:
        outcome = asyncio.run(celery_publishing.send(publisher, celery_request(), brokers))
    finally:
        publisher.close()
    assert (outcome.accepted, outcome.error_kind, outcome.error) == (False, "configuration", error)
    assert outcome.http_status is None and outcome.result_due_by is None


def test_the_message_of_an_http_request_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Celery target"):
        task_message(req("https://api.example/"))
