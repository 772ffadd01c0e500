"""One reading of a target URL for creation and fire time, the cloud metadata services
closed under every policy that does not name them, and the port allow-list."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from taskhub.core.addresses import (
    CLOUD_METADATA,
    AddressPolicy,
    TargetURLError,
    a_or_an,
    parse_networks,
    parse_ports,
    parse_target_url,
    target_refusal,
)
from taskhub.core.definitions import parse_target
from taskhub.core.errors import ValidationError
from taskhub.core.messages import TriggerRequest
from taskhub.core.settings import SettingsError, load
from taskhub.engine import exchange

GUARD = AddressPolicy()
OPEN = AddressPolicy(allow_private=True)

#: Ways to write a digit and a dot that IDNA reads as "0".."9" and ".".
FULL_WIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
DOTS = [".", "\u3002", "\uff0e", "\uff61"]  # full stop, ideographic, full-width, halfwidth


@st.composite
def disguised_ipv4(draw: st.DrawFn) -> tuple[IPv4Address, str]:
    """An IPv4 address, and a spelling of it in mixed full-width/ASCII digits and dots."""
    address = IPv4Address(draw(st.integers(0, 2**32 - 1)))
    parts = []
    for octet in str(address).split("."):
        parts.append("".join(FULL_WIDTH[c] if draw(st.booleans()) else c for c in octet))
    text = parts[0]
    for part in parts[1:]:
        text += draw(st.sampled_from(DOTS)) + part
    return address, text


@given(disguised_ipv4())
def test_a_disguised_ipv4_literal_is_the_address_the_client_connects_to(
    case: tuple[IPv4Address, str],
) -> None:
    address, text = case
    target = parse_target_url(f"http://{text}:8080/hook")
    assert target.address == address
    # What the HTTP client connects to: yarl's host, which aiohttp passes to the socket.
    assert target.host == URL(f"http://{text}:8080/hook").raw_host == str(address)
    assert target.port == 8080


@given(disguised_ipv4())
def test_a_disguised_blocked_literal_is_refused_at_creation_and_at_fire_time(
    case: tuple[IPv4Address, str],
) -> None:
    address, text = case
    url = f"http://{text}/hook"
    reason = GUARD.refusal(address)
    refused_at_fire = _fire_time_refusal(url, GUARD)
    if reason is None:
        parse_target({"url": url}, GUARD)
        assert refused_at_fire is None
    else:
        with pytest.raises(ValidationError) as info:
            parse_target({"url": url}, GUARD)
        assert info.value.field == "target.url"
        assert str(address) in info.value.message and reason in info.value.message
        assert refused_at_fire == f"blocked_address: {address} is {a_or_an(reason)}"


def _fire_time_refusal(url: str, policy: AddressPolicy) -> str | None:
    request = TriggerRequest(
        execution_id=1,
        attempt=1,
        task_id="t",
        scheduled_for=datetime(2026, 1, 1, tzinfo=UTC),
        idempotency_key="k",
        url=url,
        method="GET",
        headers={},
        body=None,
        timeout_s=5.0,
    )
    try:
        exchange._check_request(request, policy)
    except exchange.Refused as refused:
        return refused.message
    return None


#: Pieces of URLs that parsers are known to read differently.
URL_PIECES = st.sampled_from(
    [
        "http://",
        "https://",
        "HTTP://",
        "ftp://",
        "http:",
        "//",
        "127.0.0.1",
        "127.1",
        "0x7f000001",
        "2130706433",
        "\uff11\uff12\uff17",
        "\u3002",
        "\uff0e",
        ".",
        "0",
        "1",
        "169.254.169.254",
        "[::1]",
        "[::ffff:7f00:1]",
        "[fd00:ec2::254]",
        "[",
        "]",
        "example.com",
        "xn--",
        "b\u00fccher.example",
        "@",
        "user:pw@",
        ":",
        ":80",
        ":8443",
        ":99999",
        ":\uff18\uff10",
        "%25",
        "%2e",
        "#",
        "?",
        "/",
        "\\",
        "/path",
    ]
)


@given(st.lists(URL_PIECES, min_size=1, max_size=8).map("".join))
def test_creation_and_fire_time_agree_on_every_url(url: str) -> None:
    """Whatever the spelling, a URL accepted at creation is not refused for its URL at
    fire time, and one refused at creation is refused at fire time too."""
    for policy in (GUARD, OPEN, AddressPolicy(allowed_ports=parse_ports("443"))):
        try:
            parse_target({"url": url}, policy)
            created = True
        except ValidationError as error:
            assert error.field == "target.url"
            created = False
        assert created == (_fire_time_refusal(url, policy) is None), (url, policy)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "must be an http:// or https:// URL"),
        ("http:///path", "has no host"),
        ("http://user:pw@example.com/", "must not carry credentials"),
        ("http://example.com:99999/", "is not a valid URL"),
        ("http://[]@example.com/", "is not a valid URL"),  # yarl raises IndexError
        ("http://1.2.3.4.5/", "is not a canonical IP address"),
        ("http://127.0.0.1./", "is not a canonical IP address: write 127.0.0.1"),
    ],
)
def test_unusable_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(TargetURLError, match=message):
        parse_target_url(url)


def test_the_default_port_is_the_schemes() -> None:
    assert parse_target_url("https://example.com/").port == 443
    assert parse_target_url("http://example.com/").port == 80
    assert parse_target_url("http://[::1]:8080/").address == IPv6Address("::1")
    assert parse_target_url("http://example.com/").address is None


# --------------------------------------------------------------------------- metadata


def _spellings(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """The entry's address, and the IPv6 forms that carry an IPv4 one."""
    address = network.network_address
    if isinstance(address, IPv6Address):
        return [str(address)]
    v4 = int(address)
    return [
        str(address),
        str(IPv6Address((0xFFFF << 32) | v4)),  # IPv4-mapped
        str(IPv6Address((0x64FF9B << 96) | v4)),  # NAT64
        str(IPv6Address((0x2002 << 112) | (v4 << 80))),  # 6to4
    ]


METADATA_SPELLINGS = [s for network, _ in CLOUD_METADATA for s in _spellings(network)]


@pytest.mark.parametrize("text", METADATA_SPELLINGS)
@pytest.mark.parametrize(
    "policy",
    [
        GUARD,
        OPEN,
        AddressPolicy(allow_private=True, allowed_networks=parse_networks("0.0.0.0/0, ::/0")),
        AddressPolicy(allowed_networks=parse_networks("169.254.0.0/16, 100.64.0.0/10, fd00::/8")),
    ],
)
def test_metadata_addresses_are_refused_unless_named(text: str, policy: AddressPolicy) -> None:
    reason = policy.refusal(ipaddress.ip_address(text))
    assert reason is not None and "cloud metadata" in reason


@pytest.mark.parametrize(("network", "name"), CLOUD_METADATA)
def test_an_allowed_network_that_names_a_metadata_address_opens_it(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, name: str
) -> None:
    named = AddressPolicy(allowed_networks=(network,))
    assert named.refusal(network.network_address) is None
    others = [n for n, _ in CLOUD_METADATA if n != network]
    assert all(named.refusal(n.network_address) is not None for n in others)


def test_metadata_literals_are_refused_at_creation_with_private_targets_allowed() -> None:
    for network, name in CLOUD_METADATA:
        host = network.network_address
        literal = f"[{host}]" if host.version == 6 else str(host)
        with pytest.raises(ValidationError) as info:
            parse_target({"url": f"http://{literal}/latest/meta-data/"}, OPEN)
        assert info.value.field == "target.url"
        assert f"cloud metadata address ({name})" in info.value.message
    parse_target({"url": "http://127.0.0.1:8080/"}, OPEN)  # the rest stays open


# --------------------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("", ()),
        ("443", ((443, 443),)),
        ("80, 443,8000-8999", ((80, 80), (443, 443), (8000, 8999))),
        ("1-65535", ((1, 65535),)),
    ],
)
def test_parse_ports(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_ports(text) == ranges


@pytest.mark.parametrize("text", ["0", "65536", "http", "90-80", "80-", "-80", "8\uff10"])
def test_bad_ports_name_the_setting(text: str) -> None:
    with pytest.raises(SettingsError, match="TASKHUB_ALLOWED_TARGET_PORTS"):
        load({"TASKHUB_ALLOWED_TARGET_PORTS": text})


def test_the_port_allow_list_is_enforced_at_creation() -> None:
    settings = load({"TASKHUB_ALLOWED_TARGET_PORTS": "443,8000-8999"})
    policy = settings.address_policy
    for url in ("https://example.com/", "http://example.com:8080/", "https://[2606:2800::1]/"):
        parse_target({"url": url}, policy)
    for url, port in (
        ("http://example.com/", 80),
        ("https://example.com:22/", 22),
        ("http://example.com:\uff19\uff10\uff10\uff10/", 9000),  # full-width port digits
    ):
        with pytest.raises(ValidationError) as info:
            parse_target({"url": url}, policy)
        assert info.value.field == "target.url"
        assert info.value.message == (
            f"port {port} is not allowed (TASKHUB_ALLOWED_TARGET_PORTS=443,8000-8999)"
        )


def test_any_port_by_default() -> None:
    assert load({}).allowed_target_ports == ()
    target = parse_target_url("http://example.com:1/")
    assert target_refusal(target, load({}).address_policy) is None
