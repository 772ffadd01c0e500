"""The parts of tasks as code that need no server: reading a file of tasks, cutting it
into batches, the changed fields of a definition, and the client's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.cli.apply import batches, read_tasks
from taskhub.client.errors import (
    ApiError,
    Conflict,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    error_of,
)
from taskhub.core import limits
from taskhub.core.definitions import parse_definition
from taskhub.service.task_batches import changed_fields

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_yaml_file_of_tasks_reads_times_as_iso_text(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n  - name: a\n    start_at: 2030-01-01T00:00:00Z\n  - name: b\n")
    assert read_tasks(str(path)) == [
        {"name": "a", "start_at": "2030-01-01T00:00:00+00:00"},
        {"name": "b"},
    ]
    path.write_text("- name: a\n")  # a bare list
    assert read_tasks(str(path)) == [{"name": "a"}]
    path.write_text("")  # nothing: no tasks
    assert read_tasks(str(path)) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tasks: {a: 1}\n", "list of tasks"),
        ("task: []\n", "unknown key 'task'"),
        ("- name: a\n- name: a\n", "twice"),
        ("- {schedule: {}}\n", "no name"),
        ("- name: [1]\n", "no name"),
        ("tasks: [\n", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_with_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    with pytest.raises(click.BadParameter, match=says):
        read_tasks(str(path))


@given(st.integers(0, 2500), st.integers(0, 1500))
def test_batches_hold_everything_once_deletes_first_none_too_big(tasks: int, deletes: int) -> None:
    definitions = [{"name": f"t{i}"} for i in range(tasks)]
    names = [f"d{i}" for i in range(deletes)]
    found = batches(definitions, names)
    assert all(0 < len(t) + len(d) <= limits.MAX_BATCH_ITEMS for t, d in found)
    assert [n for _, d in found for n in d] == names
    assert [t for ts, _ in found for t in ts] == definitions
    # no batch holds a task before a later batch's delete
    first_task = next((i for i, (t, _) in enumerate(found) if t), len(found))
    assert all(not d for _, d in found[first_task + 1 :])


def definition(**fields: object) -> dict[str, object]:
    return {
        "name": "a",
        "schedule": {"interval_seconds": 60},
        "target": {"url": "https://example.com/a"},
        **fields,
    }


def test_changed_fields_name_each_part_as_a_user_does() -> None:
    old = parse_definition(definition(), NOW)
    new = parse_definition(
        definition(
            target={"url": "https://example.com/b", "method": "GET"},
            retry={"max_attempts": 5},
            end_at="2031-01-01T00:00:00Z",
            tags={"k": "v"},
            schedule={"cron": "0 9 * * *"},
        ),
        NOW,
    )
    assert changed_fields(old, new) == [
        "end_at",
        "retry.max_attempts",
        "schedule",
        "tags",
        "target.method",
        "target.url",
    ]
    assert changed_fields(old, parse_definition(definition(), NOW)) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("misfire_policy", "skip"),
        ("auto_pause_after_failures", 3),
        ("rate_limit", {"max_in_flight": 2}),
        ("spread_seconds", 30),
        ("exclude_calendars", ["holidays"]),
        ("max_executions", 10),
        ("start_at", "2030-06-01T00:00:00Z"),
    ],
)
def test_every_other_field_is_compared_whole_under_its_name(field: str, value: object) -> None:
    old = parse_definition(definition(), NOW)
    assert changed_fields(old, parse_definition(definition(**{field: value}), NOW)) == [field]


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (422, "invalid", InvalidInput),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (409, "quota_exceeded", QuotaExceeded),
        (503, "unavailable", ServerError),
        (418, "teapot", ApiError),
    ],
)
def test_an_error_answer_is_the_exception_of_its_code(status: int, code: str, kind: type) -> None:
    error = error_of(status, {"error": {"code": code, "message": "m", "field": "schedule.cron"}})
    assert type(error) is kind
    assert (error.status, error.code, error.message, error.field) == (
        status,
        code,
        "m",
        "schedule.cron",
    )


def test_a_rate_limit_carries_retry_after_and_a_foreign_answer_still_raises() -> None:
    limited = error_of(429, {"error": {"code": "rate_limited", "message": "m", "field": None}}, "3")
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 3
    foreign = error_of(502, "<html>bad gateway</html>")
    assert (
        isinstance(foreign, ServerError) and foreign.code == "http_error" and foreign.field is None
    )
