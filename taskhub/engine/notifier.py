"""The notifier: turns each channel's pending events into grouped messages and sends them.

It runs in a thread of every worker that runs the staging loop (the discovery workers),
every :data:`~taskhub.core.notifications.PASS_INTERVAL_S`. A pass has two steps:

1. **Group.** For each channel with events waiting whose window is open
   (:func:`~taskhub.core.notifications.due_to_send`), take the window (a conditional
   update of the channel's ``last_message_at``: of two notifiers, one wins), and, in the
   same transaction, write one ``notifications`` row (``pending``) holding the message's
   document, and delete the events it takes from the outbox. A crash before the commit
   leaves the events waiting; after it, the message is in the database and any notifier
   sends it.
2. **Send.** Each pending message whose time has come is leased (its
   ``next_attempt_at`` moved ahead by :data:`~taskhub.core.notifications.LEASE_S`, a
   conditional update again), sent outside any transaction, and its outcome recorded
   under the same lease: ``sent``, or ``pending`` again after a wait, or ``failed`` once
   its tries are used up. A notifier that dies mid-send leaves its lease to run out, and
   that one message is sent again: a crash repeats at most the message it was sending.

A webhook channel's message is a signed POST (the tenant's signing secrets, as a trigger
is signed) through ``exchange``, with its SSRF guard; so is a Slack channel's (Slack's
payload); an email channel's goes through ``TASKHUB_SMTP_URL``.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine, RowMapping

from taskhub.core import limits, notifications
from taskhub.core.messages import TriggerRequest
from taskhub.core.notifications import ChannelKind
from taskhub.core.sealing import SealingError, sealer_for
from taskhub.core.settings import Settings
from taskhub.core.signing import Scheme
from taskhub.core.smtp import parse_smtp_url
from taskhub.core.statuses import NotificationStatus
from taskhub.db import key_queries, metric_queries, notification_queries
from taskhub.engine import exchange
from taskhub.engine.once_threads import OnceThread
from taskhub.observability import counters

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Messages one pass sends at most (the rest wait for the next pass).
SENDS_PER_PASS = 20
#: Events one message reads of its channel's outbox (it names at most
#: ``MAX_TASKS_PER_NOTIFICATION`` tasks of them).
EVENTS_READ_PER_MESSAGE = 20_000


@dataclass(frozen=True)
class Delivery:
    """How one try went: ``error`` None when the channel accepted the message."""

    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def channel_url(channel: RowMapping | Mapping[str, Any], settings: Settings) -> str:
    """The URL a webhook or Slack channel posts to (a Slack URL is stored sealed)."""
    if channel["sealed_url"] is not None:
        return sealer_for(settings).unseal(channel["sealed_url"])
    url: str = channel["url"]
    return url


def deliver(
    conn_engine: Engine,
    channel: RowMapping | Mapping[str, Any],
    notification_id: int,
    attempt: int,
    document: Mapping[str, Any],
    settings: Settings,
) -> Delivery:
    """Send ``document`` to ``channel`` once; never raises for the channel's faults."""
    try:
        kind = ChannelKind(channel["kind"])
        if kind is ChannelKind.EMAIL:
            return _email(channel, notification_id, document, settings)
        body = document if kind is ChannelKind.WEBHOOK else notifications.slack_body(document)
        secrets: dict[str, list[str]] = {}
        if kind is ChannelKind.WEBHOOK:
            with conn_engine.connect() as conn:
                found = key_queries.active_sealed_signing_secrets(conn, [channel["tenant"]])
            secrets = found.get(channel["tenant"], {})
        request = TriggerRequest(
            execution_id=notification_id,
            attempt=attempt,
            task_id=str(channel["id"]),
            scheduled_for=_created_at(document),
            idempotency_key=f"taskhub-notification-{notification_id}",
            url=channel_url(channel, settings),
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps(body, separators=(",", ":")),
            timeout_s=notifications.SEND_TIMEOUT_S,
            sealed_signing_secrets=tuple(secrets.get(Scheme.TASKHUB.value, ())),
            sealed_webhook_secrets=tuple(secrets.get(Scheme.STANDARD_WEBHOOKS.value, ())),
            tenant=channel["tenant"],
        )
        outcome = exchange.make_attempt_blocking(request, settings)
    except SealingError as error:
        return Delivery(str(error))
    if outcome.http_status is not None and 200 <= outcome.http_status < 300:
        return Delivery()
    if outcome.http_status is not None:
        return Delivery(f"HTTP {outcome.http_status}")
    return Delivery(outcome.error or outcome.error_kind or "not sent")


def _created_at(document: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(document["created_at"]))


def _email(
    channel: RowMapping | Mapping[str, Any],
    notification_id: int,
    document: Mapping[str, Any],
    settings: Settings,
) -> Delivery:
    from taskhub.engine.smtp_sending import send_email

    if settings.smtp_url is None:
        return Delivery("no mail server: TASKHUB_SMTP_URL is not set")
    server = parse_smtp_url(settings.smtp_url)
    try:
        send_email(
            server,
            settings.smtp_from,
            list(channel["recipients"] or ()),
            notifications.subject(document),
            notifications.text(document),
            notifications.SEND_TIMEOUT_S,
            message_id=f"<taskhub-notification-{notification_id}@taskhub>",
        )
    except smtplib.SMTPException as error:
        return Delivery(f"SMTP {server.described()}: {type(error).__name__}: {error}"[:500])
    except OSError as error:
        return Delivery(f"SMTP {server.described()}: {error.strerror or type(error).__name__}")
    return Delivery()


