"""The whole engine on kombu's real SQS transport, against moto's SQS server on loopback.

Queues are made beforehand, as the CloudFormation stack in ``deploy/aws`` makes them, and
taskhub is given their URLs (``TASKHUB_SQS_QUEUE_URL_PREFIX``), so the workers never
create or list queues. The result backend is Redis, as ElastiCache is in AWS. moto is slow
(tens of messages a second): the burst is small and no speed is asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from taskhub.db.models import scheduled_tasks
from taskhub.worker.celery_app import sqs_queue_name
from taskhub.worker.queues import DISCOVERY_QUEUE, STATE_QUEUE, TRIGGER_QUEUE
from tests.conftest import service_missing
from tests.support.engine import add_tasks, all_ended, soon, statuses
from tests.support.processes import Stack, free_port, wait_until
from tests.support.target import Target

pytestmark = pytest.mark.slow

boto3 = pytest.importorskip("boto3", reason="the sqs extra is not installed")

REGION = "us-east-1"
QUEUE_PREFIX = "e2e-"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def sqs_endpoint(tmp_path: Path) -> Iterator[str]:
    """moto's SQS server on a free loopback port, with taskhub's three queues made."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        service_missing("moto_server", FileNotFoundError("pip install 'moto[server]'"))
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = sqs_client(endpoint)
    try:
        assert wait_until(lambda: _answers(client), 30), (tmp_path / "moto.log").read_text()
        for queue in (DISCOVERY_QUEUE, TRIGGER_QUEUE, STATE_QUEUE):
            client.create_queue(
                QueueName=QUEUE_PREFIX + sqs_queue_name(queue),
                Attributes={"VisibilityTimeout": "900"},
            )
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def sqs_client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _answers(client: Any) -> bool:
    try:
        client.list_queues()
    except Exception:
        return False
    return True


@pytest.fixture
def sqs_stack(
    sqs_endpoint: str, postgres_url: str, redis_url: str, pg_engine: Engine, tmp_path: Path
) -> Iterator[Stack]:
    redis.Redis.from_url(redis_url).flushdb()
    host_port = sqs_endpoint.removeprefix("http://")
    env = {
        **os.environ,
        **FAKE_CREDENTIALS,
        "TASKHUB_DATABASE_URL": postgres_url,
        "TASKHUB_BROKER_URL": f"sqs://testing:testing@{host_port}",
        "TASKHUB_RESULT_BACKEND": redis_url,
        "TASKHUB_SQS_REGION": REGION,
        "TASKHUB_SQS_QUEUE_URL_PREFIX": f"{sqs_endpoint}/123456789012/{QUEUE_PREFIX}",
        "TASKHUB_SQS_WAIT_TIME_SECONDS": "1",
        "TASKHUB_ALLOW_PRIVATE_TARGETS": "1",
        "TASKHUB_TICK_SECONDS": "2",
        "TASKHUB_DISPATCH_LEASE_SECONDS": "60",
        "TASKHUB_DATA_DIR": str(tmp_path / "data"),
    }
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop_all()


def test_a_burst_fires_exactly_once_through_sqs(
    sqs_stack: Stack, pg_engine: Engine, target: Target
) -> None:
    retry = {"max_attempts": 3, "backoff_seconds": 1, "max_backoff_seconds": 2}
    ok = add_tasks(pg_engine, 20, target.url("/ok"), {"at": soon(3)})
    flaky = add_tasks(pg_engine, 2, target.url("/flaky/1"), {"at": soon(3)}, retry=retry)
    sqs_stack.start("state", "state")
    sqs_stack.start("trigger", "trigger")
    sqs_stack.start("beat", "beat")
    assert wait_until(lambda: all_ended(pg_engine, 22), 180), sqs_stack.logs()
    assert statuses(pg_engine) == {"succeeded": 22}
    keys = target.keys()
    assert len(keys) == 22
    # Each /ok occurrence arrived once; each flaky one twice (503, then 200), one key each.
    per_path: dict[str, list[int]] = {}
    for received in target.snapshot():
        per_path.setdefault(received.path, []).append(1)
    assert len(per_path["/ok"]) == 20 and len(per_path["/flaky/1"]) == 4
    assert sorted(keys.values()) == [1] * 20 + [2] * 2
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.select(scheduled_tasks)).mappings().all()
    assert {r["id"] for r in rows} == set(ok) | set(flaky)
    assert all(r["is_finished"] and r["last_status"] == "succeeded" for r in rows)
    logs = "\n".join(path.read_text() for path in sqs_stack.log_dir.glob("*.log"))
    assert "Traceback" not in logs, sqs_stack.logs()
    # (The log's redaction masks the URL's credentials.)
    connected = f"Connected to sqs://[redacted]@{sqs_host(sqs_stack)}"
    assert logs.count(connected) == 2, sqs_stack.logs()  # the state and trigger workers
    # Only the queues made beforehand were used: none created (no celeryev or pidbox
    # queue either, as remote control and events are off on SQS), and all are drained.
    client = sqs_client(sqs_stack.env["TASKHUB_SQS_QUEUE_URL_PREFIX"].split("/123")[0])
    urls = client.list_queues()["QueueUrls"]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == sorted(
        QUEUE_PREFIX + sqs_queue_name(q) for q in (DISCOVERY_QUEUE, TRIGGER_QUEUE, STATE_QUEUE)
    )
    for url in urls:
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def sqs_host(stack: Stack) -> str:
    return stack.env["TASKHUB_BROKER_URL"].rsplit("@", 1)[1]


def test_the_workers_refuse_sqs_without_a_result_backend(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")} | FAKE_CREDENTIALS
    env["TASKHUB_BROKER_URL"] = "sqs://"
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "taskhub", "report"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TASKHUB_RESULT_BACKEND" in result.stderr, result.stderr
