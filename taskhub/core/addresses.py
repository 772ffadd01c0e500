"""Which URLs, addresses and ports taskhub refuses to connect to (SSRF), as pure functions.

Used twice, the same way: by ``definitions`` when a task is created or changed (a clear
422 at once, rather than a failed execution later), and by ``trigger`` before every
attempt and on every resolved address. Both read a URL with :func:`parse_target_url`,
which is yarl's parse, the one taskhub's HTTP client connects by: a host written in
full-width digits or with ideographic full stops is 127.0.0.1 to both, never a host name
to one of them.

An operator may let chosen private networks through (``TASKHUB_ALLOWED_TARGET_NETWORKS``)
while the guard stays on for everything else, or turn the guard off for private
addresses (``TASKHUB_ALLOW_PRIVATE_TARGETS=1``). The cloud metadata services
(:data:`CLOUD_METADATA`) stay closed either way unless an allowed network names them, and
``TASKHUB_ALLOWED_TARGET_PORTS`` narrows the ports.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final, NamedTuple, TypeVar

from yarl import URL

__all__ = [
    "CLOUD_METADATA",
    "AddressPolicy",
    "Network",
    "TargetURL",
    "TargetURLError",
    "a_or_an",
    "blocked_reason",
    "literal_address",
    "metadata_network",
    "parse_networks",
    "parse_ports",
    "parse_target_url",
    "target_refusal",
]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
PortRange = tuple[int, int]


_N = TypeVar("_N", bound=Network)


def _table(network: Callable[[str], _N], text: str) -> tuple[tuple[_N, str], ...]:
    """A block list written as a table: a network and its label per line (``#``: a note)."""
    rows = (line.split(maxsplit=1) for line in text.splitlines())
    return tuple((network(row[0]), row[1]) for row in rows if row and row[0] != "#")


def _v6(cidr: str) -> IPv6Network:
    return IPv6Network(cidr)


#: The cloud metadata and credential endpoints, as their providers document them. They hand
#: out the machine's own credentials (on AWS the worker's IAM role, the same role that
#: reads SQS), so they stay closed even with ``TASKHUB_ALLOW_PRIVATE_TARGETS=1``: only an
#: allowed network no wider than the entry itself opens one (see :class:`AddressPolicy`).
CLOUD_METADATA: Final[tuple[tuple[Network, str], ...]] = _table(
    ipaddress.ip_network,
    """
    # EC2 IMDS; also Google Cloud, Azure IMDS, Oracle Cloud, OpenStack, DigitalOcean.
    169.254.169.254/32    instance metadata service
    169.254.170.2/32      ECS task metadata and credentials endpoint
    169.254.170.23/32     EKS Pod Identity credentials endpoint
    100.100.100.200/32    Alibaba Cloud metadata service
    168.63.129.16/32      Azure platform endpoint (WireServer)
    fd00:ec2::254/128     instance metadata service (EC2, IPv6)
    fd00:ec2::23/128      EKS Pod Identity credentials endpoint (IPv6)
""",
)

# Most specific first: the first match names the class.
_V4_BLOCKS: Final[tuple[tuple[IPv4Network, str], ...]] = _table(
    IPv4Network,
    """
    0.0.0.0/32            unspecified address
    0.0.0.0/8             reserved address (this network)
    127.0.0.0/8           loopback address
    10.0.0.0/8            private address (RFC 1918)
    172.16.0.0/12         private address (RFC 1918)
    192.168.0.0/16        private address (RFC 1918)
    100.64.0.0/10         private address (shared address space, RFC 6598)
    169.254.0.0/16        link-local address
    192.0.0.0/24          reserved address (IETF protocol assignments)
    192.0.2.0/24          reserved address (documentation)
    198.51.100.0/24       reserved address (documentation)
    203.0.113.0/24        reserved address (documentation)
    192.88.99.0/24        reserved address (6to4 relay anycast)
    198.18.0.0/15         reserved address (benchmarking)
    224.0.0.0/4           multicast address
    255.255.255.255/32    reserved address (broadcast)
    240.0.0.0/4           reserved address
""",
)

_V6_MAPPED: Final = _v6("::ffff:0:0/96")
_V6_NAT64: Final = _v6("64:ff9b::/96")
_V6_6TO4: Final = _v6("2002::/16")
_V6_GLOBAL_UNICAST: Final = _v6("2000::/3")
_V6_BLOCKS: Final[tuple[tuple[IPv6Network, str], ...]] = _table(
    IPv6Network,
    """
    ::/128                unspecified address
    ::1/128               loopback address
    ::/96                 reserved address (IPv4-compatible)
    64:ff9b:1::/48        private address (local-use NAT64)
    100::/64              reserved address (discard-only)
    2001:db8::/32         reserved address (documentation)
    3fff::/20             reserved address (documentation)
    2001::/23             reserved address (IETF protocol assignments)
    fc00::/7              unique-local address
    fe80::/10             link-local address
    fec0::/10             site-local address
    ff00::/8              multicast address
""",
)


def _metadata_entry(address: Address) -> tuple[Network, str] | None:
    for network, name in CLOUD_METADATA:
        if address.version == network.version and address in network:
            return network, name
    return None


def metadata_network(address: Address) -> Network | None:
    """The :data:`CLOUD_METADATA` entry ``address`` is, or embeds (IPv4-mapped, NAT64,
    6to4, IPv4-compatible), or None."""
    plain = address if isinstance(address, IPv4Address) else IPv6Address(int(address))
    entry = _metadata_entry(plain)
    if entry is None and isinstance(plain, IPv6Address):
        inner = _carried_v4(plain)
        entry = None if inner is None else _metadata_entry(inner)
    return None if entry is None else entry[0]


def blocked_reason(address: IPv4Address | IPv6Address) -> str | None:
    """Why taskhub must not connect to ``address`` (an address class), or None if it may.

    Refused: the cloud metadata services (:data:`CLOUD_METADATA`), loopback, private
    (RFC 1918, RFC 6598), link-local, unique-local fc00::/7, site-local, unspecified,
    multicast, reserved and documentation ranges, anything outside IPv6 global unicast,
    and IPv6 forms that embed a blocked IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96,
    6to4).
    """
    if isinstance(address, IPv4Address):
        return _listed_reason(address, _V4_BLOCKS)
    plain = IPv6Address(int(address))  # drop any %scope
    if plain in _V6_MAPPED:
        inner = blocked_reason(IPv4Address(int(plain) & 0xFFFFFFFF))
        return None if inner is None else f"IPv4-mapped {inner}"
    if plain in _V6_NAT64:
        inner = blocked_reason(IPv4Address(int(plain) & 0xFFFFFFFF))
        return None if inner is None else f"NAT64 address embedding {a_or_an(inner)}"
    if plain in _V6_6TO4:
        embedded = plain.sixtofour
        inner = None if embedded is None else blocked_reason(embedded)
        return None if inner is None else f"6to4 address embedding {a_or_an(inner)}"
    reason = _listed_reason(plain, _V6_BLOCKS)
    if reason is None and plain not in _V6_GLOBAL_UNICAST:
        return "reserved address"
    return reason


def _listed_reason(address: Address, blocks: Sequence[tuple[Network, str]]) -> str | None:
    """The class of ``address`` by the block lists (its own version's), or None."""
    metadata = _metadata_entry(address)
    if metadata is not None:
        return f"cloud metadata address ({metadata[1]})"
    return next((reason for network, reason in blocks if address in network), None)


def a_or_an(reason: str) -> str:
    """A reason with its article, as messages print it: "an IPv4-mapped loopback
    address", "an unspecified address", "a unique-local address" (said "you-")."""
    vowel_sound = reason[:1].lower() in "aeio" or (
        reason[:2].lower() == "un" and not reason.lower().startswith("uni")
    )
    return f"{'an' if vowel_sound else 'a'} {reason}"


def _embedded_v4(address: IPv6Address) -> IPv4Address | None:
    plain = IPv6Address(int(address))
    if plain in _V6_MAPPED or plain in _V6_NAT64:
        return IPv4Address(int(plain) & 0xFFFFFFFF)
    return None


_V6_COMPATIBLE: Final = _v6("::/96")


def _carried_v4(address: IPv6Address) -> IPv4Address | None:
    """Any IPv4 address an IPv6 form carries (IPv4-mapped, NAT64, 6to4, IPv4-compatible)."""
    if address in _V6_6TO4:
        return address.sixtofour
    if address in _V6_MAPPED or address in _V6_NAT64 or address in _V6_COMPATIBLE:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """What may be connected to.

    Addresses: every address that :func:`blocked_reason` passes, plus those inside
    ``allowed_networks``, plus every private one with ``allow_private``. A cloud metadata
    address (:data:`CLOUD_METADATA`) is refused under both, unless an allowed network
    *names* it: one inside its entry (``169.254.169.254/32``), not a wider one that
    happens to contain it (``169.254.0.0/16``, ``0.0.0.0/0``).

    Ports: any, or only those in ``allowed_ports`` (inclusive ranges) when it is given.
    """

    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()
    allowed_ports: tuple[PortRange, ...] = ()

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused under this policy, or None if it may be used."""
        metadata = metadata_network(address)
        if metadata is not None:
            if any(_inside(network, metadata) for network in self.allowed_networks):
                return None
            return blocked_reason(address) or "cloud metadata address"
        if self.allow_private:
            return None
        reason = blocked_reason(address)
        if reason is None or self._allowed(address):
            return None
        return reason

    def port_refusal(self, port: int) -> str | None:
        """Why ``port`` is refused (it is outside ``allowed_ports``), or None."""
        if not self.allowed_ports or any(low <= port <= high for low, high in self.allowed_ports):
            return None
        allowed = format_ports(self.allowed_ports)
        return f"port {port} is not allowed (TASKHUB_ALLOWED_TARGET_PORTS={allowed})"

    def _allowed(self, address: Address) -> bool:
        candidates: list[Address] = [address]
        if isinstance(address, IPv6Address):
            candidates[0] = IPv6Address(int(address))  # drop any %scope
            inner = _embedded_v4(address)
            if inner is not None:
                candidates.append(inner)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allowed_networks
        )


def _inside(network: Network, outer: Network) -> bool:
    if isinstance(network, IPv4Network) and isinstance(outer, IPv4Network):
        return network.subnet_of(outer)
    if isinstance(network, IPv6Network) and isinstance(outer, IPv6Network):
        return network.subnet_of(outer)
    return False


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (``10.1.0.0/16, fd12::/48``); ValueError names the bad one."""
    networks: list[Network] = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item[:60]!r} is not a CIDR network such as 10.1.0.0/16") from None
    return tuple(networks)


