"""Publishing chords to real Redis, from a plain process (as the benchmark and a gevent
worker do: Celery's ``task_join_will_block`` is off there)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import redis

from taskhub.worker.queues import TRIGGER_QUEUE

_PUBLISH = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime, timedelta

    import redis.client

    # Counted here, in the publishing process, not on the server: another test run on
    # the same Redis server subscribes too.
    subscribed = []
    _subscribe = redis.client.PubSub.subscribe

    def counting(self, *args, **kwargs):
        subscribed.extend([*args, *kwargs])
        return _subscribe(self, *args, **kwargs)

    redis.client.PubSub.subscribe = counting

    from taskhub.worker import celery_app as taskhub_celery
    from taskhub.core.messages import TriggerRequest

    now = datetime.now(UTC)
    requests = [
        TriggerRequest(
            execution_id=i, attempt=1, task_id=f"task-{i}", scheduled_for=now,
            idempotency_key=f"key-{i}", url="http://127.0.0.1:9/", method="POST",
            headers={}, body=None, timeout_s=5.0, send_by=now + timedelta(minutes=1),
        )
        for i in range(250)
    ]
    taskhub_celery.publish(requests)
    print(json.dumps({"subscribed": len(subscribed)}))
    """
)


def test_publishing_does_not_subscribe_to_join_results(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {
        "TASKHUB_BROKER_URL": redis_url,
        "TASKHUB_RESULT_BACKEND": redis_url,
        "TASKHUB_CHUNK_SIZE": "100",
        "TASKHUB_TRIGGERS_PER_MESSAGE": "10",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PUBLISH], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # Celery's group still subscribes once per message (its ready barrier); the join
    # subscription, a second one per message, is gone.
    subscribed = json.loads(done.stdout.strip().splitlines()[-1])["subscribed"]
    assert 0 < subscribed <= 25
    # Every request went out all the same: 250 requests, 10 per message.
    assert client.llen(TRIGGER_QUEUE) == 25
    client.flushdb()
