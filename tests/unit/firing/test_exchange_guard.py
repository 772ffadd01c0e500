"""The SSRF guard of ``taskhub.engine.exchange``: literals refused before connecting,
host names refused inside the resolver, allowed networks and ports."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import uuid
from collections.abc import Callable

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from taskhub.core.addresses import blocked_reason
from taskhub.core.settings import Settings
from taskhub.engine import exchange
from tests.support.messages import req
from tests.unit.firing.support import (
    GUARDED,
    OPEN,
    ConnectLog,
    Target,
    fire_one,
    make_settings,
)

# --------------------------------------------------------------------------- SSRF


@pytest.mark.parametrize(
    ("host", "needle"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "metadata"),
        ("10.0.0.1", "private"),
        ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
        ("[fd00:ec2::254]", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("[fe80::1%25eth0]", "link-local"),
        ("172.16.0.1", "private address (RFC 1918)"),
        ("192.168.1.1", "private address (RFC 1918)"),
        ("100.64.0.1", "shared address space"),
        ("169.254.1.1", "link-local"),
        ("[fc00::1]", "unique-local"),
        ("[fd12:3456::1]", "unique-local"),
        ("[::]", "unspecified"),
        ("[::ffff:169.254.169.254]", "IPv4-mapped cloud metadata address"),
        ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
        ("[::ffff:100.64.0.1]", "IPv4-mapped private address (shared"),
    ],
)
def test_blocked_literals_are_refused_before_connecting(
    target: Target, loopback_only: ConnectLog, host: str, needle: str
) -> None:
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://{host}:{target.port}/echo/{token}"), GUARDED)
    assert outcome.error_kind == "blocked_address"
    assert outcome.error is not None and needle in outcome.error
    assert outcome.error.startswith("blocked_address: ")
    assert loopback_only.addresses == []
    assert target.hits(token) == []


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0177.0.0.1", "0x7f000001", "0x7f.1"])
def test_legacy_numeric_hosts_are_refused(
    target: Target, loopback_only: ConnectLog, host: str
) -> None:
    loopback_only.clear()
    outcome = fire_one(req(f"http://{host}:{target.port}/echo/x"), GUARDED)
    assert outcome.error_kind in ("invalid_request", "blocked_address")
    assert loopback_only.addresses == []


@pytest.mark.parametrize("host", ["localhost", "LocalHost"])
def test_host_names_resolving_to_blocked_addresses_are_refused(
    target: Target, loopback_only: ConnectLog, host: str
) -> None:
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://{host}:{target.port}/echo/{token}"), GUARDED)
    assert outcome.error_kind == "blocked_address", outcome.error
    assert outcome.error is not None and "loopback" in outcome.error
    assert "127.0.0.1" not in outcome.error  # resolved addresses are not disclosed
    assert loopback_only.addresses == []
    assert target.hits(token) == []


def test_localhost_is_allowed_when_private_targets_are(target: Target) -> None:
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://localhost:{target.port}/echo/{token}"), OPEN)
    assert outcome.http_status == 200
    assert len(target.hits(token)) == 1


class FakeResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def test_guarded_resolver_refuses_if_any_address_is_blocked() -> None:
    guarded = exchange._GuardedResolver(FakeResolver("93.184.216.34", "10.1.2.3"))
    with pytest.raises(exchange.BlockedAddressError) as info:
        asyncio.run(guarded.resolve("mixed.example", 80))
    assert "private" in str(info.value)
    assert "10.1.2.3" not in str(info.value)


def test_guarded_resolver_passes_public_answers_through() -> None:
    guarded = exchange._GuardedResolver(FakeResolver("93.184.216.34", "2606:2800:220:1::1"))
    results = asyncio.run(guarded.resolve("example.com", 443))
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize(
    ("address", "needle"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a9fe:a9fe", "NAT64"),
        ("2002:7f00:1::", "6to4"),
        ("::127.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "reserved"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("2001::1", "reserved"),
        ("100::1", "reserved"),
        ("4000::1", "reserved"),
    ],
)
def test_blocked_reason_refuses(address: str, needle: str) -> None:
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert needle in reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "192.169.0.1",
        "100.128.0.1",
        "2606:2800:220:1:248:1893:25c8:1946",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
    ],
)
def test_blocked_reason_allows_public(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_blocked_reason_ignores_ipv6_scope() -> None:
    assert blocked_reason(ipaddress.IPv6Address("fe80::1%eth0")) == "link-local address"


class MapResolver(AbstractResolver):
    """Answers host names from a table: fire-time tests never depend on real DNS."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return await FakeResolver(*self.table[host]).resolve(host, port, family)

    async def close(self) -> None:
        pass


_fresh_clients = iter(range(1000, 2000))


