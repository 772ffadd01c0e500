"""Notifications: what a channel is, which events a task's executions raise, and how a
channel's pending events become one message. Pure functions, no I/O.

Events are recorded as they happen (the write-back and the claim add them to an outbox);
a notifier sends each channel's pending events grouped: the first event of a quiet
channel waits :data:`GATHER_S` for others, and a channel gets at most one message per
:data:`WINDOW_S`, so a minute in which a thousand tasks fail sends one message, naming
each task (up to :data:`~taskhub.core.limits.MAX_TASKS_PER_NOTIFICATION`; the rest go
in the channel's next message).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from taskhub.core import limits
from taskhub.core.addresses import AddressPolicy, TargetURLError, parse_target_url, target_refusal
from taskhub.core.errors import ValidationError
from taskhub.core.fields import integer

#: At most one message per channel in this many seconds (the rate limit).
WINDOW_S = 60.0
#: How long the first pending event of a channel waits for others before it is sent.
GATHER_S = 10.0
#: How long one process holds a message it is sending: another sends it only after this
#: (so a process that dies mid-send repeats at most that one message).
LEASE_S = 120.0
#: Tries of one message (a response other than 2xx, a connection error, an SMTP error).
MAX_SEND_ATTEMPTS = 3
#: The wait before the next try of a message whose try failed.
RETRY_AFTER_S = 60.0
#: The timeout of one try (HTTP or SMTP).
SEND_TIMEOUT_S = 10.0
#: How often the notifier looks for messages to send.
PASS_INTERVAL_S = 2.0
#: Slack cuts a message's text at 40,000 characters: a Slack message names at most this
#: many tasks (the rest go in the channel's next message).
MAX_TASKS_PER_SLACK_MESSAGE = 400
#: What one task's entry lists of its events in one message (the rest are counted).
MAX_EVENTS_SHOWN_PER_TASK = 5


class EventKind(StrEnum):
    """What a channel can be told about.

    - ``dead_letter``: an execution exhausted its attempts;
    - ``auto_paused``: a task was paused by its ``auto_pause_after_failures``;
    - ``late``: a request was sent more than its task's ``max_lag_seconds`` after its
      due time, or occurrences were missed (the misfire policy applied);
    - ``recovered``: the first success after one or more failed executions in a row.
    """

    DEAD_LETTER = "dead_letter"
    AUTO_PAUSED = "auto_paused"
    LATE = "late"
    RECOVERED = "recovered"


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    SLACK = "slack"


CHANNEL_FIELDS = ("name", "kind", "url", "to", "events")
_NAME = re.compile(limits.CHANNEL_NAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: An address a mail server takes: local part, ``@``, a domain; no spaces, commas or
#: angle brackets (each recipient is one address, not a header's list).
_EMAIL = re.compile(r"^[^@\s,;<>\"()\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ChannelDefinition:
    """A channel as validated: a webhook or Slack channel has ``url``, an email channel
    ``to``; ``events`` the kinds it is told about, in :class:`EventKind` order."""

    name: str
    kind: ChannelKind
    events: tuple[EventKind, ...]
    url: str | None = None
    to: tuple[str, ...] = ()


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(
            "name",
            f"is required: 1 to {limits.MAX_CHANNEL_NAME_CHARS} lower-case letters, digits, "
            "'_', '.' or '-', starting with a letter or digit",
        )
    return value


def _kind(value: Any) -> ChannelKind:
    kinds = ", ".join(k.value for k in ChannelKind)
    if not isinstance(value, str) or value not in {k.value for k in ChannelKind}:
        raise ValidationError("kind", f"is required: one of {kinds}")
    return ChannelKind(value)


def _events(value: Any) -> tuple[EventKind, ...]:
    known = [k.value for k in EventKind]
    if value is None:
        return tuple(EventKind)
    if not isinstance(value, list) or not value:
        raise ValidationError("events", f"must be a non-empty list of: {', '.join(known)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or item not in known:
            raise ValidationError(f"events[{index}]", f"must be one of {', '.join(known)}")
    return tuple(k for k in EventKind if k.value in value)


def _url(value: Any, address_policy: AddressPolicy | None) -> str:
    """The target URL check of a task's ``target.url``, naming ``url``."""
    if not isinstance(value, str) or not value:
        raise ValidationError("url", "is required for a webhook or slack channel")
    if len(value) > limits.MAX_URL_CHARS:
        raise ValidationError("url", f"at most {limits.MAX_URL_CHARS} characters")
    if _CONTROL.search(value) or " " in value:
        raise ValidationError("url", "must not contain spaces or control characters")
    try:
        target = parse_target_url(value)
    except TargetURLError as error:
        raise ValidationError("url", error.message) from None
    if address_policy is not None:
        refusal = target_refusal(target, address_policy)
        if refusal is not None:
            raise ValidationError("url", refusal)
    return value


