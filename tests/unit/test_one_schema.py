"""The OpenAPI document and the parser agree: every bound, length, count and pattern the
document states for a task definition is where the parser's validation starts refusing.

Both read ``taskhub.core.limits``; these tests read the document as a client would, so a
constraint written into one and not the other shows here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskhub.api.app import create_app
from taskhub.api.schemas import REQUEST_MODELS
from taskhub.core import celery_calls, definitions, limits
from taskhub.core.definitions import parse_definition
from taskhub.core.errors import ValidationError
from taskhub.db import engines

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
URL_PREFIX = "https://example.com/"
#: The docs write ranges with an en dash.
DASH = "\u2013"

#: Where each request component sits in a task definition.
PLACES: dict[str, tuple[str, ...]] = {
    "TaskCreate": (),
    "TargetCreate": ("target",),
    "RetryCreate": ("retry",),
    "TaskRateLimit": ("rate_limit",),
    "IntervalSchedule": ("schedule",),
    "CeleryCallCreate": ("target", "celery"),
}
#: The smallest Celery target: where its fields are tried, the target is this one.
CELERY_TARGET = {"celery": {"task": "billing.tasks.nightly_report"}}


def _document() -> dict[str, Any]:
    app = create_app(engine=engines.create_engine("sqlite://"), request_tick=lambda: None)
    schemas: dict[str, Any] = app.openapi()["components"]["schemas"]
    return schemas


SCHEMAS = _document()


def _base(place: tuple[str, ...] = ()) -> dict[str, Any]:
    """Valid, with room on every side: backoff 0 under a cap at its maximum; a Celery
    target's fields are tried on a Celery target."""
    return {
        "name": "bounded",
        "schedule": {"interval_seconds": 3600},
        "target": copy.deepcopy(CELERY_TARGET)
        if place[:2] == ("target", "celery")
        else {"url": URL_PREFIX},
        "retry": {"backoff_seconds": 0, "max_backoff_seconds": limits.MAX_BACKOFF_S},
        "rate_limit": {"max_in_flight": 1},
    }


def _with(place: tuple[str, ...], name: str, value: Any) -> dict[str, Any]:
    data = _base(place)
    holder = data
    for key in place:
        holder = holder[key]
    holder[name] = value
    return data


