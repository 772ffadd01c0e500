"""Claimed requests into chords: messages cut by count and size, and what each shows in
events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from taskhub.core import settings
from taskhub.core.messages import TriggerRequest
from taskhub.engine.fanout import build_chords
from taskhub.worker.celery_app import fire_triggers, record_chunk

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def request(i: int, body: str = "") -> TriggerRequest:
    return TriggerRequest(
        execution_id=i,
        attempt=1,
        task_id="7d1f3c1e-0f6b-4e0a-9d0e-2b8c1c2d3e4f",
        scheduled_for=NOW,
        idempotency_key=f"key-{i}",
        url="http://target.test/hook",
        method="POST",
        headers={"X-Team": "billing"},
        body=body,
        timeout_s=30.0,
        send_by=NOW + timedelta(minutes=2),
    )


def test_messages_stay_under_the_byte_limit_and_show_a_short_argsrepr() -> None:
    s = settings.load({"TASKHUB_MAX_MESSAGE_BYTES": "16384", "TASKHUB_TRIGGERS_PER_MESSAGE": "50"})
    requests = [request(i, "é" * (i % 400)) for i in range(300)]
    [canvas] = build_chords(requests, s, fire_triggers, record_chunk)
    sent: list[int] = []
    for message in canvas.tasks:
        [payload] = message.args
        assert len(payload) <= 50
        assert len(json.dumps(payload).encode()) <= s.max_message_bytes
        assert message.options["argsrepr"] == (
            f"({len(payload)} requests: executions {payload[0]['execution_id']}..)"
        )
        assert "target.test" not in message.options["argsrepr"]
        sent.extend(m["execution_id"] for m in payload)
    assert sent == list(range(300))