# --- the pass -------------------------------------------------------------------------


def max_tasks_of(kind: str) -> int:
    if kind == ChannelKind.SLACK.value:
        return notifications.MAX_TASKS_PER_SLACK_MESSAGE
    return limits.MAX_TASKS_PER_NOTIFICATION


def group_pending(engine: Engine, now: datetime) -> int:
    """Step 1: one message per channel whose window is open. Returns messages made."""
    made = 0
    with engine.connect() as conn:
        waiting = notification_queries.pending_by_channel(conn)
    for channel in waiting:
        if not notifications.due_to_send(now, channel["oldest"], channel["last_message_at"]):
            continue
        with engine.begin() as conn:
            if not notification_queries.take_window(
                conn, channel["id"], channel["last_message_at"], now
            ):
                continue  # another notifier took this window
            events = notification_queries.pending_events(
                conn, channel["id"], EVENTS_READ_PER_MESSAGE
            )
            plan = notifications.plan_message(events, max_tasks_of(channel["kind"]))
            if not plan.event_ids:
                continue
            notification_id = notification_queries.insert_notification(
                conn,
                {
                    "tenant": channel["tenant"],
                    "channel_id": channel["id"],
                    "channel_name": channel["name"],
                    "channel_kind": channel["kind"],
                    "is_test": False,
                    "status": NotificationStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "counts": plan.counts,
                    "task_ids": [t.task_id for t in plan.tasks],
                    "payload": {},
                    "created_at": now,
                },
            )
            document = notifications.payload(notification_id, channel["name"], plan, now)
            notification_queries.set_payload(conn, notification_id, document)
            notification_queries.take_events(conn, plan.event_ids)
            made += 1
    return made


def send_due(engine: Engine, settings: Settings, clock: Clock) -> int:
    """Step 2: send each pending message whose time has come, under a lease."""
    sent = 0
    with engine.connect() as conn:
        due = notification_queries.due_notifications(conn, clock(), SENDS_PER_PASS)
    for row in due:
        if send_one(engine, settings, clock, row):
            sent += 1
    return sent


def send_one(
    engine: Engine, settings: Settings, clock: Clock, row: RowMapping | Mapping[str, Any]
) -> bool:
    """Lease, send and record one message; whether this call sent it."""
    lease_until = clock() + timedelta(seconds=notifications.LEASE_S)
    with engine.begin() as conn:
        if not notification_queries.lease_notification(
            conn, row["id"], row["next_attempt_at"], lease_until
        ):
            return False  # another notifier has it
        channel = notification_queries.get_channel(conn, None, row["channel_id"])
    attempt = row["attempts"] + 1
    if channel is None:
        delivery = Delivery("the channel was deleted")
    else:
        delivery = deliver(engine, channel, row["id"], attempt, row["payload"], settings)
    with engine.begin() as conn:
        record_try(conn, row["id"], lease_until, attempt, delivery, clock(), channel is None)
    if not delivery.ok:
        log.warning(
            "notification %s to channel %s (%s): try %d failed: %s",
            row["id"],
            row["channel_name"],
            row["channel_kind"],
            attempt,
            delivery.error,
            extra={"notification_id": row["id"], "channel_id": str(row["channel_id"])},
        )
    return delivery.ok


def record_try(
    conn: Connection,
    notification_id: int,
    lease_until: datetime,
    attempt: int,
    delivery: Delivery,
    now: datetime,
    final: bool = False,
) -> bool:
    """``sent``; or ``pending`` again after :data:`RETRY_AFTER_S`; or ``failed`` after
    :data:`MAX_SEND_ATTEMPTS` tries (or at once when ``final``)."""
    result = "sent"
    if delivery.ok:
        values: dict[str, Any] = {
            "status": NotificationStatus.SENT.value,
            "next_attempt_at": None,
            "error": None,
            "sent_at": now,
        }
    elif final or attempt >= notifications.MAX_SEND_ATTEMPTS:
        result = "failed"
        values = {
            "status": NotificationStatus.FAILED.value,
            "next_attempt_at": None,
            "error": delivery.error,
        }
    else:
        result = "retrying"
        values = {
            "next_attempt_at": now + timedelta(seconds=notifications.RETRY_AFTER_S),
            "error": delivery.error,
        }
    if not notification_queries.finish_try(conn, notification_id, lease_until, values):
        return False  # the lease ran out and another notifier took the message
    metric_queries.add_to_counters(conn, counters.for_notification_try(result))
    return True


def run_pass(engine: Engine, settings: Settings, clock: Clock) -> tuple[int, int]:
    """One pass: (messages made, messages sent)."""
    made = group_pending(engine, clock())
    return made, send_due(engine, settings, clock)


def run(engine: Engine, settings: Settings, clock: Clock, stop: threading.Event) -> None:
    """Until ``stop`` is set: a pass every :data:`PASS_INTERVAL_S`."""
    while not stop.wait(notifications.PASS_INTERVAL_S):
        started = time.monotonic()
        try:
            made, sent = run_pass(engine, settings, clock)
        except Exception:  # the database is away: the next pass tries again
            log.warning("notifier pass failed; retrying", exc_info=True)
            continue
        if made or sent:
            log.info(
                "notifier: %d messages grouped, %d sent (%.2f s)",
                made,
                sent,
                time.monotonic() - started,
            )


_thread = OnceThread("taskhub-notifier")


def start(engine: Engine, settings: Settings, clock: Clock) -> threading.Event:
    """Start this process's notifier (once); returns the event that stops it."""
    return _thread.start(lambda stop: run(engine, settings, clock, stop))
