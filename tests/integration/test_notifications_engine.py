"""Notifications with real processes: a worker and beat on PostgreSQL and Redis fire 20
tasks at a failing target; the worker's notifier sends ONE grouped email, naming every
task, to a real SMTP server (aiosmtpd on loopback), and one signed POST to a webhook."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.core import signing
from taskhub.core.settings import load
from taskhub.db.models import scheduled_tasks
from taskhub.service import notifications, signing_secrets
from tests.support.engine import add_tasks, all_ended, running_stack, soon, statuses
from tests.support.processes import wait_until
from tests.support.smtp import running_smtp
from tests.support.target import Received, Target

pytestmark = pytest.mark.slow


def test_twenty_dead_letters_are_one_email_and_one_signed_post(
    postgres_url: str, redis_url: str, pg_engine: Engine, target: Target, tmp_path: Path
) -> None:
    with (
        running_smtp() as inbox,
        running_stack(postgres_url, redis_url, tmp_path, TASKHUB_SMTP_URL=inbox.url) as stack,
    ):
        settings = load(stack.env)
        now = datetime.now(UTC)
        with pg_engine.begin() as conn:
            secret, _ = signing_secrets.create_secret(conn, "default", now, settings)
            notifications.create_channel(
                conn,
                "default",
                {"name": "mail", "kind": "email", "to": ["ops@example.com"]},
                now,
                settings,
            )
            notifications.create_channel(
                conn,
                "default",
                {
                    "name": "hook",
                    "kind": "webhook",
                    "url": target.url("/ok"),
                    "events": ["dead_letter"],
                },
                now,
                settings,
            )
        ids = add_tasks(
            pg_engine, 20, target.url("/flaky/99"), {"at": soon(3)}, retry={"max_attempts": 1}
        )
        stack.start("worker", "all")
        stack.start("beat", "beat")
        assert wait_until(lambda: all_ended(pg_engine, 20), 60), stack.logs()
        assert statuses(pg_engine) == {"dead": 20}

        assert len(inbox.wait_for(1, 40)) == 1, stack.logs()

        def hooks() -> list[Received]:
            return [r for r in target.snapshot() if r.path == "/ok"]

        assert wait_until(lambda: len(hooks()) == 1, 20), stack.logs()
        time.sleep(2 * 2.0 + 1)  # two more notifier passes: nothing more is sent
        [mail] = inbox.snapshot()
        [post] = hooks()

    with pg_engine.connect() as conn:
        rows = conn.execute(sa.select(scheduled_tasks.c.id, scheduled_tasks.c.name))
        names: dict[uuid.UUID, str] = {row.id: row.name for row in rows}
    assert mail.recipients == ["ops@example.com"]
    assert mail.subject == "[taskhub] mail: 20 dead letters (20 tasks)"
    for task_id in ids:
        assert f"{names[task_id]} ({task_id}): dead_letter" in mail.text

    assert signing.verify(post.headers[signing.HEADER], post.body.encode(), [secret])
    document = json.loads(post.body)
    assert {t["id"]: t["name"] for t in document["tasks"]} == {str(i): names[i] for i in ids}
    assert document["counts"] == {"dead_letter": 20}
