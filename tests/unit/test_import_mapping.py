"""The pure mapping of an import: Celery's schedules as taskhub's (a crontab fires at
exactly the times its cron does, or is refused), an entry's options as a Celery target,
and each source's entries (a beat_schedule, django-celery-beat's rows, redbeat's JSON)
as task definitions or refusals with their reason."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery.schedules import crontab, schedule, solar
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.schedules import Cron, next_fire_time
from taskhub.service.importing import celery_apps, django_beat, plan, redbeat
from taskhub.service.importing.entries import (
    DISABLED_AT_SOURCE,
    Entry,
    Unmappable,
    celery_target,
    plain_json,
)
from taskhub.service.importing.schedules import (
    CRON_FIELDS,
    cron_of,
    render_field,
    taskhub_schedule,
)

# --- crontab as cron ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "low", "high", "field"),
    [
        (range(60), 0, 59, "*"),
        (range(0, 60, 15), 0, 59, "*/15"),
        (range(5, 60, 15), 0, 59, "5-50/15"),
        ({9, 10, 11, 12, 17}, 0, 23, "9-12,17"),
        ({1, 2, 5}, 1, 31, "1,2,5"),
        ({0, 2, 4, 6}, 0, 6, "*/2"),
        ({3}, 1, 12, "3"),
    ],
)
def test_a_field_is_written_as_short_as_cron_allows(
    values: Any, low: int, high: int, field: str
) -> None:
    assert render_field(values, low, high) == field


@pytest.mark.parametrize(
    ("tab", "expression"),
    [
        (crontab(), "* * * * *"),
        (crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"), "*/15 9-17 * * 1-5"),
        (crontab(minute=0, hour=0, day_of_month="1,15"), "0 0 1,15 * *"),
        (crontab(minute=5, hour=4, month_of_year="*/3"), "5 4 * */3 *"),
        # Both day fields restricted, one written from '*': cron's AND rule, as Celery's.
        (crontab(minute=0, hour=6, day_of_month="2-30/2", day_of_week="*/2"), "0 6 2-30/2 * */2"),
    ],
)
def test_a_crontab_becomes_the_cron_of_the_same_times(tab: crontab, expression: str) -> None:
    assert cron_of(tab) == expression


def test_a_crontab_restricting_both_day_fields_is_refused() -> None:
    # Celery: Mondays that are among the 1st-7th; cron would run on both sets of days.
    with pytest.raises(Unmappable, match="both restricted"):
        cron_of(crontab(minute=0, hour=9, day_of_week=1, day_of_month="1-7"))


def test_a_crontab_with_its_own_clock_or_class_is_refused() -> None:
    class Shifted(crontab):
        pass

    with pytest.raises(Unmappable, match="custom schedule class"):
        cron_of(Shifted())
    with pytest.raises(Unmappable, match="nowfun"):
        cron_of(crontab(nowfun=lambda: datetime.now(UTC)))


def _subset(low: int, high: int) -> st.SearchStrategy[set[int]]:
    full = st.just(set(range(low, high + 1)))
    some = st.sets(st.integers(low, high), min_size=1, max_size=6)
    step = st.integers(2, 7).map(lambda n: set(range(low, high + 1, n)))
    return st.one_of(full, some, step)


@given(
    fields=st.tuples(*(_subset(low, high) for _name, low, high in CRON_FIELDS)),
    start=st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31)),
)
def test_the_cron_fires_exactly_when_celery_would(
    fields: tuple[set[int], ...], start: datetime
) -> None:
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        tab = crontab(
            minute=sorted(minute),
            hour=sorted(hour),
            day_of_month=sorted(day_of_month),
            month_of_year=sorted(month),
            day_of_week=sorted(day_of_week),
        )
    except ValueError:
        return  # a day no month has: Celery refuses it too
    try:
        expression = cron_of(tab)
    except Unmappable:
        assert len(day_of_month) < 31 and len(day_of_week) < 7
        return
    last = start.replace(second=0, microsecond=0, tzinfo=UTC)
    begin, ends_in, _now = tab.remaining_delta(last, tz=UTC)
    assert next_fire_time(Cron(expression, "UTC"), last) == begin + ends_in


# --- intervals and other schedules -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "relative", "expected"),
    [
        (30, False, {"interval_seconds": 30}),
        (2.0, False, {"interval_seconds": 2}),
        (timedelta(hours=2), False, {"interval_seconds": 7200}),
        (schedule(timedelta(minutes=5)), False, {"interval_seconds": 300}),
        (timedelta(seconds=30), True, {"interval_seconds": 30}),
        (timedelta(minutes=15), True, {"cron": "*/15 * * * *", "timezone": "Asia/Tokyo"}),
        (timedelta(minutes=1), True, {"cron": "* * * * *", "timezone": "Asia/Tokyo"}),
        (
            schedule(timedelta(hours=6), relative=True),
            False,
            {"cron": "0 */6 * * *", "timezone": "Asia/Tokyo"},
        ),
        (timedelta(days=1), True, {"cron": "0 0 * * *", "timezone": "Asia/Tokyo"}),
    ],
)
def test_intervals_are_whole_seconds_and_relative_ones_run_on_their_unit(
    value: Any, relative: bool, expected: dict[str, Any]
) -> None:
    assert taskhub_schedule(value, relative, "Asia/Tokyo") == expected


@pytest.mark.parametrize(
    ("value", "relative", "reason"),
    [
        (0.5, False, "not a whole number of seconds"),
        (timedelta(minutes=90), True, "rounds each run"),
        (timedelta(days=2), True, "rounds each run"),
        (solar("sunset", 48.85, 2.35), False, "solar schedule \\(sunset\\)"),
        ("*/5 * * * *", False, "not one Celery beat knows"),
        (True, False, "not a schedule"),
    ],
)
def test_what_taskhub_cannot_express_is_refused_with_the_reason(
    value: Any, relative: bool, reason: str
) -> None:
    with pytest.raises(Unmappable, match=reason):
        taskhub_schedule(value, relative, "UTC")


def test_a_crontab_in_local_time_is_refused() -> None:
    with pytest.raises(Unmappable, match="local time"):
        taskhub_schedule(crontab(minute=0), False, None)


# --- the Celery call --------------------------------------------------------------------


def test_an_entry_becomes_a_celery_target() -> None:
    target = celery_target(
        "billing.report", (1, "a"), {"region": "eu"}, {"queue": "reports", "expires": 60}, "celery"
    )
    assert target == {
        "celery": {
            "task": "billing.report",
            "args": [1, "a"],
            "kwargs": {"region": "eu"},
            "queue": "reports",
            "expires_seconds": 60.0,
        }
    }
    assert celery_target("t.x", None, None, {}, "default-q")["celery"]["queue"] == "default-q"
    # The queue's own exchange and routing key say nothing more.
    same: dict[str, Any] = {
        "queue": "q",
        "exchange": "q",
        "routing_key": "q",
        "headers": {},
        "priority": None,
    }
    assert celery_target("t.x", [], {}, same, "celery")["celery"]["queue"] == "q"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"priority": 5}, "options.priority"),
        ({"routing_key": "other"}, "options.routing_key"),
        ({"headers": {"x": "1"}}, "options.headers"),
        ({"expires": datetime(2030, 1, 1, tzinfo=UTC)}, "fixed time"),
        ({"countdown": 5}, "options.countdown"),
    ],
)
def test_options_taskhub_cannot_send_are_refused(options: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        celery_target("t.x", [], {}, options, "celery")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([datetime(2030, 1, 1)], "args\\[0\\] holds a datetime"),
        ([float("nan")], "JSON cannot carry"),
        ([{1: "a"}], "not a string"),
        ([{"__type__": "datetime", "year": 2030}], "encoded datetime"),
    ],
)
def test_arguments_must_be_plain_json(value: Any, reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        plain_json(value, "args")


# --- a beat_schedule ---------------------------------------------------------------------


def test_the_beat_schedule_module_reads_as_tasks_and_a_refusal() -> None:
    app = celery_apps.load_app("tests.beatapp:app")
    entries = {entry.name: entry for entry in celery_apps.beat_entries(app)}
    assert list(entries) == ["nightly-report", "refresh-rates", "ping-every-10s", "ping-at-sunrise"]
    nightly = entries["nightly-report"].definition
    assert nightly is not None
    assert nightly["schedule"] == {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    # No queue in the entry: the app's task_routes decide, as beat's send would.
    assert nightly["target"]["celery"] == {
        "task": "beatapp.reports.nightly",
        "args": [1],
        "kwargs": {"region": "eu"},
        "queue": "reports",
        "expires_seconds": 600.0,
    }
    refresh = entries["refresh-rates"].definition
    assert refresh is not None and refresh["schedule"] == {"interval_seconds": 300}
    assert refresh["target"]["celery"]["queue"] == "rates"
    ping = entries["ping-every-10s"].definition
    assert ping is not None and ping["target"]["celery"]["queue"] == "celery"
    assert entries["ping-at-sunrise"].definition is None
    assert "solar schedule (sunrise)" in (entries["ping-at-sunrise"].refusal or "")


def test_sync_reads_the_beat_schedule_and_the_declared_schedules() -> None:
    app = celery_apps.load_app("tests.beatapp")  # MODULE alone: its ``app``, as celery -A
    entries = {entry.name: entry for entry in celery_apps.sync_entries(app)}
    cleanup = entries["beatapp.cleanup"].definition
    assert cleanup is not None
    assert cleanup["schedule"] == {"cron": "*/5 * * * *", "timezone": "UTC"}
    digest = entries["weekday-digest"].definition
    assert digest is not None
    assert digest["schedule"] == {"cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"}
    assert digest["target"]["celery"]["kwargs"] == {"kind": "short"}
    assert "nightly-report" in entries


def test_an_entry_with_an_unknown_key_or_no_task_is_refused() -> None:
    app = celery_apps.load_app("tests.beatapp:app")
    odd = celery_apps.beat_entry(app, "odd", {"task": "a.b", "schedule": 5, "every": 1}, "UTC")
    assert odd.refusal is not None and "unknown key 'every'" in odd.refusal
    bare = celery_apps.beat_entry(app, "bare", {"schedule": 5}, "UTC")
    assert bare.refusal is not None and "not a task name" in bare.refusal


def test_an_app_that_cannot_be_found_is_bad_input() -> None:
    from taskhub.core.errors import ValidationError

    with pytest.raises(ValidationError, match=r"cannot load 'tests\.no_such_module:app'"):
        celery_apps.load_app("tests.no_such_module:app")


# --- django-celery-beat's rows ----------------------------------------------------------


def _row(**columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(
        [
            "queue",
            "exchange",
            "routing_key",
            "priority",
            "expires",
            "expire_seconds",
            "start_time",
            "minute",
            "hour",
            "day_of_week",
            "day_of_month",
            "month_of_year",
            "timezone",
            "every",
            "period",
            "clocked_time",
            "solar_event",
        ]
    )
    row.update(
        name="row",
        task="app.tasks.work",
        args="[]",
        kwargs="{}",
        headers="{}",
        one_off=False,
        enabled=True,
        total_run_count=0,
        crontab_id=None,
        interval_id=None,
        clocked_id=None,
        solar_id=None,
    )
    row.update(columns)
    return row


def test_django_rows_become_tasks() -> None:
    cron = django_beat.entry_of(
        _row(
            crontab_id=1,
            minute="*/15",
            hour="9-17",
            day_of_week="mon-fri",
            day_of_month="*",
            month_of_year="*",
            timezone="Europe/Paris",
            args='["a", 1]',
            kwargs='{"k": "v"}',
            queue="reports",
            expire_seconds=60,
            start_time=datetime(2030, 1, 1, 8, 0),
        ),
        "celery",
    )
    assert cron.definition == {
        "name": "row",
        "schedule": {"cron": "*/15 9-17 * * 1-5", "timezone": "Europe/Paris"},
        "target": {
            "celery": {
                "task": "app.tasks.work",
                "args": ["a", 1],
                "kwargs": {"k": "v"},
                "queue": "reports",
                "expires_seconds": 60.0,
            }
        },
        "start_at": "2030-01-01T08:00:00+00:00",
        "end_at": None,
        "max_executions": None,
    }
    interval = django_beat.entry_of(_row(interval_id=1, every=2, period="hours"), "q")
    assert interval.definition is not None
    assert interval.definition["schedule"] == {"interval_seconds": 7200}
    assert interval.definition["target"]["celery"]["queue"] == "q"


def test_django_expires_ends_the_schedule_and_one_off_runs_once() -> None:
    expires = datetime(2031, 1, 1, tzinfo=UTC)
    row = _row(interval_id=1, every=30, period="seconds", expires=expires, expire_seconds=9)
    entry = django_beat.entry_of(row, "celery")
    assert entry.definition is not None
    assert entry.definition["end_at"] == "2031-01-01T00:00:00+00:00"
    # As django-celery-beat: with ``expires`` set, ``expire_seconds`` is not used.
    assert "expires_seconds" not in entry.definition["target"]["celery"]
    one_off = django_beat.entry_of(_row(interval_id=1, every=1, period="days", one_off=True), "c")
    assert one_off.definition is not None and one_off.definition["max_executions"] == 1
    assert not one_off.paused
    ran = _row(interval_id=1, every=1, period="days", one_off=True, total_run_count=1)
    assert django_beat.entry_of(ran, "c").paused
    assert django_beat.entry_of(
        _row(interval_id=1, every=5, period="minutes", enabled=False), "c"
    ).paused
    clocked = _row(clocked_id=1, clocked_time=datetime(2030, 6, 1, 12, 0), one_off=True)
    at = django_beat.entry_of(clocked, "c").definition
    assert at is not None
    assert at["schedule"] == {"at": "2030-06-01T12:00:00+00:00"} and at["max_executions"] is None


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"solar_id": 1, "solar_event": "sunrise"}, "solar schedule \\(sunrise\\)"),
        ({}, "no schedule"),
        ({"interval_id": 1, "every": 10, "period": "seconds", "args": "{"}, "args is not JSON"),
        ({"interval_id": 1, "every": 10, "period": "seconds", "kwargs": "[]"}, "JSON object"),
        ({"interval_id": 1, "every": 10, "period": "seconds", "priority": 3}, "priority"),
        ({"interval_id": 1, "every": 5, "period": "microseconds"}, "whole number"),
    ],
)
def test_django_rows_taskhub_cannot_carry_are_refused(columns: dict[str, Any], reason: str) -> None:
    entry = django_beat.entry_of(_row(**columns), "celery")
    assert entry.definition is None
    assert entry.refusal is not None
    assert re.search(reason, entry.refusal), entry.refusal


# --- redbeat's JSON ---------------------------------------------------------------------


def _redbeat(schedule: dict[str, Any], **fields: Any) -> str:
    return json.dumps(
        {
            "name": "rb",
            "task": "app.work",
            "args": [],
            "kwargs": {},
            "options": {},
            "schedule": schedule,
            "enabled": True,
            **fields,
        }
    )


def test_redbeat_entries_become_tasks_their_crontabs_in_the_given_zone() -> None:
    cron = {
        "__type__": "crontab",
        "minute": "0",
        "hour": "9",
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
    }
    entry = redbeat.entry_of("redbeat:rb", _redbeat(cron), "redbeat:", "Asia/Tokyo", "celery")
    assert entry.name == "rb"
    assert entry.definition is not None
    assert entry.definition["schedule"] == {"cron": "0 9 * * *", "timezone": "Asia/Tokyo"}
    interval = {"__type__": "interval", "every": 30.0, "relative": False}
    raw = _redbeat(interval, enabled=False, options={"queue": "q", "expires": 5})
    disabled = redbeat.entry_of("redbeat:rb", raw, "redbeat:", "UTC", "celery")
    assert disabled.paused
    assert disabled.definition is not None
    assert disabled.definition["schedule"] == {"interval_seconds": 30}
    assert disabled.definition["target"]["celery"]["expires_seconds"] == 5.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "has no definition"),
        ("{", "not JSON"),
        (_redbeat({"__type__": "rrule", "freq": 3}), "rrule schedule"),
        (
            _redbeat({"__type__": "interval", "every": 60}, args=[{"__type__": "datetime"}]),
            "encoded",
        ),
    ],
)
def test_redbeat_entries_taskhub_cannot_carry_are_refused(raw: str | None, reason: str) -> None:
    entry = redbeat.entry_of("redbeat:rb", raw, "redbeat:", "UTC", "celery")
    assert entry.definition is None and reason in (entry.refusal or ""), entry.refusal


# --- the plan's comparison ----------------------------------------------------------------

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
#: The Celery call an entry declares (a stored task also shows ``track``).
_CALL: dict[str, Any] = {
    "task": "app.nightly",
    "args": [1],
    "kwargs": {"region": "eu"},
    "queue": "reports",
    "broker": "billing",
    "expires_seconds": 600.0,
}


def _stored(**fields: Any) -> dict[str, Any]:
    """A task as the API shows it (a Celery target with every field)."""
    task: dict[str, Any] = {
        "id": "0b5e3c1e-0000-0000-0000-000000000000",
        "name": "nightly",
        "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
        "target": {"celery": {**_CALL, "track": True}, "timeout_seconds": 30.0},
        "start_at": "2030-01-01T08:00:00+00:00",
        "end_at": None,
        "max_executions": None,
        "tags": {"team": "billing"},
        "status": "active",
        "paused_reason": None,
    }
    task.update(fields)
    return task


def _desired(**fields: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": "nightly",
        "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
        "target": {"celery": dict(_CALL)},
        "start_at": "2030-01-01T09:00:00+01:00",  # the same instant, written otherwise
        "end_at": None,
        "max_executions": None,
    }
    task.update(fields)
    return task


def test_an_entry_as_stored_changes_nothing() -> None:
    assert plan.changes(_stored(), _desired(), {}, _NOW) == {}


def test_only_what_differs_is_patched_and_taskhub_s_own_fields_are_kept() -> None:
    cron = {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    assert plan.changes(_stored(), _desired(schedule=cron), {}, _NOW) == {"schedule": cron}
    target = _desired()["target"]
    target["celery"] = {**target["celery"], "args": [True]}  # JSON's true is not 1
    del target["celery"]["expires_seconds"]
    patch = plan.changes(_stored(), _desired(target=target), {}, _NOW)
    assert patch == {
        "target": {
            "celery": {
                "task": "app.nightly",
                "args": [True],
                "kwargs": {"region": "eu"},
                "queue": "reports",
                "broker": "billing",
                "track": True,  # set in taskhub, not by the import: kept
                "expires_seconds": None,
            }
        }
    }
    assert plan.changes(_stored(), _desired(max_executions=1), {}, _NOW) == {"max_executions": 1}
    moved = plan.with_broker(Entry("nightly", _desired()), "default").definition
    assert moved is not None
    patch = plan.changes(_stored(), moved, {}, _NOW)
    assert patch["target"]["celery"]["broker"] == "default"


def test_a_sync_tags_its_tasks_keeping_their_other_tags() -> None:
    tag = {plan.SYNC_TAG: "app:celery"}
    assert plan.changes(_stored(), _desired(), tag, _NOW) == {
        "tags": {"team": "billing", plan.SYNC_TAG: "app:celery"}
    }
    tagged = _stored(tags={"team": "billing", plan.SYNC_TAG: "app:celery"})
    assert plan.changes(tagged, _desired(), tag, _NOW) == {}


def test_only_a_pause_made_because_of_the_source_is_undone() -> None:
    assert plan.status_change(_stored(), paused=True) == "paused"
    assert plan.status_change(_stored(), paused=False) is None
    by_import = _stored(status="paused", paused_reason=DISABLED_AT_SOURCE)
    assert plan.status_change(by_import, paused=False) == "resumed"
    by_user = _stored(status="paused", paused_reason="maintenance")
    assert plan.status_change(by_user, paused=False) is None
    assert plan.status_change(_stored(status="finished"), paused=True) is None
