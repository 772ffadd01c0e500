"""Which IP addresses taskhub refuses to connect to (SSRF), as pure functions.

Used twice: by ``definitions`` to refuse an IP-literal target when a task is created or
changed (a clear 422 at once, rather than a failed execution later), and by ``trigger``
on every literal and every resolved address at fire time. An operator may let chosen
private networks through (``TASKHUB_ALLOWED_TARGET_NETWORKS``) while the guard stays on
for everything else, or turn the guard off (``TASKHUB_ALLOW_PRIVATE_TARGETS=1``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

__all__ = [
    "AddressPolicy",
    "Network",
    "a_or_an",
    "blocked_reason",
    "literal_address",
    "parse_networks",
]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

_METADATA: Final = "cloud metadata service"


def _v4(cidr: str) -> IPv4Network:
    return IPv4Network(cidr)


def _v6(cidr: str) -> IPv6Network:
    return IPv6Network(cidr)


# Most specific first: the first match names the class.
_V4_BLOCKS: Final[tuple[tuple[IPv4Network, str], ...]] = (
    (_v4("169.254.169.254/32"), f"link-local address ({_METADATA})"),
    (_v4("0.0.0.0/32"), "unspecified address"),
    (_v4("0.0.0.0/8"), "reserved address (this network)"),
    (_v4("127.0.0.0/8"), "loopback address"),
    (_v4("10.0.0.0/8"), "private address (RFC 1918)"),
    (_v4("172.16.0.0/12"), "private address (RFC 1918)"),
    (_v4("192.168.0.0/16"), "private address (RFC 1918)"),
    (_v4("100.64.0.0/10"), "private address (shared address space, RFC 6598)"),
    (_v4("169.254.0.0/16"), "link-local address"),
    (_v4("192.0.0.0/24"), "reserved address (IETF protocol assignments)"),
    (_v4("192.0.2.0/24"), "reserved address (documentation)"),
    (_v4("198.51.100.0/24"), "reserved address (documentation)"),
    (_v4("203.0.113.0/24"), "reserved address (documentation)"),
    (_v4("192.88.99.0/24"), "reserved address (6to4 relay anycast)"),
    (_v4("198.18.0.0/15"), "reserved address (benchmarking)"),
    (_v4("224.0.0.0/4"), "multicast address"),
    (_v4("255.255.255.255/32"), "reserved address (broadcast)"),
    (_v4("240.0.0.0/4"), "reserved address"),
)

_V6_MAPPED: Final = _v6("::ffff:0:0/96")
_V6_NAT64: Final = _v6("64:ff9b::/96")
_V6_6TO4: Final = _v6("2002::/16")
_V6_GLOBAL_UNICAST: Final = _v6("2000::/3")
_V6_BLOCKS: Final[tuple[tuple[IPv6Network, str], ...]] = (
    (_v6("::/128"), "unspecified address"),
    (_v6("::1/128"), "loopback address"),
    (_v6("fd00:ec2::254/128"), f"unique-local address ({_METADATA})"),
    (_v6("::/96"), "reserved address (IPv4-compatible)"),
    (_v6("64:ff9b:1::/48"), "private address (local-use NAT64)"),
    (_v6("100::/64"), "reserved address (discard-only)"),
    (_v6("2001:db8::/32"), "reserved address (documentation)"),
    (_v6("3fff::/20"), "reserved address (documentation)"),
    (_v6("2001::/23"), "reserved address (IETF protocol assignments)"),
    (_v6("fc00::/7"), "unique-local address"),
    (_v6("fe80::/10"), "link-local address"),
    (_v6("fec0::/10"), "site-local address"),
    (_v6("ff00::/8"), "multicast address"),
)


def blocked_reason(address: IPv4Address | IPv6Address) -> str | None:
    """Why taskhub must not connect to ``address`` (an address class), or None if it may.

    Refused: loopback, private (RFC 1918, RFC 6598), link-local (169.254.169.254 and
    fd00:ec2::254 are the cloud metadata services), unique-local fc00::/7, site-local,
    unspecified, multicast, reserved and documentation ranges, anything outside IPv6
    global unicast, and IPv6 forms that embed a blocked IPv4 address (IPv4-mapped,
    NAT64 64:ff9b::/96, 6to4).
    """
    if isinstance(address, IPv4Address):
        for network, reason in _V4_BLOCKS:
            if address in network:
                return reason
        return None
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
    for network6, reason in _V6_BLOCKS:
        if plain in network6:
            return reason
    if plain not in _V6_GLOBAL_UNICAST:
        return "reserved address"
    return None


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


@dataclass(frozen=True)
class AddressPolicy:
    """What may be connected to: everything (``allow_private``), or every address that
    :func:`blocked_reason` passes plus those inside ``allowed_networks``."""

    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused under this policy, or None if it may be used."""
        if self.allow_private:
            return None
        reason = blocked_reason(address)
        if reason is None or self._allowed(address):
            return None
        return reason

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
