"""Reading a task definition as the API documents it: what is accepted, and what is refused
with the field named."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.addresses import (
    AddressPolicy,
    a_or_an,
    blocked_reason,
    literal_address,
    parse_networks,
)
from taskhub.core.definitions import parse_definition
from taskhub.core.errors import ValidationError
from taskhub.core.limits import MAX_BODY_BYTES
from taskhub.core.schedules import Cron, Interval, OneTime
from taskhub.core.settings import SettingsError, load
from taskhub.core.statuses import MisfirePolicy, OverlapPolicy
from tests.support.example import example_task

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_the_documented_example_task_is_accepted() -> None:
    definition = parse_definition(example_task(), NOW)
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
    data = example_task()
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
    definition = parse_definition(example_task(), NOW)
    assert definition.misfire_policy is MisfirePolicy.FIRE_ONCE
    assert definition.auto_pause_after_failures is None
    chosen = parse_definition(
        example_task() | {"misfire_policy": "fire_each", "auto_pause_after_failures": 1000}, NOW
    )
    assert chosen.misfire_policy is MisfirePolicy.FIRE_EACH
    assert chosen.auto_pause_after_failures == 1000


@pytest.mark.parametrize("policy", list(OverlapPolicy))
def test_overlap_defaults_to_allow_and_parses(policy: OverlapPolicy) -> None:
    assert parse_definition(example_task(), NOW).overlap is OverlapPolicy.ALLOW
    assert parse_definition(example_task() | {"overlap": None}, NOW).overlap is OverlapPolicy.ALLOW
    assert parse_definition(example_task() | {"overlap": policy.value}, NOW).overlap is policy


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"misfire_policy": "FIRE_ONCE"}, "misfire_policy"),
        ({"misfire_policy": ["skip"]}, "misfire_policy"),
        ({"auto_pause_after_failures": 0}, "auto_pause_after_failures"),
        ({"auto_pause_after_failures": 1001}, "auto_pause_after_failures"),
        ({"auto_pause_after_failures": 2.0}, "auto_pause_after_failures"),
        ({"auto_pause_after_failures": False}, "auto_pause_after_failures"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"overlap": "SKIP"}, "overlap"),
        ({"overlap": ["skip"]}, "overlap"),
        ({"overlap": True}, "overlap"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_definition(example_task() | change, NOW)
    assert refused.value.field == field


# --- SSRF at creation: IP-literal targets in a blocked class -----------------------------

GUARD = AddressPolicy()

#: Every refused class, over IPv4 and IPv6 literals (and the spellings the HTTP client
#: reads as an address: legacy hex, full-width digits, ideographic full stops).
BLOCKED_LITERAL_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("0x7f.1", "loopback"),
    ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "loopback"),  # full-width digits
    ("127\u30020\u30020\u30021", "loopback"),  # ideographic full stops
    ("\uff11\uff16\uff19.254.169.254", "cloud metadata"),
    ("[::1]", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared address space"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("[fe80::1]", "link-local"),
    ("[fd00:ec2::254]", "cloud metadata"),
    ("[fc00::1]", "unique-local"),
    ("[fd12:3456::1]", "unique-local"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("[::ffff:169.254.169.254]", "cloud metadata"),
    ("[::ffff:10.1.2.3]", "IPv4-mapped private"),
    ("0.0.0.0", "unspecified"),
    ("[::]", "unspecified"),
]


def _with_url(url: str) -> dict[str, Any]:
    return {**example_task(), "target": {**example_task()["target"], "url": url}}


@pytest.mark.parametrize(("host", "needle"), BLOCKED_LITERAL_HOSTS)
def test_blocked_ip_literals_are_refused_naming_target_url(host: str, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_definition(_with_url(f"https://{host}:8443/hook"), NOW, address_policy=GUARD)
    assert info.value.field == "target.url"
    assert needle in info.value.message


@pytest.mark.parametrize(("host", "needle"), BLOCKED_LITERAL_HOSTS)
def test_blocked_literals_pass_when_private_targets_are_allowed(host: str, needle: str) -> None:
    policy = AddressPolicy(allow_private=True)
    if needle == "cloud metadata":
        with pytest.raises(ValidationError, match="cloud metadata"):
            parse_definition(_with_url(f"http://{host}/"), NOW, address_policy=policy)
    else:
        parse_definition(_with_url(f"http://{host}/"), NOW, address_policy=policy)


@pytest.mark.parametrize(
    ("host", "canonical"),
    [("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1")],
)
@pytest.mark.parametrize("policy", [None, AddressPolicy(), AddressPolicy(allow_private=True)])
def test_legacy_decimal_and_octal_literals_are_refused_whatever_the_policy(
    host: str, canonical: str, policy: AddressPolicy | None
) -> None:
    """The HTTP client refuses to connect to them, so a task holding one could never fire."""
    with pytest.raises(ValidationError) as info:
        parse_definition(_with_url(f"http://{host}/"), NOW, address_policy=policy)
    assert info.value.field == "target.url"
    assert info.value.message.endswith(f"is not a canonical IP address: write {canonical}")


@pytest.mark.parametrize(
    ("host", "phrase"),
    [
        ("[::ffff:127.0.0.1]", "is an IPv4-mapped loopback address"),
        ("0.0.0.0", "is an unspecified address"),
        ("[::ffff:0.0.0.0]", "is an IPv4-mapped unspecified address"),
        ("[64:ff9b::0.0.0.0]", "is a NAT64 address embedding an unspecified address"),
        ("[fc00::1]", "is a unique-local address"),
        ("127.0.0.1", "is a loopback address"),
    ],
)
def test_the_refusal_takes_the_right_article(host: str, phrase: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_definition(_with_url(f"http://{host}/"), NOW, address_policy=GUARD)
    assert phrase in info.value.message


@given(st.ip_addresses())
def test_no_blocked_reason_reads_a_before_a_vowel(address: IPv4Address | IPv6Address) -> None:
    reason = blocked_reason(address)
    if reason is not None:
        said = f"x is {a_or_an(reason)}"
        assert not re.search(r"\ba (?:[aeioAEIO]|un(?!i))", said), said
        assert not re.search(r"\ban (?:[^aeioAEIOu]|uni)", said), said


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://[2606:2800:220:1::1]/hook",
        "https://internal.example/hook",  # a name: checked when it resolves, at fire time
        "https://localhost/hook",
        "https://cafe.be/",
    ],
)
def test_public_literals_and_host_names_pass(url: str) -> None:
    parse_definition(_with_url(url), NOW, address_policy=GUARD)


def test_allowed_networks_let_their_literals_through_only() -> None:
    policy = AddressPolicy(allowed_networks=parse_networks("10.1.0.0/16, fd12::/16"))
    parse_definition(_with_url("http://10.1.2.3/"), NOW, address_policy=policy)
    parse_definition(_with_url("http://[::ffff:10.1.2.3]/"), NOW, address_policy=policy)
    parse_definition(_with_url("http://[fd12::5]/"), NOW, address_policy=policy)
    for url in ("http://10.2.0.1/", "http://169.254.169.254/", "http://127.0.0.1/"):
        with pytest.raises(ValidationError):
            parse_definition(_with_url(url), NOW, address_policy=policy)


def test_without_a_policy_literals_are_not_checked() -> None:
    parse_definition(_with_url("http://127.0.0.1:9/"), NOW)


@pytest.mark.parametrize("text", ["10.0.0.0/33", "nonsense", "10.0.0.1/8/2"])
def test_bad_allowed_networks_name_the_setting(text: str) -> None:
    with pytest.raises(SettingsError, match="TASKHUB_ALLOWED_TARGET_NETWORKS"):
        load({"TASKHUB_ALLOWED_TARGET_NETWORKS": text})


def test_literal_address_forms() -> None:
    assert literal_address("[::1]") == ipaddress.ip_address("::1")
    assert literal_address("fe80::1%25eth0") == ipaddress.ip_address("fe80::1")
    assert literal_address("example.com") is None
    assert literal_address("1.2.3.4.5") is None
    assert literal_address("0x7f.1") == ipaddress.ip_address("127.0.0.1")


def test_rate_limit_and_spread_default_and_parse() -> None:
    from taskhub.core.host_limits import HostLimit

    plain = parse_definition(example_task(), NOW)
    assert plain.rate_limit is None and plain.spread_seconds == 0
    limited = parse_definition(
        {
            **example_task(),
            "rate_limit": {"max_in_flight": 5, "per_second": 20},
            "spread_seconds": 90,
        },
        NOW,
    )
    assert limited.rate_limit == HostLimit(5, 20.0) and limited.spread_seconds == 90
    only_rate = parse_definition({**example_task(), "rate_limit": {"per_second": 0.5}}, NOW)
    assert only_rate.rate_limit == HostLimit(None, 0.5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rate_limit": {}}, "rate_limit"),
        ({"rate_limit": 5}, "rate_limit"),
        ({"rate_limit": {"max_in_flight": 0}}, "rate_limit.max_in_flight"),
        ({"rate_limit": {"max_in_flight": 2.5}}, "rate_limit.max_in_flight"),
        ({"rate_limit": {"per_second": 0}}, "rate_limit.per_second"),
        ({"rate_limit": {"per_second": "fast"}}, "rate_limit.per_second"),
        ({"rate_limit": {"burst": 3}}, "rate_limit.burst"),
        ({"spread_seconds": -1}, "spread_seconds"),
        ({"spread_seconds": 3601}, "spread_seconds"),
        ({"spread_seconds": 1.5}, "spread_seconds"),
    ],
)
def test_bad_flow_control_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_definition({**example_task(), **change}, NOW)
    assert caught.value.field == field


def test_host_limits_setting_is_read_and_refused_by_name() -> None:
    from taskhub.core.host_limits import HostLimit

    settings = load({"TASKHUB_HOST_LIMITS": "api.example.com=5/20"})
    assert settings.host_limit_map == {"api.example.com": HostLimit(5, 20.0)}
    with pytest.raises(SettingsError, match="TASKHUB_HOST_LIMITS"):
        load({"TASKHUB_HOST_LIMITS": "api.example.com=five"})
