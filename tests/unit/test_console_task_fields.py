"""The task form's fields and the API's task definition, each turned into the other."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.api.console import task_fields
from taskhub.core.definitions import TOP_LEVEL, parse_definition
from taskhub.core.errors import ValidationError

NOW = datetime(2030, 1, 7, tzinfo=UTC)

FULL: dict[str, Any] = {
    "name": " nightly report ",
    "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    "target": {
        "url": "https://reports.example.com/v1/nightly",
        "method": "PUT",
        "headers": {"Authorization": "Bearer ****abcd", "X-Report": "sales: eu"},
        "body": '{"report": "sales"}\nsecond line',
        "timeout_seconds": 60.0,
    },
    "retry": {"max_attempts": 5, "backoff_seconds": 0.5, "max_backoff_seconds": 900.0},
    "start_at": "2030-01-01T00:00:00+00:00",
    "end_at": "2030-12-31T23:59:59+00:00",
    "max_executions": 1000,
    "tags": {"team": "finance", "env": "a=b"},
    "misfire_policy": "skip",
    "auto_pause_after_failures": 10,
    "rate_limit": {"max_in_flight": None, "per_second": 2.5},
    "spread_seconds": 30,
    "exclude_calendars": ["tw-holidays", "ops.closed"],
    "overlap": "buffer_one",
    "retention_days": 45,
    "callback": {"url": "https://hooks.example.com/done", "on": ["failure", "dead"]},
    "max_lag_seconds": 120,
}


def test_a_full_definition_round_trips() -> None:
    values = task_fields.values_of(FULL)
    assert task_fields.definition_of(values) == FULL
    assert set(values) == set(task_fields.INPUTS)


def test_a_callback_left_empty_is_none_and_its_on_defaults_to_every_ending() -> None:
    values = task_fields.values_of({**FULL, "callback": None})
    assert (values["callback_url"], values["callback_on"]) == ("", "")
    assert task_fields.definition_of(values)["callback"] is None
    values["callback_url"] = "https://hooks.example.com/done"
    assert task_fields.definition_of(values)["callback"] == {
        "url": "https://hooks.example.com/done",
        "on": ["success", "failure", "dead"],
    }
    assert task_fields.input_for("callback.on") == "callback_on"
    assert task_fields.input_for("callback") == "callback_url"


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron": "*/15 * * * *", "timezone": "UTC"},
        {"interval_seconds": 300},
        {"at": "2030-07-01T12:00:00+00:00"},
    ],
)
def test_each_kind_of_schedule_round_trips(schedule: dict[str, Any]) -> None:
    definition = {**FULL, "schedule": schedule, "rate_limit": None, "start_at": None}
    assert task_fields.definition_of(task_fields.values_of(definition)) == definition


_line_text = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":="),
    min_size=1,
    max_size=12,
)


@given(
    headers=st.dictionaries(_line_text, _line_text, max_size=5),
    tags=st.dictionaries(_line_text, _line_text, max_size=5),
    timeout=st.floats(1, 300, allow_nan=False),
    interval=st.integers(1, 10**6),
)
def test_headers_tags_and_numbers_round_trip(
    headers: dict[str, str], tags: dict[str, str], timeout: float, interval: int
) -> None:
    definition = {
        **FULL,
        "schedule": {"interval_seconds": interval},
        "target": {**FULL["target"], "headers": headers, "timeout_seconds": timeout},
        "tags": tags,
    }
    assert task_fields.definition_of(task_fields.values_of(definition)) == definition


def test_the_new_task_form_says_what_a_json_create_without_those_fields_means() -> None:
    values = {**task_fields.NEW_TASK, "name": "t", "cron": "0 9 * * *", "url": "https://a.example/"}
    from_form = parse_definition(task_fields.definition_of(values), NOW)
    from_json = parse_definition(
        {"name": "t", "schedule": {"cron": "0 9 * * *"}, "target": {"url": "https://a.example/"}},
        NOW,
    )
    assert from_form == from_json


CELERY: dict[str, Any] = {
    "celery": {
        "task": "billing.tasks.nightly_report",
        "args": [1, "é"],
        "kwargs": {"region": "eu", "deep": {"a": [None, True]}},
        "queue": "reports",
        "broker": "billing",
        "track": True,
        "expires_seconds": 3600.0,
    },
    "timeout_seconds": 60.0,
}


def test_a_celery_target_round_trips() -> None:
    definition = {**FULL, "target": CELERY}
    assert task_fields.definition_of(task_fields.values_of(definition)) == definition
    untracked = {**CELERY, "celery": {**CELERY["celery"], "track": False, "expires_seconds": None}}
    definition = {**FULL, "target": untracked}
    assert task_fields.definition_of(task_fields.values_of(definition)) == definition


def test_only_the_chosen_kind_of_target_is_sent() -> None:
    values = task_fields.values_of(FULL) | {"target": "celery", "celery_task": "a.b"}
    assert task_fields.definition_of(values)["target"] == {
        "celery": {
            "task": "a.b",
            "args": [],
            "kwargs": {},
            "queue": "celery",
            "broker": "default",
            "track": False,
            "expires_seconds": None,
        },
        "timeout_seconds": 60,
    }
    back = task_fields.values_of({**FULL, "target": CELERY}) | {
        "target": "http",
        "url": "https://a.example/",
    }
    assert set(task_fields.definition_of(back)["target"]) == {
        "url",
        "method",
        "headers",
        "body",
        "timeout_seconds",
    }


def test_arguments_not_json_are_refused_naming_them() -> None:
    values = task_fields.values_of({**FULL, "target": CELERY}) | {"celery_kwargs": "{region: eu}"}
    with pytest.raises(ValidationError) as refused:
        task_fields.definition_of(values)
    assert refused.value.field == "target.celery.kwargs"
    assert task_fields.input_for(refused.value.field) == "celery_kwargs"


def test_empty_optional_fields_are_null_and_text_is_passed_on_for_the_service_to_refuse() -> None:
    values = {**task_fields.NEW_TASK, "name": "t", "cron": "0 9 * * *", "url": "https://a.example/"}
    definition = task_fields.definition_of({**values, "max_executions": "many"})
    assert definition["start_at"] is None and definition["rate_limit"] is None
    with pytest.raises(ValidationError) as refused:
        parse_definition(definition, NOW)
    assert refused.value.field == "max_executions"


@pytest.mark.parametrize(
    ("text", "field"),
    [("no colon here", "target.headers"), ("X-A: 1\nX-A: 2", "target.headers.X-A")],
)
def test_a_header_line_not_understood_is_refused_naming_the_headers(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        task_fields.parse_headers(text)
    assert refused.value.field == field


def test_a_tag_line_without_equals_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        task_fields.parse_tags("team=ops\nprod")
    assert refused.value.field == "tags" and "line 2" in refused.value.message


@pytest.mark.parametrize(
    ("path", "shown_at"),
    [
        ("schedule.cron", "cron"),
        ("schedule.timezone", "timezone"),
        ("target.url", "url"),
        ("target.headers.Host", "headers"),
        ("tags.env", "tags"),
        ("rate_limit", "max_in_flight"),
        ("rate_limit.per_second", "per_second"),
        ("schedule", "schedule"),
        ("target", "target"),
        ("target.celery", "celery_task"),
        ("target.celery.broker", "celery_broker"),
        ("target.method", "method"),
        ("", None),
        (None, None),
        ("whatever", None),
    ],
)
def test_a_refused_api_field_is_shown_beside_its_input(
    path: str | None, shown_at: str | None
) -> None:
    assert task_fields.input_for(path) == shown_at


def test_every_api_field_has_an_input() -> None:
    assert {path.partition(".")[0] for path in task_fields.INPUTS.values()} == set(TOP_LEVEL)
    assert set(task_fields.LABELS) == set(task_fields.INPUTS)


def test_a_save_sends_only_what_changed() -> None:
    wanted = {**FULL, "name": "renamed", "target": {**FULL["target"], "body": None}}
    assert task_fields.changes(FULL, wanted) == {"name": "renamed", "target": wanted["target"]}
    assert task_fields.changes(FULL, FULL) == {}
