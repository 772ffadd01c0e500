"""The pure rules of notifications: a channel's fields and their refusals, which events
an execution raises, the rate limit and the grouping (hypothesis), what a message says,
and ``TASKHUB_SMTP_URL``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskhub.core import limits, notifications
from taskhub.core.addresses import AddressPolicy
from taskhub.core.errors import ValidationError
from taskhub.core.notifications import (
    GATHER_S,
    WINDOW_S,
    ChannelKind,
    EventKind,
    PendingEvent,
    due_to_send,
    ended_events,
    parse_channel,
    plan_message,
)
from taskhub.core.settings import SettingsError, load
from taskhub.core.smtp import SmtpSecurity, parse_smtp_url

T0 = datetime(2030, 1, 7, tzinfo=UTC)
STRICT = AddressPolicy(False, (), ())

# --- channels -----------------------------------------------------------------------


def test_a_webhook_channel_parses_with_every_event_by_default() -> None:
    channel = parse_channel(
        {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/x"}, STRICT
    )
    assert channel.kind is ChannelKind.WEBHOOK
    assert channel.url == "https://hooks.example.com/x"
    assert channel.events == tuple(EventKind)
    assert channel.to == ()


def test_an_email_channel_keeps_distinct_addresses_and_events_in_a_fixed_order() -> None:
    channel = parse_channel(
        {
            "name": "mail.ops",
            "kind": "email",
            "to": ["ops@example.com", "dev@example.com", "ops@example.com"],
            "events": ["late", "dead_letter"],
        }
    )
    assert channel.to == ("ops@example.com", "dev@example.com")
    assert channel.events == (EventKind.DEAD_LETTER, EventKind.LATE)
    assert channel.url is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], ""),
        ({"kind": "webhook", "url": "https://e.example/"}, "name"),
        ({"name": "Ops", "kind": "webhook", "url": "https://e.example/"}, "name"),
        ({"name": "x" * 65, "kind": "webhook", "url": "https://e.example/"}, "name"),
        ({"name": "ops", "url": "https://e.example/"}, "kind"),
        ({"name": "ops", "kind": "pager", "url": "https://e.example/"}, "kind"),
        ({"name": "ops", "kind": "webhook"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "ftp://e.example/"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "https://e.example/a b"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "http://169.254.169.254/latest"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:8080/"}, "url"),
        ({"name": "ops", "kind": "slack", "url": "http://10.0.0.1/"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "https://e.example/", "to": ["a@b.c"]}, "to"),
        ({"name": "ops", "kind": "email"}, "to"),
        ({"name": "ops", "kind": "email", "to": []}, "to"),
        ({"name": "ops", "kind": "email", "to": "ops@example.com"}, "to"),
        ({"name": "ops", "kind": "email", "to": ["not an address"]}, "to[0]"),
        ({"name": "ops", "kind": "email", "to": ["a@example.com", "b@x,y"]}, "to[1]"),
        ({"name": "ops", "kind": "email", "to": ["a@b.c"] * 21}, "to"),
        ({"name": "ops", "kind": "email", "to": ["a@b.c"], "url": "https://e.example/"}, "url"),
        ({"name": "ops", "kind": "webhook", "url": "https://e.example/", "events": []}, "events"),
        (
            {"name": "ops", "kind": "webhook", "url": "https://e.example/", "events": "late"},
            "events",
        ),
        (
            {
                "name": "ops",
                "kind": "webhook",
                "url": "https://e.example/",
                "events": ["late", "x"],
            },
            "events[1]",
        ),
        ({"name": "ops", "kind": "webhook", "url": "https://e.example/", "colour": 1}, "colour"),
    ],
)
def test_a_bad_channel_is_refused_naming_its_field(data: Any, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_channel(data, STRICT)
    assert refused.value.field == field


def test_an_email_channel_needs_a_mail_server() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_channel({"name": "m", "kind": "email", "to": ["a@b.c"]}, smtp_configured=False)
    assert refused.value.field == "kind"
    assert "TASKHUB_SMTP_URL" in refused.value.message


def test_max_lag_is_a_bounded_whole_number() -> None:
    assert notifications.parse_max_lag(None) is None
    assert notifications.parse_max_lag(30) == 30
    for bad in (0, limits.MAX_MAX_LAG_S + 1, 1.5, True, "30"):
        with pytest.raises(ValidationError) as refused:
            notifications.parse_max_lag(bad)
        assert refused.value.field == "max_lag_seconds"


# --- which events an execution raises -------------------------------------------------


def test_dead_letters_and_the_first_success_after_failures_raise_events() -> None:
    events = ended_events(
        "t",
        2,
        [
            (T0 + timedelta(minutes=2), "succeeded", None),
            (T0, "dead", "HTTP 503"),
            (T0 + timedelta(minutes=1), "failed", "HTTP 404"),
            (T0 + timedelta(minutes=3), "succeeded", None),
        ],
    )
    assert [(e.kind, e.scheduled_for) for e in events] == [
        (EventKind.DEAD_LETTER, T0),
        (EventKind.RECOVERED, T0 + timedelta(minutes=2)),
    ]
    assert events[0].detail == "HTTP 503"
    assert events[1].detail == "succeeded after 4 failed executions"


def test_a_success_without_failures_before_raises_nothing() -> None:
    assert ended_events("t", 0, [(T0, "succeeded", None)]) == []


def test_lateness_is_measured_from_the_due_time() -> None:
    assert not notifications.is_late(T0, T0 + timedelta(seconds=30), 30)
    assert notifications.is_late(T0, T0 + timedelta(seconds=30.001), 30)
    assert not notifications.is_late(T0, T0 + timedelta(days=9), None)


# --- the rate limit -------------------------------------------------------------------

offsets = st.floats(min_value=0, max_value=600, allow_nan=False)


@given(oldest=offsets, last=st.none() | offsets, now=offsets)
def test_a_channel_sends_once_its_first_event_waited_and_its_window_passed(
    oldest: float, last: float | None, now: float
) -> None:
    at = T0 + timedelta(seconds=now)
    oldest_at = T0 + timedelta(seconds=oldest)
    last_at = None if last is None else T0 + timedelta(seconds=last)
    expected = now >= oldest + GATHER_S and (last is None or now >= last + WINDOW_S)
    assert due_to_send(at, oldest_at, last_at) is expected
    assert not due_to_send(at, None, last_at)


@settings(max_examples=50)
@given(
    arrivals=st.lists(st.floats(min_value=0, max_value=900, allow_nan=False), max_size=200),
    step=st.floats(min_value=0.5, max_value=5),
)
def test_at_most_one_message_per_window_and_every_event_is_sent(
    arrivals: list[float], step: float
) -> None:
    """A notifier passing every ``step`` seconds over events arriving at ``arrivals``:
    two messages of a channel are at least a window apart, and every event goes out."""
    pending = sorted(arrivals)
    # The instants as the notifier sees them (datetimes, to the microsecond): the
    # window is checked on what was compared, not on the floats before rounding.
    sent_at: list[datetime] = []
    taken = 0
    passes = 0
    while taken < len(pending):
        clock = passes * step
        now = T0 + timedelta(seconds=clock)
        waiting = [a for a in pending[taken:] if a <= clock]
        last = sent_at[-1] if sent_at else None
        oldest = None if not waiting else T0 + timedelta(seconds=waiting[0])
        if due_to_send(now, oldest, last):
            sent_at.append(now)
            taken += len(waiting)
        passes += 1
    window = timedelta(seconds=WINDOW_S)
    assert all(b - a >= window for a, b in itertools.pairwise(sent_at))
    assert taken == len(pending)
    if pending:  # a burst within one window is one message or two, never one per event
        assert len(sent_at) <= 2 + (pending[-1] - pending[0]) // WINDOW_S


def test_a_failing_minute_of_a_thousand_tasks_is_one_message() -> None:
    events = [event(i, f"task-{i}", "dead_letter", at_s=i * 0.05) for i in range(1000)]
    now = T0 + timedelta(seconds=GATHER_S + 0.01)
    assert due_to_send(now, events[0].created_at, None)
    plan = plan_message(events, limits.MAX_TASKS_PER_NOTIFICATION)
    assert len(plan.tasks) == 1000
    assert len(plan.event_ids) == 1000
    assert plan.counts == {"dead_letter": 1000}


# --- grouping -------------------------------------------------------------------------


def event(i: int, task: str, kind: str, at_s: float = 0.0) -> PendingEvent:
    return PendingEvent(
        id=i,
        kind=kind,
        task_id=task,
        task_name=f"name of {task}",
        scheduled_for=T0,
        detail=None,
        created_at=T0 + timedelta(seconds=at_s),
    )


event_lists = st.lists(
    st.tuples(st.integers(0, 30), st.sampled_from([k.value for k in EventKind])), max_size=300
).map(lambda pairs: [event(i, f"t{task}", kind) for i, (task, kind) in enumerate(pairs)])


@given(events=event_lists, max_tasks=st.integers(1, 40))
def test_a_message_takes_every_event_of_at_most_max_tasks_tasks(
    events: list[PendingEvent], max_tasks: int
) -> None:
    plan = plan_message(events, max_tasks)
    named = [t.task_id for t in plan.tasks]
    assert len(named) == len(set(named)) <= max_tasks
    taken = set(plan.event_ids)
    # Every event of a named task is taken; no event of another task is.
    assert taken == {e.id for e in events if e.task_id in named}
    # Tasks in the order their first event came: the oldest are never left waiting.
    first_seen = list(dict.fromkeys(e.task_id for e in sorted(events, key=lambda e: e.id)))
    assert named == first_seen[:max_tasks]
    assert sum(plan.counts.values()) == len(taken)
    for task in plan.tasks:
        assert len(task.shown) == min(
            sum(task.counts.values()), notifications.MAX_EVENTS_SHOWN_PER_TASK
        )


@given(events=event_lists)
def test_messages_in_turn_send_every_event_exactly_once(events: list[PendingEvent]) -> None:
    waiting = list(events)
    sent: list[int] = []
    while waiting:
        plan = plan_message(waiting, 7)
        assert plan.event_ids
        sent.extend(plan.event_ids)
        waiting = [e for e in waiting if e.id not in set(plan.event_ids)]
    assert sorted(sent) == sorted(e.id for e in events)


def test_every_task_is_named_in_the_email_text_and_the_slack_text() -> None:
    events = [event(i, f"00000000-0000-0000-0000-{i:012d}", "dead_letter") for i in range(20)]
    plan = plan_message(events, 1000)
    document = notifications.payload(7, "ops", plan, T0)
    assert document["summary"] == "20 dead letters (20 tasks)"
    text = notifications.text(document)
    slack = notifications.slack_body(document)["text"]
    for e in events:
        assert f"name of {e.task_id} ({e.task_id})" in text
        assert e.task_id in slack
    assert notifications.subject(document) == "[taskhub] ops: 20 dead letters (20 tasks)"


# --- TASKHUB_SMTP_URL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "security", "user", "password"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, SmtpSecurity.NONE, None, None),
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, SmtpSecurity.NONE, None, None),
        (
            "smtp://me%40x:p%2Fw%3A@mail.example.com?starttls=true",
            "mail.example.com",
            587,
            SmtpSecurity.STARTTLS,
            "me@x",
            "p/w:",
        ),
        ("smtps://u:p@mail.example.com", "mail.example.com", 465, SmtpSecurity.TLS, "u", "p"),
    ],
)
def test_smtp_urls(
    url: str, host: str, port: int, security: SmtpSecurity, user: str | None, password: str | None
) -> None:
    server = parse_smtp_url(url)
    assert (server.host, server.port, server.security, server.user, server.password) == (
        host,
        port,
        security,
        user,
        password,
    )
    assert server.described() == f"{host}:{port} ({security.value})"  # no credentials


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://mail.example.com?tls=1",
        "smtp://mail.example.com?starttls=maybe",
        "smtps://mail.example.com?starttls=true",
        "smtp://mail.example.com:99999",
    ],
)
def test_a_bad_smtp_url_stops_the_process_without_echoing_it(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load({"TASKHUB_SMTP_URL": url.replace("mail", "u:secret-pw@mail")})
    assert "TASKHUB_SMTP_URL" in str(refused.value)
    assert "secret-pw" not in str(refused.value)
