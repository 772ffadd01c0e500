"""Structured logs and the redaction every handler applies."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub import logs

SECRET = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789-_", min_size=12)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', "dXNlcjpwYXNz"),
        ("cookie=session-4f9a8b7c6d", "session-4f9a8b7c6d"),
        ("X-Api-Key: k-1234567890", "k-1234567890"),
        ("key th_abcdefgh_0123456789abcdefghijABCDEFGHIJ_- leaked", "0123456789abcdefghij"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("postgresql://taskhub:hunter2@db:5432/taskhub", "hunter2"),
        ("password=correct-horse", "correct-horse"),
    ],
)
def test_credentials_are_masked(text: str, hidden: str) -> None:
    cleaned = logs.redact(text)
    assert hidden not in cleaned and logs.MASK in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "execution 42 of task 9b1d due 2026-11-22T12:00:00+00:00: attempt 1 failed (HTTP 404)"
    assert logs.redact(text) == text


#: Surrounding text that cannot itself contain the secret (so a match is a leak).
AROUND = st.text(alphabet=" .,:;!?()[]{}\"'\n\té", max_size=30)


@given(prefix=AROUND, secret=SECRET, suffix=AROUND)
def test_a_bearer_token_never_survives(prefix: str, secret: str, suffix: str) -> None:
    assert secret not in logs.redact(f"{prefix} Authorization: Bearer {secret} {suffix}")


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("taskhub.test")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, message, args, None, extra=extra
    )


def test_json_lines_carry_the_ids_of_what_they_are_about() -> None:
    line = logs.JsonFormatter().format(
        record(
            "execution %s failed",
            42,
            task_id="9b1d",
            execution_id=42,
            scheduled_for="2026-11-22T12:00:00+00:00",
            status="failed",
        )
    )
    entry = json.loads(line)
    assert entry["message"] == "execution 42 failed"
    assert entry["level"] == "WARNING" and entry["logger"] == "taskhub.test"
    assert (entry["task_id"], entry["execution_id"], entry["status"]) == ("9b1d", 42, "failed")
    assert entry["scheduled_for"] == "2026-11-22T12:00:00+00:00"
    assert entry["time"].endswith("+00:00")


def test_the_filter_masks_arguments_and_exceptions() -> None:
    rec = record("calling with %s", "Bearer topsecret-token-1")
    try:
        raise ValueError("Authorization: Bearer topsecret-token-2")
    except ValueError:
        import sys

        rec.exc_info = sys.exc_info()
    assert logs.RedactingFilter().filter(rec)
    line = logs.JsonFormatter().format(rec)
    assert "topsecret" not in line and logs.MASK in line


def test_configure_adds_the_filter_once_and_the_format() -> None:
    logger = logging.getLogger("taskhub.test.configure")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        logs.configure(logger, "json")
        logs.configure(logger, "json")
        assert sum(isinstance(f, logs.RedactingFilter) for f in handler.filters) == 1
        assert isinstance(handler.formatter, logs.JsonFormatter)
    finally:
        logger.removeHandler(handler)
