"""``TASKHUB_SMTP_URL``: the mail server email channels send through.

``smtp://[user[:password]@]host[:port]`` (port 25 by default), with ``?starttls=true``
to upgrade the connection with STARTTLS (port 587 by default), or
``smtps://…`` for TLS from the start (port 465 by default). User and password are
percent-decoded, so a password may hold any character.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: SmtpSecurity = SmtpSecurity.NONE
    user: str | None = None
    password: str | None = None

    def described(self) -> str:
        """The server as a log line may show it: no credentials."""
        return f"{self.host}:{self.port} ({self.security.value})"


_DEFAULT_PORTS = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_smtp_url(text: str) -> SmtpServer:
    """Raises ``ValueError`` with a message that never echoes a password."""
    parts = urlsplit(text)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("names no host")
    query = parse_qs(parts.query)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r} (known: starttls)")
    starttls = query.get("starttls", ["false"])[-1].lower()
    if starttls not in _TRUE + _FALSE:
        raise ValueError("starttls must be true or false")
    if parts.scheme == "smtps":
        if starttls in _TRUE:
            raise ValueError("smtps:// is TLS from the start: leave out starttls")
        security = SmtpSecurity.TLS
    else:
        security = SmtpSecurity.STARTTLS if starttls in _TRUE else SmtpSecurity.NONE
    try:
        port = parts.port or _DEFAULT_PORTS[security]
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    return SmtpServer(
        host=parts.hostname,
        port=port,
        security=security,
        user=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )
