"""Reading a Celery result as its backend stores it (``core.celery_results``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskhub.core import celery_results as cr
from taskhub.core.statuses import ExecutionStatus

FAILED = ExecutionStatus.FAILED


def meta(status: str, result: Any = None) -> bytes:
    return json.dumps({"status": status, "result": result, "task_id": "k"}).encode()


def test_success_succeeds_and_unfinished_states_wait() -> None:
    assert cr.from_redis(meta("SUCCESS", {"ok": True})) == (ExecutionStatus.SUCCEEDED, None)
    for status in ("PENDING", "RECEIVED", "STARTED", "RETRY", "PROGRESS"):
        assert cr.from_redis(meta(status, {"pid": 1})) is None
    assert cr.from_redis(None) is None


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"exc_type": "ValueError", "exc_message": ["boom 7"]}, "ValueError: boom 7"),
        ({"exc_type": "QuotaExceeded", "exc_message": ["quota", 7]}, "QuotaExceeded: quota, 7"),
        ({"exc_type": "NotRegistered", "exc_message": "user.nope"}, "NotRegistered: user.nope"),
        ({"exc_type": "KeyboardInterrupt", "exc_message": []}, "KeyboardInterrupt"),
        ({"exc_message": ["x"]}, "Exception: x"),
        ("not an object", "FAILURE"),
    ],
)
def test_a_failure_is_its_exception_type_and_message(result: Any, error: str) -> None:
    assert cr.from_redis(meta("FAILURE", result)) == (FAILED, error)


def test_revoked_and_unreadable_values_fail() -> None:
    assert cr.from_redis(meta("REVOKED")) == (FAILED, "revoked")
    compressed = b"\x00celery-compressed\x00application/json\x00..."
    for raw in (b"\x80\x05pickle", compressed, b"[1, 2]", b"{not json"):
        assert cr.from_redis(raw) == (FAILED, cr.UNREADABLE_ERROR)


def test_a_database_row_is_read_and_a_pickle_never_unpickled() -> None:
    assert cr.from_database("SUCCESS", b"\x80\x05K\x01.") == (ExecutionStatus.SUCCEEDED, None)
    assert cr.from_database("STARTED", None) is None
    failure = b'{"exc_type": "KeyError", "exc_message": ["k"], "exc_module": "builtins"}'
    assert cr.from_database("FAILURE", failure) == (FAILED, "KeyError: k")
    assert cr.from_database("FAILURE", failure.decode()) == (FAILED, "KeyError: k")
    assert cr.from_database("FAILURE", b"\x80\x05\x95 ...") == (FAILED, cr.PICKLED_ERROR)
    assert cr.from_database("FAILURE", b"\x00zz") == (FAILED, cr.UNREADABLE_ERROR)
    assert cr.from_database("FAILURE", None) == (FAILED, "FAILURE")


def test_which_backends_are_read_and_the_errors_name_no_secret() -> None:
    assert cr.backend_kind("redis://:pw@h:6379/0") == "redis"
    assert cr.backend_kind("rediss://h:6380/0") == "redis"
    assert cr.backend_kind("db+postgresql+psycopg2://u:pw@h/db") == "database"
    assert cr.backend_kind("rpc://") is None
    error = cr.unsupported_backend_error("file:///var/results")
    assert "file:" in error and "/var/results" not in error
    assert cr.timed_out_error(30.0) == "timed out waiting for the Celery result after 30 s"
    assert cr.timed_out_error(2.5) == "timed out waiting for the Celery result after 2.5 s"
    assert cr.redis_key("idem-1") == "celery-task-meta-idem-1"