def _constrained(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") != "null":
            return dict(branch)
    raise AssertionError(schema)


def _fields() -> Iterator[tuple[str, tuple[str, ...], str, dict[str, Any]]]:
    for component, place in PLACES.items():
        for name, schema in SCHEMAS[component]["properties"].items():
            yield component, place, name, _constrained(schema)


def _accepted(data: dict[str, Any]) -> bool:
    try:
        parse_definition(data, NOW)
    except ValidationError:
        return False
    return True


def _refused_at(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_definition(data, NOW)
    assert refused.value.field.startswith(where), (where, refused.value.field)


def _string(length: int, name: str) -> str:
    return URL_PREFIX + "a" * (length - len(URL_PREFIX)) if name == "url" else "a" * length


#: What the document can say of a field's value.
CONSTRAINTS = {
    "maximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "maxProperties",
    "additionalProperties",
    "default",
    "enum",
}
CASES = [
    pytest.param(place, name, schema, id=f"{component}.{name}")
    for component, place, name, schema in _fields()
    if CONSTRAINTS & set(schema)
]


@pytest.mark.parametrize(("place", "name", "schema"), CASES)
def test_every_documented_bound_is_where_the_parser_starts_refusing(
    place: tuple[str, ...], name: str, schema: dict[str, Any]
) -> None:
    where = ".".join((*place, name))
    if "maximum" in schema:
        assert _accepted(_with(place, name, schema["maximum"]))
        _refused_at(_with(place, name, schema["maximum"] + 1), where)
    if "minimum" in schema:
        assert _accepted(_with(place, name, schema["minimum"]))
        _refused_at(_with(place, name, schema["minimum"] - 1), where)
    if "exclusiveMinimum" in schema:
        assert _accepted(_with(place, name, schema["exclusiveMinimum"] + 1))
        _refused_at(_with(place, name, schema["exclusiveMinimum"]), where)
    if "maxLength" in schema:
        assert _accepted(_with(place, name, _string(schema["maxLength"], name)))
        _refused_at(_with(place, name, _string(schema["maxLength"] + 1, name)), where)
    if "maxProperties" in schema:
        most = {f"k{i}": "v" for i in range(schema["maxProperties"])}
        assert _accepted(_with(place, name, most))
        _refused_at(_with(place, name, most | {"one-more": "v"}), where)
    if "additionalProperties" in schema:
        longest = schema["additionalProperties"]["maxLength"]
        assert _accepted(_with(place, name, {"k": "v" * longest}))
        _refused_at(_with(place, name, {"k": "v" * (longest + 1)}), where)
    if "default" in schema:
        given = parse_definition(_with(place, name, schema["default"]), NOW)
        left_out = _base(place)
        holder = left_out
        for key in place:
            holder = holder[key]
        holder.pop(name, None)
        assert given == parse_definition(left_out, NOW)
    if "enum" in schema:
        for value in schema["enum"]:
            assert _accepted(_with(place, name, value))
        _refused_at(_with(place, name, "NOT-ONE-OF-THEM"), where)


NAMES = ["ok", "X-Ok", "a.b_c-1", "bad name", "a:b", "é", "", "a" * 64, "a" * 65, "a" * 257]


@pytest.mark.parametrize(("place", "name"), [((), "tags"), (("target",), "headers")])
@pytest.mark.parametrize("key", NAMES)
def test_the_documented_name_pattern_is_the_one_the_parser_applies(
    place: tuple[str, ...], name: str, key: str
) -> None:
    component = "TaskCreate" if name == "tags" else "TargetCreate"
    names = _constrained(SCHEMAS[component]["properties"][name])["propertyNames"]
    documented = re.search(names["pattern"], key) is not None and len(key) <= names.get(
        "maxLength", len(key)
    )
    assert _accepted(_with(place, name, {key: "v"})) == documented


def test_the_document_names_exactly_the_fields_the_parser_reads() -> None:
    read = {
        "TaskCreate": definitions.TOP_LEVEL,
        "TargetCreate": definitions.TARGET_FIELDS,
        "RetryCreate": definitions.RETRY_FIELDS,
        "TaskRateLimit": definitions.RATE_LIMIT_FIELDS,
        "CeleryCallCreate": celery_calls.FIELDS,
    }
    for component, fields in read.items():
        assert set(SCHEMAS[component]["properties"]) == set(fields), component
    assert {model.__name__ for model in REQUEST_MODELS} <= set(SCHEMAS)


def _row(page: str, first_cell: str) -> str:
    rows = [line for line in page.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, first_cell
    return rows[0]


def test_the_task_definition_page_states_the_same_limits() -> None:
    """docs/task-definition.md is written by hand: its figures must be these."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "task-definition.md").read_text()
    stated = {
        "`name`": [f"1{DASH}{limits.MAX_NAME_CHARS} characters"],
        "`max_executions`": [f"{limits.MIN_EXECUTIONS} to {limits.MAX_EXECUTIONS:,}"],
        "`tags`": [
            f"at most {limits.MAX_TAGS};",
            f"keys 1{DASH}{limits.MAX_TAG_KEY_CHARS} of",
            f"values at most {limits.MAX_TAG_VALUE_CHARS} characters",
        ],
        "`max_lag_seconds`": [f"{limits.MIN_MAX_LAG_S}{DASH}{limits.MAX_MAX_LAG_S:,}"],
        "`auto_pause_after_failures`": [
            f"{limits.MIN_AUTO_PAUSE_AFTER_FAILURES}{DASH}{limits.MAX_AUTO_PAUSE_AFTER_FAILURES:,}"
        ],
        "`rate_limit`": [
            f"{limits.MIN_RATE_IN_FLIGHT}{DASH}{limits.MAX_RATE_IN_FLIGHT:,}",
            f"above {limits.RATE_PER_SECOND_ABOVE:g}, at most {limits.MAX_RATE_PER_SECOND:,.0f}",
        ],
        "`spread_seconds`": [
            f"| {limits.DEFAULT_SPREAD_S} |",
            f"{limits.MIN_SPREAD_S}{DASH}{limits.MAX_SPREAD_S:,}",
        ],
        "interval": [f"{limits.MIN_INTERVAL_S} s to {limits.MAX_INTERVAL_S // 86400} days"],
        "`url`": [f"at most {limits.MAX_URL_CHARS:,} characters"],
        "`method`": [f"| `{limits.DEFAULT_METHOD}` |", ", ".join(f"`{m}`" for m in limits.METHODS)],
        "`headers`": [
            f"at most {limits.MAX_HEADERS};",
            f"tokens of at most {limits.MAX_HEADER_NAME_CHARS} characters",
            f"values at most {limits.MAX_HEADER_VALUE_CHARS:,} characters",
            f"{limits.MAX_HEADERS_BYTES // 1024} KiB in all",
        ],
        "`body`": [f"at most {limits.MAX_BODY_BYTES // 1024} KiB"],
        "`timeout_seconds`": [
            f"| {limits.DEFAULT_TIMEOUT_S:g} |",
            f"{limits.MIN_TIMEOUT_S:g}{DASH}{limits.MAX_TIMEOUT_S:g}",
        ],
        "`task`": [f"at most {limits.MAX_CELERY_TASK_NAME_CHARS} characters"],
        "`args`": [f"at most {limits.MAX_CELERY_ARGUMENTS_BYTES // 1024} KiB as JSON"],
        "`kwargs`": [f"at most {limits.MAX_CELERY_ARGUMENTS_BYTES // 1024} KiB as JSON"],
        "`queue`": [
            f"| `{limits.DEFAULT_CELERY_QUEUE}` |",
            f"1{DASH}{limits.MAX_CELERY_QUEUE_CHARS} letters",
        ],
        "`broker`": [f"| `{limits.DEFAULT_CELERY_BROKER}` |"],
        "`expires_seconds`": [
            f"{limits.MIN_CELERY_EXPIRES_S:g}{DASH}{limits.MAX_CELERY_EXPIRES_S:,.0f}"
        ],
        "`max_attempts`": [
            f"| {limits.DEFAULT_MAX_ATTEMPTS} |",
            f"{limits.MIN_ATTEMPTS}{DASH}{limits.MAX_ATTEMPTS}",
        ],
        "`backoff_seconds`": [
            f"| {limits.DEFAULT_BACKOFF_S:g} |",
            f"{limits.MIN_BACKOFF_S}{DASH}{limits.MAX_BACKOFF_S:,}",
        ],
        "`max_backoff_seconds`": [
            f"| {limits.DEFAULT_MAX_BACKOFF_S:g} |",
            f"{limits.MIN_BACKOFF_S}{DASH}{limits.MAX_BACKOFF_S:,}",
        ],
    }
    for first_cell, figures in stated.items():
        row = _row(page, first_cell)
        for figure in figures:
            assert figure in row, (first_cell, figure)