@pytest.fixture
def resolving(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Settings whose (new) HTTP client resolves host names from a table; a distinct
    ``TASKHUB_MAX_IN_FLIGHT`` makes :func:`fire` build a fresh client for them."""

    def make(table: dict[str, list[str]], **env: str) -> Settings:
        monkeypatch.setattr(exchange, "DefaultResolver", lambda: MapResolver(table))
        fresh = str(next(_fresh_clients))
        return make_settings(allow_private=False, TASKHUB_MAX_IN_FLIGHT=fresh, **env)

    return make


#: Every refused class, as the one address a host name resolves to.
RESOLVED_BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private address (RFC 1918)"),
    ("172.20.0.1", "private address (RFC 1918)"),
    ("192.168.0.10", "private address (RFC 1918)"),
    ("100.100.0.1", "shared address space"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.3.4", "link-local"),
    ("fe80::1", "link-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fd12::1", "unique-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
]


@pytest.mark.parametrize(("address", "needle"), RESOLVED_BLOCKED)
def test_a_host_name_resolving_to_any_blocked_class_is_refused_at_fire_time(
    target: Target,
    loopback_only: ConnectLog,
    resolving: Callable[..., Settings],
    address: str,
    needle: str,
) -> None:
    settings = resolving({"internal.example": [address]})
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://internal.example:{target.port}/echo/{token}"), settings)
    assert outcome.error_kind == "blocked_address"
    assert outcome.error is not None
    assert re.match(r"blocked_address: internal\.example resolves to an? ", outcome.error)
    assert needle in outcome.error
    assert address not in outcome.error.replace("internal.example", "")
    assert loopback_only.addresses == []
    assert target.hits(token) == []


def test_one_blocked_answer_among_public_ones_refuses_the_name(
    target: Target, loopback_only: ConnectLog, resolving: Callable[..., Settings]
) -> None:
    settings = resolving({"mixed.example": ["93.184.216.34", "169.254.169.254"]})
    loopback_only.clear()
    outcome = fire_one(req(f"http://mixed.example:{target.port}/echo/x"), settings)
    assert outcome.error_kind == "blocked_address"
    assert loopback_only.addresses == []


def test_allowed_networks_let_chosen_addresses_through_and_guard_the_rest(
    target: Target, loopback_only: ConnectLog, resolving: Callable[..., Settings]
) -> None:
    settings = resolving(
        {"svc.internal": ["127.0.0.1"], "meta.internal": ["169.254.169.254"]},
        TASKHUB_ALLOWED_TARGET_NETWORKS="127.0.0.0/8, ::1/128",
    )
    assert settings.address_policy.allowed_networks
    for url in (
        f"http://127.0.0.1:{target.port}/echo/{{}}",
        f"http://svc.internal:{target.port}/echo/{{}}",
    ):
        token = uuid.uuid4().hex
        outcome = fire_one(req(url.format(token)), settings)
        assert outcome.http_status == 200, outcome.error
        assert len(target.hits(token)) == 1
    loopback_only.clear()
    for url in (
        f"http://10.0.0.1:{target.port}/",
        f"http://169.254.169.254:{target.port}/",
        f"http://meta.internal:{target.port}/",
    ):
        outcome = fire_one(req(url), settings)
        assert outcome.error_kind == "blocked_address", url
    assert loopback_only.addresses == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254:{port}/latest/meta-data/",
        "http://[fd00:ec2::254]:{port}/",
        "http://[::ffff:169.254.170.2]:{port}/",
        "http://\uff11\uff16\uff19\u3002254\u3002169\u3002254:{port}/",
        "http://meta.internal:{port}/",
        "http://ecs.internal:{port}/",
    ],
)
def test_metadata_addresses_stay_closed_with_private_targets_allowed(
    target: Target,
    loopback_only: ConnectLog,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    table = {"meta.internal": ["169.254.169.254"], "ecs.internal": ["127.0.0.1", "169.254.170.2"]}
    monkeypatch.setattr(exchange, "DefaultResolver", lambda: MapResolver(table))
    settings = make_settings(TASKHUB_MAX_IN_FLIGHT=str(next(_fresh_clients)))
    assert settings.allow_private_targets
    loopback_only.clear()
    outcome = fire_one(req(url.format(port=target.port)), settings)
    assert outcome.error_kind == "blocked_address", outcome.error
    assert outcome.error is not None and "cloud metadata address" in outcome.error
    assert loopback_only.addresses == []
    # Named exactly, the address opens (here the resolver's answer, to show the rule).
    named = make_settings(
        TASKHUB_MAX_IN_FLIGHT=str(next(_fresh_clients)),
        TASKHUB_ALLOWED_TARGET_NETWORKS="169.254.169.254/32",
    )
    table["meta.internal"] = ["127.0.0.1"]
    token = uuid.uuid4().hex
    opened = fire_one(req(f"http://meta.internal:{target.port}/echo/{token}"), named)
    assert opened.http_status == 200 and len(target.hits(token)) == 1


def test_a_port_outside_the_allow_list_is_refused_before_connecting(
    target: Target, loopback_only: ConnectLog
) -> None:
    settings = make_settings(TASKHUB_ALLOWED_TARGET_PORTS="443")
    token = uuid.uuid4().hex
    loopback_only.clear()
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}"), settings)
    assert outcome.error_kind == "blocked_address"
    assert outcome.error == (
        f"blocked_address: port {target.port} is not allowed (TASKHUB_ALLOWED_TARGET_PORTS=443)"
    )
    assert loopback_only.addresses == [] and target.hits(token) == []
    allowed = make_settings(TASKHUB_ALLOWED_TARGET_PORTS=f"443,{target.port}")
    assert fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}"), allowed).http_status == 200


@pytest.mark.parametrize(
    "to",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/",
        "http://localhost/",
        "http://10.0.0.1/",
    ],
)
def test_a_redirect_to_a_blocked_address_is_reported_never_followed(
    target: Target, loopback_only: ConnectLog, to: str
) -> None:
    settings = make_settings(allow_private=False, TASKHUB_ALLOWED_TARGET_NETWORKS="127.0.0.0/8")
    loopback_only.clear()
    outcome = fire_one(
        req(f"http://127.0.0.1:{target.port}/redirect-away?to={to}", timeout_s=5), settings
    )
    assert outcome.http_status == 302
    assert outcome.error == "HTTP 302"
    assert set(loopback_only.addresses) <= {"127.0.0.1"}
