"""A Celery target as a task definition takes it: exactly one of ``url`` and ``celery``,
its fields' defaults and refusals (each naming the field), the stored shape read back
as it was, and the settings that name the brokers and result backends."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core import limits
from taskhub.core.celery_calls import CeleryCall, parse_celery_call
from taskhub.core.definitions import parse_definition, parse_target
from taskhub.core.errors import ValidationError
from taskhub.core.named_urls import NamedURLs, masked_url, parse_named_urls
from taskhub.core.settings import SettingsError, load

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CALL = {"task": "billing.tasks.nightly_report"}


def celery_task(target: dict[str, Any] | None = None, **celery: Any) -> dict[str, Any]:
    """A small valid task with a Celery target; ``celery`` adds to its call, ``target``
    replaces the target whole."""
    return {
        "name": "report",
        "schedule": {"interval_seconds": 3600},
        "target": target if target is not None else {"celery": {**CALL, **celery}},
    }


def refused(data: dict[str, Any], **configured: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_definition(data, NOW, **configured)
    return caught.value


def test_a_celery_target_takes_its_defaults() -> None:
    target = parse_definition(celery_task(), NOW).target
    assert target.url is None and target.headers == {} and target.body is None
    assert target.timeout_seconds == limits.DEFAULT_TIMEOUT_S
    assert target.celery == CeleryCall("billing.tasks.nightly_report")
    assert target.celery.to_dict() == {
        "task": "billing.tasks.nightly_report",
        "args": [],
        "kwargs": {},
        "queue": limits.DEFAULT_CELERY_QUEUE,
        "broker": limits.DEFAULT_CELERY_BROKER,
        "track": False,
        "expires_seconds": None,
    }


def test_every_field_of_a_celery_target_is_read() -> None:
    call = {
        "task": "billing.tasks.nightly_report",
        "args": [1, "two", {"three": [3]}],
        "kwargs": {"region": "eu", "dry_run": True},
        "queue": "reports.eu-1",
        "broker": "billing",
        "track": True,
        "expires_seconds": 600,
    }
    target = parse_target(
        {"celery": call, "timeout_seconds": 120},
        celery_brokers=("default", "billing"),
        celery_result_backends=("billing",),
    )
    assert target.timeout_seconds == 120.0
    assert target.celery is not None
    assert target.celery.to_dict() == {**call, "expires_seconds": 600.0}


def test_a_null_celery_is_no_celery_target() -> None:
    target = parse_target({"url": "https://example.com/", "celery": None})
    assert (target.url, target.celery) == ("https://example.com/", None)


@pytest.mark.parametrize(
    ("target", "field", "words"),
    [
        ({}, "target.url", "is required"),
        ({"celery": None}, "target.url", "is required"),
        (
            {"url": "https://example.com/", "celery": CALL},
            "target.celery",
            "exactly one of target.url and target.celery",
        ),
        ({"celery": CALL, "method": "POST"}, "target.method", "only for a url target"),
        ({"celery": CALL, "headers": {"X-A": "b"}}, "target.headers", "only for a url target"),
        ({"celery": CALL, "body": "{}"}, "target.body", "only for a url target"),
        ({"celery": CALL, "timeout_seconds": 0}, "target.timeout_seconds", "between"),
        ({"celery": "billing.tasks.x"}, "target.celery", "must be an object"),
        ({"celery": {**CALL, "eta": 5}}, "target.celery.eta", "unknown field"),
        ({"celery": {}}, "target.celery.task", "is required"),
        ({"celery": {"task": "billing tasks"}}, "target.celery.task", "dotted name"),
        ({"celery": {"task": "billing..x"}}, "target.celery.task", "dotted name"),
        ({"celery": {"task": "1billing.x"}}, "target.celery.task", "dotted name"),
        ({"celery": {"task": "billing.x\n"}}, "target.celery.task", "dotted name"),
        ({"celery": {"task": "a" * 201}}, "target.celery.task", "at most 200"),
        ({"celery": {**CALL, "args": {"a": 1}}}, "target.celery.args", "JSON array"),
        ({"celery": {**CALL, "args": "1"}}, "target.celery.args", "JSON array"),
        ({"celery": {**CALL, "kwargs": [1]}}, "target.celery.kwargs", "JSON object"),
        ({"celery": {**CALL, "kwargs": {"a-b": 1}}}, "target.celery.kwargs", "identifiers"),
        ({"celery": {**CALL, "queue": ""}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "queue": "re ports"}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "queue": "reports\n"}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "queue": "q" * 81}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "queue": 5}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "queue": "amq.reports"}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "queue": "-reports"}}, "target.celery.queue", "letters, digits"),
        ({"celery": {**CALL, "broker": "Default"}}, "target.celery.broker", "configured"),
        ({"celery": {**CALL, "track": "yes"}}, "target.celery.track", "true or false"),
        ({"celery": {**CALL, "expires_seconds": 0}}, "target.celery.expires_seconds", "between"),
        ({"celery": {**CALL, "expires_seconds": True}}, "target.celery.expires_seconds", "number"),
    ],
)
def test_a_bad_celery_target_is_refused_naming_the_field(
    target: dict[str, Any], field: str, words: str
) -> None:
    error = refused(celery_task(target))
    assert error.field == field
    assert words in error.message


def test_arguments_too_large_or_not_plain_json_are_refused() -> None:
    big = ["x" * 1000] * (limits.MAX_CELERY_ARGUMENTS_BYTES // 1000 + 1)
    assert refused(celery_task(args=big)).field == "target.celery.args"
    assert refused(celery_task(kwargs={"n": float("nan")})).field == "target.celery.kwargs"


def test_only_a_configured_broker_and_result_backend_may_be_named() -> None:
    configured: dict[str, Any] = {
        "celery_brokers": ("default", "billing"),
        "celery_result_backends": ("default",),
    }
    error = refused(celery_task(broker="elsewhere"), **configured)
    assert error.field == "target.celery.broker"
    assert error.message == "is not a configured broker (configured: default, billing)"
    error = refused(celery_task(broker="billing", track=True), **configured)
    assert error.field == "target.celery.track"
    assert "billing" in error.message
    assert parse_definition(celery_task(broker="billing"), NOW, **configured).target.celery
    tracked = parse_definition(celery_task(track=True), NOW, **configured).target.celery
    assert tracked is not None and tracked.track


# --- the stored shape -------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
IDENTIFIERS = st.text(string.ascii_letters + "_", min_size=1, max_size=8).map(
    lambda head: head + "1"
)
CALLS = st.fixed_dictionaries(
    {"task": st.lists(IDENTIFIERS, min_size=1, max_size=4).map(".".join)},
    optional={
        "args": st.lists(JSON_VALUES, max_size=4),
        "kwargs": st.dictionaries(IDENTIFIERS, JSON_VALUES, max_size=4),
        "queue": st.from_regex(limits.CELERY_QUEUE_PATTERN, fullmatch=True).filter(
            lambda queue: not queue.startswith(limits.RESERVED_CELERY_QUEUE_PREFIX)
        ),
        "broker": st.from_regex(limits.CELERY_BROKER_NAME_PATTERN, fullmatch=True),
        "track": st.booleans(),
        "expires_seconds": st.floats(limits.MIN_CELERY_EXPIRES_S, limits.MAX_CELERY_EXPIRES_S)
        | st.integers(int(limits.MIN_CELERY_EXPIRES_S), int(limits.MAX_CELERY_EXPIRES_S)),
    },
)


@given(CALLS)
def test_a_celery_call_reads_back_as_stored(data: dict[str, Any]) -> None:
    """What the API takes is stored as ``to_dict`` (JSON) and read back by
    ``from_dict`` as the same call, and ``to_dict`` is again valid input."""
    call = parse_celery_call(data)
    stored = json.loads(json.dumps(call.to_dict()))
    assert CeleryCall.from_dict(stored) == call
    assert parse_celery_call(stored) == call
    for name, value in data.items():
        assert stored[name] == (float(value) if name == "expires_seconds" else value)


@given(
    st.sampled_from(["task", "args", "kwargs", "queue", "broker", "track", "expires_seconds"]),
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.lists(st.integers()),
)
def test_a_refusal_names_the_field_at_fault(name: str, value: Any) -> None:
    data = {**CALL, name: value}
    try:
        parse_celery_call(data, brokers=("default",))
    except ValidationError as error:
        assert error.field == f"target.celery.{name}"


# --- the settings -----------------------------------------------------------------------


def test_the_default_broker_and_result_backend_are_taskhubs_own() -> None:
    settings = load({"TASKHUB_BROKER_URL": "redis://127.0.0.1:6379/3"})
    assert dict(settings.celery_brokers) == {"default": "redis://127.0.0.1:6379/3"}
    assert dict(settings.celery_result_backends) == {"default": "redis://127.0.0.1:6379/3"}
    embedded = load({})
    assert dict(embedded.celery_brokers) == {"default": embedded.broker_url}
    assert dict(embedded.celery_result_backends) == {"default": embedded.result_backend}


def test_brokers_and_result_backends_are_named() -> None:
    settings = load(
        {
            "TASKHUB_CELERY_BROKERS": " default=redis://r:6379/0 , billing=amqp://u:pw@mq:5672//",
            "TASKHUB_CELERY_RESULT_BACKENDS": "billing=redis://:pw@r:6379/1",
        }
    )
    assert list(settings.celery_brokers) == ["default", "billing"]
    assert settings.celery_brokers["billing"] == "amqp://u:pw@mq:5672//"
    assert dict(settings.celery_result_backends) == {"billing": "redis://:pw@r:6379/1"}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("redis://u:secret@r:6379/0", "entry 1 is not NAME=URL"),
        ("Billing=redis://u:secret@r/0", "entry 1 is not NAME=URL"),
        ("a=redis://u:secret@r/0, b=secret", "entry 2 (b) has no URL"),
        ("a=redis://u:secret@r/0, a=redis://u:secret@s/0", "a is named twice"),
    ],
)
def test_a_bad_broker_list_names_the_setting_and_never_a_password(value: str, words: str) -> None:
    for name in ("TASKHUB_CELERY_BROKERS", "TASKHUB_CELERY_RESULT_BACKENDS"):
        with pytest.raises(SettingsError) as caught:
            load({name: value})
        assert str(caught.value).startswith(f"{name}: ")
        assert words in str(caught.value)
        assert "secret" not in str(caught.value)


def test_the_urls_are_printed_masked() -> None:
    urls = parse_named_urls("a=amqp://user:hunter2@mq//, b=redis://:hunter2@r/0, c=redis://r/0")
    for shown in (repr(urls), repr(load({"TASKHUB_CELERY_BROKERS": "a=redis://:hunter2@r/0"}))):
        assert "hunter2" not in shown
    assert repr(urls) == (
        "NamedURLs({'a': 'amqp://user:[redacted]@mq//', 'b': 'redis://:[redacted]@r/0', "
        "'c': 'redis://r/0'})"
    )
    assert urls == NamedURLs(dict(urls)) and hash(urls) == hash(NamedURLs(dict(urls)))


@given(st.text(string.ascii_letters + string.digits, min_size=1, max_size=12))
def test_a_password_never_survives_masking(password: str) -> None:
    for user in ("user", ""):
        url = f"redis://{user}:{password}@host:6379/0"
        assert masked_url(url) == f"redis://{user}:[redacted]@host:6379/0"


def test_tracking_needs_a_result_backend_whose_results_taskhub_reads() -> None:
    backends = {"default": "redis://:pw@r:6379/1", "files": "file:///srv/results"}
    configured: dict[str, Any] = {
        "celery_brokers": ("default", "files"),
        "celery_result_backends": backends,
    }
    error = refused(celery_task(broker="files", track=True), **configured)
    assert error.field == "target.celery.track"
    assert error.message == (
        "needs a result backend taskhub reads (redis://, rediss:// or db+...); "
        "the one named files is file:"
    )
    assert "/srv/results" not in error.message
    assert parse_definition(celery_task(broker="files"), NOW, **configured).target.celery
    tracked = parse_definition(celery_task(track=True), NOW, **configured).target.celery
    assert tracked is not None and tracked.track
    database = {"default": "db+postgresql+psycopg2://u:pw@h/db"}
    assert parse_definition(
        celery_task(track=True), NOW, celery_result_backends=database
    ).target.celery
