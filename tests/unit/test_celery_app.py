from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskhub.core import settings
from taskhub.core.messages import TriggerRequest
from taskhub.engine.fanout import build_chords
from taskhub.observability import heartbeat
from taskhub.worker import celery_app
from taskhub.worker import celery_app as celery_module
from taskhub.worker.celery_app import (
    beat_schedule,
    exempt_startup_objects_from_gc,
    fire_triggers,
    record_chunk,
)


def test_defaults_need_no_server() -> None:
    s = settings.load({})
    assert s.database_url == "sqlite:///taskhub.db"
    assert s.is_embedded_broker
    assert s.result_backend.startswith("file://")
    assert not s.allow_private_targets
    assert s.tick_seconds == 60


def test_redis_broker_backs_its_own_chords() -> None:
    s = settings.load({"TASKHUB_BROKER_URL": "redis://localhost:6379/0"})
    assert s.result_backend == "redis://localhost:6379/0"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TASKHUB_TICK_SECONDS": "soon"}, "TASKHUB_TICK_SECONDS"),
        ({"TASKHUB_CHUNK_SIZE": "0"}, "TASKHUB_CHUNK_SIZE"),
        ({"TASKHUB_ALLOW_PRIVATE_TARGETS": "maybe"}, "TASKHUB_ALLOW_PRIVATE_TARGETS"),
        ({"TASKHUB_TICK_SECONDS": "nan"}, "TASKHUB_TICK_SECONDS must be a finite number"),
        ({"TASKHUB_CONNECT_TIMEOUT_SECONDS": "inf"}, "TASKHUB_CONNECT_TIMEOUT_SECONDS"),
        ({"TASKHUB_PUBLISH_LEAD_SECONDS": "31"}, "TASKHUB_PUBLISH_LEAD_SECONDS must be at most"),
        ({"TASKHUB_LOG_FORMAT": "xml"}, "TASKHUB_LOG_FORMAT"),
        ({"TASKHUB_HOST_LIMITS": "a.example=0"}, "TASKHUB_HOST_LIMITS"),
        ({"TASKHUB_MAX_SLOW_IN_FLIGHT": "-1"}, "TASKHUB_MAX_SLOW_IN_FLIGHT"),
        ({"TASKHUB_MAX_SLOW_IN_FLIGHT": "many"}, "TASKHUB_MAX_SLOW_IN_FLIGHT"),
        ({"TASKHUB_SLOW_AFTER_SECONDS": "0"}, "TASKHUB_SLOW_AFTER_SECONDS"),
        ({"TASKHUB_SLOW_AFTER_SECONDS": "nan"}, "TASKHUB_SLOW_AFTER_SECONDS"),
        ({"TASKHUB_FAST_LANE_SHARE_PERCENT": "0"}, "TASKHUB_FAST_LANE_SHARE_PERCENT"),
        ({"TASKHUB_FAST_LANE_SHARE_PERCENT": "half"}, "TASKHUB_FAST_LANE_SHARE_PERCENT"),
        ({"TASKHUB_SLOW_LANE_SHARE_PERCENT": "101"}, "TASKHUB_SLOW_LANE_SHARE_PERCENT"),
        ({"TASKHUB_SLOW_LANE_SHARE_PERCENT": "nan"}, "TASKHUB_SLOW_LANE_SHARE_PERCENT"),
        ({"TASKHUB_WORKER_DEAD_AFTER_SECONDS": "10"}, "TASKHUB_WORKER_DEAD_AFTER_SECONDS"),
        ({"TASKHUB_WORKER_DEAD_AFTER_SECONDS": "-1"}, "TASKHUB_WORKER_DEAD_AFTER_SECONDS"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(settings.SettingsError, match=named):
        settings.load(env)


def test_a_live_worker_is_never_taken_for_dead_between_two_heartbeats() -> None:
    assert settings.MIN_WORKER_DEAD_AFTER_S >= 2 * heartbeat.INTERVAL_S
    assert settings.load({}).worker_dead_after_s >= settings.MIN_WORKER_DEAD_AFTER_S
    assert settings.load({"TASKHUB_WORKER_DEAD_AFTER_SECONDS": "0"}).worker_dead_after_s == 0


def test_the_tick_is_aligned_to_the_minute_and_expires() -> None:
    entry = beat_schedule(settings.load({}))["taskhub-tick"]
    assert str(entry["schedule"]) == "<crontab: * * * * * (m/h/dM/MY/d)>"
    assert 0 < entry["options"]["expires"] < 60


def request(i: int, body: str | None = None) -> TriggerRequest:
    return TriggerRequest(
        execution_id=i,
        attempt=1,
        task_id="t",
        scheduled_for=datetime(2026, 1, 1, tzinfo=UTC),
        idempotency_key=f"k{i}",
        url="https://example.com/",
        method="POST",
        headers={},
        body=body,
        timeout_s=30,
    )


def test_each_chunk_is_one_flat_chord_of_bounded_messages(tmp_path: Path) -> None:
    s = settings.load(
        {
            "TASKHUB_CHUNK_SIZE": "100",
            "TASKHUB_TRIGGERS_PER_MESSAGE": "25",
            "TASKHUB_MAX_MESSAGE_BYTES": "65536",
            "TASKHUB_DATA_DIR": str(tmp_path),
        }
    )
    requests = [request(i) for i in range(230)] + [request(1000 + i, "x" * 40000) for i in range(3)]
    chords = build_chords(requests, s, fire_triggers, record_chunk)
    assert len(chords) == 3  # 100 + 100 + 33
    sent: list[int] = []
    for canvas in chords:
        assert canvas.body.task == "taskhub.record_chunk"
        assert "chunk_id" in canvas.body.kwargs
        for message in canvas.tasks:
            assert message.task == "taskhub.fire_triggers"
            [payload] = message.args
            assert 1 <= len(payload) <= 25
            assert len(payload) == 1 or sum(len(str(m)) for m in payload) < 65536
            sent.extend(m["execution_id"] for m in payload)
    assert sent == [r.execution_id for r in requests]


def test_without_the_database_a_request_received_after_its_send_by_is_not_fired(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A message takes its sends in the database as it starts (tests/integration/
    test_holders.py); when it cannot, only what is still within its send_by is fired, and
    the clearance at its send time (which cannot reach the database either) lets it go."""
    unreachable = f"sqlite:///{tmp_path}/no/such/dir/taskhub.db"
    monkeypatch.setattr(
        celery_app, "settings", replace(celery_app.settings, database_url=unreachable)
    )
    asked: list[int] = []
    clear = celery_module.clear_to_fire

    def spy(requests: Sequence[TriggerRequest]) -> set[int]:
        asked.extend(r.execution_id for r in requests)
        return clear(requests)

    monkeypatch.setattr(celery_module, "clear_to_fire", spy)
    now = datetime.now(UTC)
    stale = replace(request(1), url="http://127.0.0.1:9/", send_by=now - timedelta(seconds=1))
    fresh = replace(request(2), url="http://127.0.0.1:9/", send_by=now + timedelta(minutes=1))
    outcomes = fire_triggers.run([stale.to_message(), fresh.to_message()])
    # Only the fresh one was attempted (and refused before connecting: loopback is a
    # private target under the default settings; port 9 refuses if private is allowed).
    assert [o["execution_id"] for o in outcomes] == [2] and asked == [2]
    assert outcomes[0]["error_kind"] in ("blocked_address", "connection")


def test_without_the_database_a_request_under_an_overlap_policy_is_not_fired(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only the database knows whether the task's previous execution still runs: a
    ``skip`` or ``buffer_one`` request waits for its lease; an ``allow`` one goes."""
    unreachable = f"sqlite:///{tmp_path}/no/such/dir/taskhub.db"
    monkeypatch.setattr(
        celery_app, "settings", replace(celery_app.settings, database_url=unreachable)
    )
    later = datetime.now(UTC) + timedelta(minutes=1)
    allowed = replace(request(4), url="http://127.0.0.1:9/", send_by=later)
    skipping = replace(request(5), url="http://127.0.0.1:9/", send_by=later, overlap="skip")
    buffered = replace(request(6), url="http://127.0.0.1:9/", send_by=later, overlap="buffer_one")
    outcomes = fire_triggers.run([m.to_message() for m in (allowed, skipping, buffered)])
    assert [o["execution_id"] for o in outcomes] == [4]


def test_a_request_the_database_does_not_clear_is_not_fired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(celery_module, "clear_to_fire", lambda requests: set())
    later = datetime.now(UTC) + timedelta(minutes=1)
    message = replace(request(3), url="http://127.0.0.1:9/", send_by=later).to_message()
    assert fire_triggers.run([message]) == []


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TASKHUB_BROKER_URL": "sqs://"}, "TASKHUB_RESULT_BACKEND"),
        (
            {
                "TASKHUB_BROKER_URL": "sqs://",
                "TASKHUB_RESULT_BACKEND": "redis://x:6379/0",
                "TASKHUB_SQS_WAIT_TIME_SECONDS": "21",
            },
            "TASKHUB_SQS_WAIT_TIME_SECONDS",
        ),
    ],
)
def test_unusable_sqs_settings_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(settings.SettingsError, match=named):
        settings.load(env)


