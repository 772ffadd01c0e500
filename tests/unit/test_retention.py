"""History retention's pure parts: its settings, a task's ``retention_days``, the sweeps
of a pass, which tables it vacuums, its counter, and the beat entry that sends the pass
to the state queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core import limits, settings
from taskhub.core.definitions import parse_definition
from taskhub.core.errors import ValidationError
from taskhub.core.retention import (
    Autovacuum,
    Sweep,
    VacuumMode,
    churned_to_vacuum,
    sweeps,
    tables_to_vacuum,
)
from taskhub.observability import counters, metric_names
from taskhub.worker.celery_app import beat_schedule, celery_config
from taskhub.worker.queues import PRUNE_TASK, STATE_QUEUE

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TASK = {"name": "t", "schedule": {"interval_seconds": 60}, "target": {"url": "https://a.test/"}}


def test_the_defaults_keep_executions_30_days_and_dead_letters_90() -> None:
    retention = settings.load({}).retention
    assert (retention.execution_days, retention.dead_letter_days) == (30, 90)
    assert (retention.batch_size, retention.interval_s, retention.pause_s) == (5000, 60, 0.1)
    assert retention.vacuum == "auto"


def test_the_retention_settings_are_read_and_bounded() -> None:
    retention = settings.load(
        {
            "TASKHUB_EXECUTION_RETENTION_DAYS": "0",
            "TASKHUB_DEAD_LETTER_RETENTION_DAYS": "365",
            "TASKHUB_PRUNE_BATCH_SIZE": "200",
            "TASKHUB_PRUNE_INTERVAL_SECONDS": "300",
            "TASKHUB_PRUNE_PAUSE_SECONDS": "0",
            "TASKHUB_PRUNE_VACUUM": "Always",
        }
    ).retention
    assert retention == settings.RetentionSettings(0, 365, 200, 300, 0, "always")
    assert settings.load({"TASKHUB_PRUNE_VACUUM": "never"}).retention.vacuum == "never"
    for name, value in (
        ("TASKHUB_EXECUTION_RETENTION_DAYS", "-1"),
        ("TASKHUB_EXECUTION_RETENTION_DAYS", "3651"),
        ("TASKHUB_DEAD_LETTER_RETENTION_DAYS", "ten"),
        ("TASKHUB_PRUNE_BATCH_SIZE", "0"),
        ("TASKHUB_PRUNE_INTERVAL_SECONDS", "0"),
        ("TASKHUB_PRUNE_VACUUM", "full"),
        ("TASKHUB_PRUNE_VACUUM", "1"),
    ):
        with pytest.raises(settings.SettingsError, match=name):
            settings.load({name: value})


def test_the_installation_retentions_take_fractions_of_a_day() -> None:
    retention = settings.load(
        {
            "TASKHUB_EXECUTION_RETENTION_DAYS": "0.003",
            "TASKHUB_DEAD_LETTER_RETENTION_DAYS": "1.5",
        }
    ).retention
    assert (retention.execution_days, retention.dead_letter_days) == (0.003, 1.5)
    assert settings.load({"TASKHUB_EXECUTION_RETENTION_DAYS": "3650.0"}).retention.execution_days
    for name in ("TASKHUB_EXECUTION_RETENTION_DAYS", "TASKHUB_DEAD_LETTER_RETENTION_DAYS"):
        for bad in ("-0.5", "3650.5", "nan", "inf", "1e9", "2 days"):
            with pytest.raises(settings.SettingsError, match=name):
                settings.load({name: bad})
    # A fraction moves the cutoff by that much of a day; 0 still keeps for ever.
    assert sweeps(NOW, 0.003, 0.5, []) == [
        Sweep("execution", NOW - timedelta(seconds=259.2)),
        Sweep("dead_letter", NOW - timedelta(hours=12)),
    ]
    assert sweeps(NOW, 0.0, 0.0, []) == []


def test_a_task_may_set_retention_days_from_1_to_3650() -> None:
    assert parse_definition(TASK, NOW).retention_days is None
    assert parse_definition({**TASK, "retention_days": None}, NOW).retention_days is None
    assert parse_definition({**TASK, "retention_days": 1}, NOW).retention_days == 1
    assert parse_definition({**TASK, "retention_days": 3650}, NOW).retention_days == 3650
    for bad in (0, 3651, 7.5, "30", True):
        with pytest.raises(ValidationError) as refused:
            parse_definition({**TASK, "retention_days": bad}, NOW)
        assert refused.value.field == "retention_days"


def test_a_pass_sweeps_the_default_each_override_then_dead_letters() -> None:
    assert sweeps(NOW, 30, 90, [60, 7, 60]) == [
        Sweep("execution", NOW - timedelta(days=30)),
        Sweep("execution", NOW - timedelta(days=7), 7),
        Sweep("execution", NOW - timedelta(days=60), 60),
        Sweep("dead_letter", NOW - timedelta(days=90)),
    ]
    # 0 keeps that kind for ever; a task's own retention still applies.
    assert sweeps(NOW, 0, 0, [3]) == [Sweep("execution", NOW - timedelta(days=3), 3)]


@given(
    st.integers(0, limits.MAX_RETENTION_DAYS),
    st.integers(0, limits.MAX_RETENTION_DAYS),
    st.lists(st.integers(limits.MIN_RETENTION_DAYS, limits.MAX_RETENTION_DAYS), max_size=5),
)
def test_no_sweep_reaches_younger_than_a_day(
    execution_days: int, dead_letter_days: int, overrides: list[int]
) -> None:
    for sweep in sweeps(NOW, execution_days, dead_letter_days, overrides):
        assert sweep.cutoff <= NOW - timedelta(days=1)
        assert (sweep.task_days is None) or sweep.kind == "execution"


#: Rows a pass removed per table: executions and attempts, no callback delivery.
REMOVED = {"executions": 5, "attempts": 9, "callback_deliveries": 0, "notifications": 0}
BOTH = ("executions", "attempts")
SERVER_ON = Autovacuum(server=True)
SERVER_OFF = Autovacuum(server=False)


@pytest.mark.parametrize(
    ("mode", "removed", "autovacuum", "expected"),
    [
        # never: whatever the server does.
        ("never", REMOVED, SERVER_OFF, ()),
        ("never", REMOVED, None, ()),
        # always: every table that lost rows, whatever the server does, none that lost none.
        ("always", REMOVED, SERVER_ON, BOTH),
        ("always", REMOVED, None, BOTH),
        ("always", dict.fromkeys(REMOVED, 0), SERVER_OFF, ()),
        ("always", {"notifications": 2, "executions": 0}, None, ("notifications",)),
        # auto: the server's autovacuum on (with track_counts) covers every table...
        ("auto", REMOVED, SERVER_ON, ()),
        # ...off, or without the statistics it reads, none.
        ("auto", REMOVED, SERVER_OFF, BOTH),
        ("auto", REMOVED, Autovacuum(server=True, track_counts=False), BOTH),
        # A table's own autovacuum_enabled = false is left to the pass; true or unset is not.
        (
            "auto",
            REMOVED,
            Autovacuum(True, True, {"executions": False, "attempts": True}),
            ("executions",),
        ),
        ("auto", REMOVED, Autovacuum(True, True, {"attempts": None}), ()),
        # Server off: a table's true does not switch autovacuum on for it.
        ("auto", REMOVED, Autovacuum(False, True, {"attempts": True}), BOTH),
        ("auto", dict.fromkeys(REMOVED, 0), SERVER_OFF, ()),
        # Not known (never read): left to the server.
        ("auto", REMOVED, None, ()),
    ],
)
def test_which_tables_a_pass_vacuums(
    mode: VacuumMode,
    removed: dict[str, int],
    autovacuum: Autovacuum | None,
    expected: tuple[str, ...],
) -> None:
    assert tables_to_vacuum(mode, removed, autovacuum) == expected


#: Dead and live rows of the tables every claim rewrites: 1,000 live rows put
#: autovacuum's threshold at 50 + 200 = 250 dead ones.
CHURNED = {"next_occurrences": (251, 1000), "scheduled_tasks": (250, 1000)}


@pytest.mark.parametrize(
    ("mode", "rows", "autovacuum", "expected"),
    [
        ("never", CHURNED, SERVER_OFF, ()),
        # always: each table past autovacuum's own threshold, whatever the server does.
        ("always", CHURNED, SERVER_ON, ("next_occurrences",)),
        ("always", {"scheduled_tasks": (51, 0)}, None, ("scheduled_tasks",)),
        ("always", {"scheduled_tasks": (50, 0)}, None, ()),
        # auto: only where autovacuum will not go.
        ("auto", CHURNED, SERVER_OFF, ("next_occurrences",)),
        ("auto", CHURNED, SERVER_ON, ()),
        (
            "auto",
            CHURNED,
            Autovacuum(True, True, {"next_occurrences": False}),
            ("next_occurrences",),
        ),
        ("auto", CHURNED, None, ()),
    ],
)
def test_which_churned_tables_a_pass_vacuums(
    mode: VacuumMode,
    rows: dict[str, tuple[int, int]],
    autovacuum: Autovacuum | None,
    expected: tuple[str, ...],
) -> None:
    assert churned_to_vacuum(mode, rows, autovacuum) == expected


def test_removals_are_counted_by_kind_and_nothing_is_counted_for_none() -> None:
    assert counters.for_history_removed(0, 0, 0) == {}
    assert counters.for_history_removed(3, 1, 7) == {
        ("taskhub_history_removed_total", '{"kind":"execution"}'): 3,
        ("taskhub_history_removed_total", '{"kind":"dead_letter"}'): 1,
        ("taskhub_history_removed_total", '{"kind":"attempt"}'): 7,
    }
    assert counters.FAMILIES[metric_names.HISTORY_REMOVED].kind == "counter"


def test_beat_sends_the_prune_pass_to_the_state_queue_each_interval() -> None:
    s = settings.load({"TASKHUB_PRUNE_INTERVAL_SECONDS": "120"})
    entry = beat_schedule(s)["taskhub-prune-history"]
    assert entry["task"] == PRUNE_TASK
    assert entry["schedule"] == timedelta(seconds=120)
    assert 0 < entry["options"]["expires"] < 120
    assert celery_config(s)["task_routes"][PRUNE_TASK] == {"queue": STATE_QUEUE}