def _to(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValidationError("to", "is required for an email channel: a list of addresses")
    if len(value) > limits.MAX_EMAIL_RECIPIENTS:
        raise ValidationError("to", f"at most {limits.MAX_EMAIL_RECIPIENTS} addresses")
    found: list[str] = []
    for index, item in enumerate(value):
        if (
            not isinstance(item, str)
            or len(item) > limits.MAX_EMAIL_ADDRESS_CHARS
            or not _EMAIL.match(item)
        ):
            raise ValidationError(
                f"to[{index}]", "must be an email address such as ops@example.com"
            )
        if item not in found:
            found.append(item)
    return tuple(found)


def parse_channel(
    data: Any, address_policy: AddressPolicy | None = None, smtp_configured: bool = True
) -> ChannelDefinition:
    """A whole channel from its JSON fields; a refusal names the field. An email channel
    needs an SMTP server (``TASKHUB_SMTP_URL``), refused naming ``kind`` without one."""
    if not isinstance(data, Mapping):
        raise ValidationError("", "the body must be a JSON object")
    for key in data:
        if key not in CHANNEL_FIELDS:
            raise ValidationError(str(key), "unknown field")
    name = _name(data.get("name"))
    kind = _kind(data.get("kind"))
    events = _events(data.get("events"))
    if kind is ChannelKind.EMAIL:
        if data.get("url") is not None:
            raise ValidationError("url", "is for webhook and slack channels; email takes 'to'")
        if not smtp_configured:
            raise ValidationError(
                "kind", "email needs an SMTP server: the operator sets TASKHUB_SMTP_URL"
            )
        return ChannelDefinition(name, kind, events, to=_to(data.get("to")))
    if data.get("to") is not None:
        raise ValidationError("to", "is for email channels; webhook and slack take 'url'")
    return ChannelDefinition(name, kind, events, url=_url(data.get("url"), address_policy))


def parse_max_lag(value: Any) -> int | None:
    """A task's ``max_lag_seconds`` (null: never late by lag)."""
    if value is None:
        return None
    return integer(value, "max_lag_seconds", limits.MIN_MAX_LAG_S, limits.MAX_MAX_LAG_S)


# --- which events an execution raises --------------------------------------------------


@dataclass(frozen=True)
class RaisedEvent:
    """One event of one task, as recorded in the outbox."""

    kind: EventKind
    task_id: str
    scheduled_for: datetime | None = None
    detail: str | None = None


def lag_s(scheduled_for: datetime, sent_at: datetime) -> float:
    return (sent_at - scheduled_for).total_seconds()


def is_late(scheduled_for: datetime, sent_at: datetime, max_lag_s: int | None) -> bool:
    """Whether a first attempt sent at ``sent_at`` exceeded the task's ``max_lag_seconds``."""
    return max_lag_s is not None and lag_s(scheduled_for, sent_at) > max_lag_s


def ended_events(
    task_id: str, failures_before: int, ended: Iterable[tuple[datetime, str, str | None]]
) -> list[RaisedEvent]:
    """The events of a task's executions that ended in one write-back, given as
    ``(scheduled_for, status, error)``: a ``dead_letter`` per dead execution, and a
    ``recovered`` for a success that ends a run of failures (``failures_before`` failed
    in a row before these)."""
    events: list[RaisedEvent] = []
    failures = failures_before
    for scheduled_for, status, error in sorted(ended, key=lambda e: e[0]):
        if status == "succeeded":
            if failures > 0:
                detail = f"succeeded after {failures} failed execution{'s' if failures > 1 else ''}"
                events.append(RaisedEvent(EventKind.RECOVERED, task_id, scheduled_for, detail))
            failures = 0
            continue
        failures += 1
        if status == "dead":
            events.append(RaisedEvent(EventKind.DEAD_LETTER, task_id, scheduled_for, error))
    return events


# --- grouping and the rate limit -------------------------------------------------------


def due_to_send(
    now: datetime, oldest_pending_at: datetime | None, last_message_at: datetime | None
) -> bool:
    """Whether a channel's pending events go out now: the oldest has waited
    :data:`GATHER_S` for others, and the channel's last message is :data:`WINDOW_S` old."""
    if oldest_pending_at is None:
        return False
    if last_message_at is not None and now < last_message_at + timedelta(seconds=WINDOW_S):
        return False
    return now >= oldest_pending_at + timedelta(seconds=GATHER_S)


@dataclass(frozen=True)
class PendingEvent:
    """An event waiting in a channel's outbox; ``task_name`` None if the task is gone."""

    id: int
    kind: str
    task_id: str
    task_name: str | None
    scheduled_for: datetime | None
    detail: str | None
    created_at: datetime


@dataclass
class TaskNotice:
    """One task's part of a message: its events (the first few shown, all counted)."""

    task_id: str
    name: str | None
    counts: dict[str, int] = field(default_factory=dict)
    shown: list[PendingEvent] = field(default_factory=list)


@dataclass(frozen=True)
class MessagePlan:
    """What one message carries: the events it takes out of the outbox, and its tasks in
    the order their first event came."""

    event_ids: list[int]
    tasks: list[TaskNotice]

    @property
    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for task in self.tasks:
            for kind, n in task.counts.items():
                totals[kind] = totals.get(kind, 0) + n
        return {k.value: totals[k.value] for k in EventKind if k.value in totals}


def plan_message(events: Sequence[PendingEvent], max_tasks: int) -> MessagePlan:
    """Group ``events`` (oldest first) by task: every event of the first ``max_tasks``
    tasks goes in this message; the other tasks' events wait for the next one."""
    tasks: dict[str, TaskNotice] = {}
    taken: list[int] = []
    for event in sorted(events, key=lambda e: e.id):
        notice = tasks.get(event.task_id)
        if notice is None:
            if len(tasks) >= max_tasks:
                continue
            notice = tasks[event.task_id] = TaskNotice(event.task_id, event.task_name)
        notice.counts[event.kind] = notice.counts.get(event.kind, 0) + 1
        if len(notice.shown) < MAX_EVENTS_SHOWN_PER_TASK:
            notice.shown.append(event)
        taken.append(event.id)
    return MessagePlan(taken, list(tasks.values()))


# --- what a message says ---------------------------------------------------------------

_WORDS = {
    "dead_letter": ("dead letter", "dead letters"),
    "auto_paused": ("task auto-paused", "tasks auto-paused"),
    "late": ("late", "late"),
    "recovered": ("recovered", "recovered"),
    "test": ("test", "test"),
}


def summary(counts: Mapping[str, int], tasks: int) -> str:
    """``3 dead letters, 1 late (4 tasks)``."""
    parts = []
    for kind, n in counts.items():
        one, many = _WORDS.get(kind, (kind, kind))
        parts.append(f"{n} {one if n == 1 else many}")
    return f"{', '.join(parts) or 'nothing'} ({tasks} task{'' if tasks == 1 else 's'})"


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


def payload(
    notification_id: int, channel: str, plan: MessagePlan, created_at: datetime
) -> dict[str, Any]:
    """The JSON document a webhook channel receives (and what the others render)."""
    return {
        "type": "taskhub.notification",
        "id": notification_id,
        "channel": channel,
        "created_at": created_at.isoformat(),
        "summary": summary(plan.counts, len(plan.tasks)),
        "counts": plan.counts,
        "tasks": [
            {
                "id": t.task_id,
                "name": t.name,
                "counts": {k.value: t.counts[k.value] for k in EventKind if k.value in t.counts},
                "events": [
                    {
                        "kind": e.kind,
                        "scheduled_for": _iso(e.scheduled_for),
                        "detail": e.detail,
                        "at": e.created_at.isoformat(),
                    }
                    for e in t.shown
                ],
            }
            for t in plan.tasks
        ],
    }


def trial_payload(notification_id: int, channel: str, created_at: datetime) -> dict[str, Any]:
    """What ``POST /v1/notification-channels/{id}/test`` sends: a message with no task."""
    return {
        "type": "taskhub.notification.test",
        "id": notification_id,
        "channel": channel,
        "created_at": created_at.isoformat(),
        "summary": f"a test message to the channel {channel!r}",
        "counts": {},
        "tasks": [],
    }


def subject(document: Mapping[str, Any]) -> str:
    return f"[taskhub] {document['channel']}: {document['summary']}"


def _task_line(task: Mapping[str, Any]) -> str:
    name = task["name"] if task["name"] is not None else "(deleted task)"
    counts = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in task["counts"].items())
    return f"{name} ({task['id']}): {counts}"


def text(document: Mapping[str, Any]) -> str:
    """The plain text of an email: the summary, then one line per task and its events."""
    lines = [f"taskhub notification {document['id']} to {document['channel']}:", ""]
    lines.append(str(document["summary"]))
    lines.append("")
    for task in document["tasks"]:
        lines.append(_task_line(task))
        for event in task["events"]:
            when = f" due {event['scheduled_for']}" if event["scheduled_for"] else ""
            detail = f": {event['detail']}" if event["detail"] else ""
            lines.append(f"    {event['kind']}{when}{detail}")
    return "\n".join(lines) + "\n"


def slack_body(document: Mapping[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook payload: ``text`` with one line per task."""
    lines = [f"*taskhub* {document['channel']}: {document['summary']}"]
    lines.extend(f"\u2022 {_task_line(task)}" for task in document["tasks"])
    return {"text": "\n".join(lines)}