def test_workers_send_task_events_but_publishing_sends_no_sent_event() -> None:
    from taskhub.worker.celery_app import celery_config

    config = celery_config(settings.load({"TASKHUB_BROKER_URL": "redis://localhost:6379/0"}))
    # Flower lists tasks from the workers' events; a "task-sent" event per published
    # message would double a fan-out's broker writes.
    assert config["worker_send_task_events"] is True
    assert config["task_send_sent_event"] is False


def test_a_ready_worker_takes_its_startup_objects_out_of_the_collectors_reach() -> None:
    walked_before = len(gc.get_objects())  # what a full collection walks
    thresholds = gc.get_threshold()
    try:
        exempt_startup_objects_from_gc()
        assert gc.get_freeze_count() > 10_000  # the interpreter, Celery and the app
        assert len(gc.get_objects()) < walked_before / 10
        assert gc.get_threshold()[0] > thresholds[0]  # young collections far less often
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_joins_stay_denied_until_the_last_of_two_overlapping_publishes_ends() -> None:
    """Two threads publishing at once (the staging loop and a tick): the first to end
    must not clear the flag the other still publishes under."""
    from celery import _state

    before = _state.task_join_will_block()  # type: ignore[attr-defined]
    first, second = celery_app._joins_denied(), celery_app._joins_denied()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert _state.task_join_will_block() is True  # type: ignore[attr-defined]
    second.__exit__(None, None, None)
    assert _state.task_join_will_block() is before  # type: ignore[attr-defined]