_LEGACY_V4: Final = re.compile(r"[0-9a-fA-FxX.]+")


def literal_address(host: str) -> Address | None:
    """The address an IP-literal URL host names, or None for a host name.

    Accepts ``[::1]`` brackets and the legacy IPv4 forms that resolvers and browsers still
    honour (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``), so none of them
    slips past a check of literals.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0] if ":" in text else text
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if (
        ":" in text
        or not _LEGACY_V4.fullmatch(text.rstrip("."))
        or not any(c.isdigit() for c in text)
    ):
        return None
    try:
        return IPv4Address(socket.inet_aton(text.rstrip(".")))
    except OSError:
        return None


def parse_ports(text: str) -> tuple[PortRange, ...]:
    """Comma-separated ports and inclusive ranges (``80, 443, 8000-8999``); empty: any
    port. ValueError names the bad item."""
    ranges: list[PortRange] = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        low_text, dash, high_text = item.partition("-")
        try:
            low = int(low_text.strip())
            high = int(high_text.strip()) if dash else low
        except ValueError:
            low = high = -1
        if not (1 <= low <= high <= 65535) or not item.replace("-", "").replace(" ", "").isascii():
            raise ValueError(
                f"{item[:60]!r} is not a port (1-65535) or a range of ports such as 8000-8999"
            )
        ranges.append((low, high))
    return tuple(ranges)


def format_ports(ranges: tuple[PortRange, ...]) -> str:
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


class TargetURLError(ValueError):
    """A target URL taskhub's HTTP client cannot or must not request; ``message`` reads
    after the field name (``target.url: must be an http:// or https:// URL``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TargetURL(NamedTuple):
    """A target URL as the HTTP client reads it (a tuple: read for every attempt, and a
    frozen dataclass costs twice as much to make)."""

    url: URL
    #: The host the client connects to or resolves: IDNA-encoded, lower case, no brackets.
    host: str
    #: The port connected to (the scheme's default when the URL gives none).
    port: int
    #: The address an IP-literal host names, in any spelling; None for a host name.
    address: Address | None


def _looks_like_ip(host: str) -> bool:
    # The test for "connect to this literally, never resolve it" (aiohttp's too).
    return ":" in host or host.replace(".", "").isdigit()


def parse_target_url(text: str) -> TargetURL:
    """``text`` parsed with yarl, as the HTTP client will request it, or
    :class:`TargetURLError`.

    yarl normalises the host as the connection will use it (Unicode compatibility forms
    and IDNA: full-width digits are digits, U+3002 is a dot, so both spell
    ``127.0.0.1``), so the address checked is the address connected to. A host that the
    client would connect to literally must be a canonical IP address (the client refuses
    ``127.1`` or ``2130706433`` itself); a host name written as a legacy IPv4 number that
    a resolver still reads (``0x7f000001``) is the address it resolves to.
    """
    try:
        url = URL(text)
        scheme = url.scheme.lower()
        host = url.raw_host
        port = url.port
        user, password = url.raw_user, url.raw_password
    except Exception:  # ValueError mostly; yarl raises IndexError for "http://[]@"
        raise TargetURLError("is not a valid URL") from None
    if scheme not in ("http", "https"):
        raise TargetURLError("must be an http:// or https:// URL")
    if not host or port is None:
        raise TargetURLError("has no host")
    if user is not None or password is not None:
        raise TargetURLError("must not carry credentials: use a header")
    address: Address | None
    if _looks_like_ip(host):
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            legacy = literal_address(host)
            hint = "" if legacy is None else f": write {legacy}"
            raise TargetURLError(
                f"the host {host[:60]!r} is not a canonical IP address{hint}"
            ) from None
    elif _LEGACY_V4.fullmatch(host) and any(c.isdigit() for c in host):
        address = literal_address(host)  # 0x7f000001: a name a resolver reads as a number
    else:
        address = None  # a host name (most URLs): checked when it resolves
    return TargetURL(url, host, port, address)


def target_refusal(target: TargetURL, policy: AddressPolicy) -> str | None:
    """Why ``policy`` refuses this URL before any lookup (its port, or its IP-literal
    host), as a message that reads after the field name; None if it may be tried."""
    reason = policy.port_refusal(target.port)
    if reason is not None:
        return reason
    if target.address is None:
        return None
    reason = policy.refusal(target.address)
    if reason is None:
        return None
    return (
        f"{target.address} is {a_or_an(reason)}; taskhub does not call it "
        "(see TASKHUB_ALLOWED_TARGET_NETWORKS)"
    )
