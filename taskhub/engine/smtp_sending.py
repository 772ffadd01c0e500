"""Sending one email through the operator's mail server (``TASKHUB_SMTP_URL``), for an
email notification channel. The server is the operator's own, so it is not held to the
target address rules; the recipients are the channel's."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid

from taskhub.core.smtp import SmtpSecurity, SmtpServer


def send_email(
    server: SmtpServer,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    timeout_s: float,
    message_id: str | None = None,
) -> None:
    """One message to every address in ``to``; raises ``OSError`` or
    ``smtplib.SMTPException`` when the server cannot be reached or refuses it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="taskhub")
    message.set_content(text)
    client: smtplib.SMTP
    if server.security is SmtpSecurity.TLS:
        client = smtplib.SMTP_SSL(
            server.host, server.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=timeout_s)
    with client:
        if server.security is SmtpSecurity.STARTTLS:
            client.starttls(context=ssl.create_default_context())
        if server.user is not None:
            client.login(server.user, server.password or "")
        client.send_message(message, from_addr=sender, to_addrs=list(to))
