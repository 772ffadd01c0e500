"""Reading a task definition as SPEC shows it: what is accepted, and what is refused
with the field named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from taskhub.definitions import MAX_BODY_BYTES, parse_definition
from taskhub.errors import ValidationError
from taskhub.schedules import Cron, Interval, OneTime
from taskhub.statuses import MisfirePolicy

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

SPEC_EXAMPLE: dict[str, Any] = {
    "name": "nightly-report",
    "schedule": {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"},
    "target": {
        "url": "https://example.com/hook",
        "method": "POST",
        "headers": {"X-Team": "billing"},
        "body": '{"kind": "nightly"}',
        "timeout_seconds": 30,
    },
    "retry": {"max_attempts": 3, "backoff_seconds": 10, "max_backoff_seconds": 600},
    "start_at": None,
    "end_at": None,
    "max_executions": None,
    "tags": {"team": "billing"},
}


def test_the_spec_example_is_accepted() -> None:
    definition = parse_definition(SPEC_EXAMPLE, NOW)
    assert definition.schedule == Cron("0 9 * * 1-5", "Asia/Taipei")
    assert definition.target.headers == {"X-Team": "billing"}
    assert definition.retry.max_attempts == 3
    assert definition.tags == {"team": "billing"}


def test_only_name_schedule_and_url_are_required() -> None:
    minimal = parse_definition(
        {
            "name": "m",
            "schedule": {"interval_seconds": 60},
            "target": {"url": "http://example.com/"},
        },
        NOW,
    )
    assert minimal.schedule == Interval(60, NOW)
    assert (minimal.target.method, minimal.target.timeout_seconds) == ("POST", 30.0)
    once = parse_definition(
        {
            "name": "o",
            "schedule": {"at": "2026-12-01T09:00:00+08:00"},
            "target": {"url": "http://example.com/"},
        },
        NOW,
    )
    assert once.schedule == OneTime(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))


def with_(path: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        k: (dict(v) if isinstance(v, dict) else v) for k, v in SPEC_EXAMPLE.items()
    }
    *parents, last = path.split(".")
    node = data
    for parent in parents:
        node = node[parent]
    node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (with_("name", ""), "name"),
        (with_("name", None), "name"),
        (with_("schedule", None), "schedule"),
        (with_("schedule", {}), "schedule"),
        (with_("schedule", {"cron": "* * * * *", "interval_seconds": 5}), "schedule"),
        (with_("schedule.cron", "61 * * * *"), "schedule.cron"),
        (with_("schedule.cron", "* * *"), "schedule.cron"),
        (with_("schedule.timezone", "Mars/Base"), "schedule.timezone"),
        (with_("schedule", {"interval_seconds": 0}), "schedule.interval_seconds"),
        (with_("schedule", {"interval_seconds": "60"}), "schedule.interval_seconds"),
        (with_("schedule", {"at": "tomorrow"}), "schedule.at"),
        (with_("schedule", {"at": "2026-12-01T09:00:00"}), "schedule.at"),
        (with_("target", None), "target"),
        (with_("target.url", "ftp://example.com/"), "target.url"),
        (with_("target.url", "http:///nohost"), "target.url"),
        (with_("target.method", "BREW"), "target.method"),
        (with_("target.headers", {"X-A": 1}), "target.headers.X-A"),
        (with_("target.headers", {"Idempotency-Key": "x"}), "target.headers.Idempotency-Key"),
        (with_("target.headers", {"X-Taskhub-Attempt": "9"}), "target.headers.X-Taskhub-Attempt"),
        (with_("target.headers", {"Connection": "close"}), "target.headers.Connection"),
        (
            with_("target.headers", {"Transfer-Encoding": "chunked"}),
            "target.headers.Transfer-Encoding",
        ),
        (with_("target.headers", {"X-A": "a\r\nInjected: 1"}), "target.headers.X-A"),
        (with_("target.headers", {"Bad Name": "v"}), "target.headers"),
        (with_("target.headers", {f"X-{i}": "v" for i in range(51)}), "target.headers"),
        (with_("target.headers", {"X-Big": "v" * 8193}), "target.headers.X-Big"),
        (with_("target.url", "https://example.com/" + "a" * 2048), "target.url"),
        (with_("target.url", "https://user:pw@example.com/"), "target.url"),
        (with_("target.url", "javascript:alert(1)"), "target.url"),
        (with_("target.body", "x" * (MAX_BODY_BYTES + 1)), "target.body"),
        (with_("target.extra", 1), "target.extra"),
        (with_("retry.forever", True), "retry.forever"),
        (with_("retry.max_backoff_seconds", 1), "retry.max_backoff_seconds"),
        (with_("colour", "blue"), "colour"),
        (with_("schedule", {"at": "2026-11-01T00:00:00Z"}), "schedule.at"),
        (with_("schedule", {"interval_seconds": 60, "timezone": "UTC"}), "schedule.timezone"),
        (with_("tags", {"a:b": "c"}), "tags"),
        (with_("name", "x" * 201), "name"),
        (with_("target.body", {"json": True}), "target.body"),
        (with_("target.timeout_seconds", 0), "target.timeout_seconds"),
        (with_("target.timeout_seconds", 301), "target.timeout_seconds"),
        (with_("retry.max_attempts", 0), "retry.max_attempts"),
        (with_("retry.backoff_seconds", -1), "retry.backoff_seconds"),
        (with_("max_executions", 0), "max_executions"),
        (with_("tags", {"team": 7}), "tags.team"),
        (with_("start_at", "2026-12-02T00:00:00Z") | {"end_at": "2026-12-01T00:00:00Z"}, "end_at"),
    ],
)
def test_bad_input_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_definition(data, NOW)
    assert caught.value.field == field
    assert caught.value.message


def test_misfire_policy_and_auto_pause_default_and_parse() -> None:
    definition = parse_definition(SPEC_EXAMPLE, NOW)
    assert definition.misfire_policy is MisfirePolicy.FIRE_ONCE
    assert definition.auto_pause_after_failures is None
    chosen = parse_definition(
        SPEC_EXAMPLE | {"misfire_policy": "fire_each", "auto_pause_after_failures": 1000}, NOW
    )
    assert chosen.misfire_policy is MisfirePolicy.FIRE_EACH
    assert chosen.auto_pause_after_failures == 1000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"misfire_policy": "FIRE_ONCE"}, "misfire_policy"),
        ({"misfire_policy": ["skip"]}, "misfire_policy"),
        ({"auto_pause_after_failures": 0}, "auto_pause_after_failures"),
        ({"auto_pause_after_failures": 1001}, "auto_pause_after_failures"),
        ({"auto_pause_after_failures": 2.0}, "auto_pause_after_failures"),
        ({"auto_pause_after_failures": False}, "auto_pause_after_failures"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_definition(SPEC_EXAMPLE | change, NOW)
    assert refused.value.field == field
