"""A stored task whose JSON body has no Content-Type reaches a real target as
``application/json``, decided at send time: what is stored stays as the user gave it
(SQLite and PostgreSQL, a real tick, the real HTTP client, a loopback target)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from taskhub.core.messages import TriggerRequest
from taskhub.engine import discovery, firing, writeback
from taskhub.service import task_service, task_views
from tests.support.api import with_env
from tests.support.target import running_target

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def test_a_json_body_without_content_type_arrives_as_json(engine: Engine) -> None:
    settings = with_env(TASKHUB_ALLOW_PRIVATE_TARGETS="1")
    cases = {
        "json": ('{"kind": "nightly"}', {}, "application/json"),
        "given": ('{"kind": "nightly"}', {"content-type": "text/plain"}, "text/plain"),
        "text": ("plain words", {}, None),
    }
    with running_target() as target:
        with engine.begin() as conn:
            for name, (body, headers, _) in cases.items():
                task = task_service.add_task(
                    conn,
                    "acme",
                    {
                        "name": name,
                        "schedule": {"at": NOW.isoformat()},
                        "target": {
                            "url": target.url(f"/ok?{name}"),
                            "method": "POST",
                            "headers": headers,
                            "body": body,
                        },
                    },
                    NOW,
                    settings,
                )
                assert task["target"]["headers"] == headers
        published: list[TriggerRequest] = []
        discovery.run_tick(engine, settings, published.extend, lambda: NOW)
        assert len(published) == len(cases)
        outcomes = firing.fire(published, settings)
        assert [o.http_status for o in outcomes] == [200] * len(cases)
        writeback.record_outcomes(engine, outcomes, settings, NOW, lambda: 0.5)
        received = {r.headers["X-Taskhub-Task-Id"]: r for r in target.wait_for(len(cases), 5)}

    with engine.connect() as conn:
        stored = {t["name"]: t for t in task_views.list_tasks(conn, "acme", settings)["items"]}
    for name, (body, headers, expected) in cases.items():
        task = stored[name]
        seen = received[task["id"]]
        assert seen.body == body
        types = [v for k, v in seen.headers.items() if k.lower() == "content-type"]
        assert types == ([] if expected is None else [expected]), name
        assert task["target"]["headers"] == headers  # nothing stored was changed
        assert task["last_status"] == "succeeded"
