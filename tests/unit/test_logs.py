"""Structured logs and the redaction every handler applies."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.observability import logs

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
        # A standard-webhooks secret: standard base64, "/" and "+" anywhere in it.
        ("secret whsec_N2/Vh9ZLg2Y3IURWanL7DmhcrE6sTBDftN9IbRhDFtY=", "Vh9ZLg2Y3IURWanL7"),
        ("secret whsec_ab+/cdefGHIJklmnOPQRstuv0123456789ABCDEFGHI=", "cdefGHIJklmn"),
        ("postgresql://taskhub:hunter2@db:5432/taskhub", "hunter2"),
        ("password=correct-horse", "correct-horse"),
        ("Authorization: Token abc123", "abc123"),
        ("Authorization: Digest username=bob, response=6629fae49393a05397", "6629fae4"),
        ('{"access_token": "eyJhbGciOi.J9.sig", "expires_in": 3600}', "eyJhbGciOi"),
        ("GET /oauth?api_key=k-0123456789&x=1", "k-0123456789"),
        ("client_secret=cs-abcdefabcdef&grant_type=refresh", "cs-abcdefabcdef"),
        ("refresh_token=rt-0123456789", "rt-0123456789"),
        ("X-Access-Token: xat-0123456789", "xat-0123456789"),
        ("Private-Token: glpat-0123456789", "glpat-0123456789"),
        ("{'Authorization': 'Token abc123'}", "abc123"),
        ('"{\\"api_key\\": \\"k-0123456789\\"}"', "k-0123456789"),
        ("Cookie: theme=dark; session=s-0123456789", "s-0123456789"),
        ('{"password": "with \\"quotes\\" inside"}', "inside"),
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


@given(prefix=AROUND, key=st.binary(min_size=24, max_size=64), suffix=AROUND)
def test_a_standard_webhooks_secret_never_survives(prefix: str, key: bytes, suffix: str) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    cleaned = logs.redact(f"{prefix} signing secret {secret} {suffix}")
    assert secret[6:] not in cleaned and secret[10:20] not in cleaned


@given(prefix=AROUND, secret=SECRET, suffix=AROUND)
def test_a_bearer_token_never_survives(prefix: str, secret: str, suffix: str) -> None:
    assert secret not in logs.redact(f"{prefix} Authorization: Bearer {secret} {suffix}")


NAME = st.sampled_from(
    [
        "Authorization",
        "authorization",
        "Cookie",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "client_secret",
        "X-Access-Token",
        "Private-Token",
        "password",
        "x-amz-security-token",
    ]
)
SCHEMES = st.sampled_from(["", "Bearer ", "Token ", "Basic ", "token "])


def shapes(name: str, value: str) -> list[str]:
    """A credential as logs and echoes write it: header, JSON, Python, query, form."""
    return [
        f"{name}: {value}",
        f"{name}:{value}",
        f'{{"{name}": "{value}", "other": 1}}',
        f"{{'{name}': '{value}'}}",
        f"?{name}={value}&next=1",
        f"{name} = {value}",
        f'"{{\\"{name}\\": \\"{value}\\"}}"',
        f"{name}={value}; Path=/",
    ]


@given(prefix=AROUND, name=NAME, scheme=SCHEMES, secret=SECRET, suffix=AROUND)
def test_a_named_credential_never_survives_in_any_shape(
    prefix: str, name: str, scheme: str, secret: str, suffix: str
) -> None:
    for shape in shapes(name, scheme + secret):
        cleaned = logs.redact(f"{prefix}{shape}{suffix}")
        assert secret not in cleaned, shape
        assert logs.MASK in cleaned


@given(st.text(max_size=200))
def test_redaction_is_total_and_stable(text: str) -> None:
    once = logs.redact(text)
    assert logs.redact(once) == once


def test_a_long_run_of_name_characters_is_read_in_linear_time() -> None:
    """A possessive match: 200,000 name characters cost one pass, not one per start."""
    text = "a" * 200_000 + " token=abc123 " + "b" * 200_000
    assert logs.redact(text).count("abc123") == 0


def test_celery_success_lines_carry_no_result() -> None:
    from celery.app import trace

    logger = logging.getLogger("celery.app.trace")
    logs.hide_results(logger)
    logs.hide_results(logger)
    assert sum(isinstance(f, logs.ResultNotLogged) for f in logger.filters) == 1
    lines: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    handler = Keep()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        excerpt = '{"headers": {"X-Api-Key": "k-do-not-log"}}'
        trace.info(
            trace.LOG_SUCCESS,
            {
                "id": "4f1c",
                "name": "taskhub.fire_triggers",
                "return_value": repr([{"response_excerpt": excerpt}]),
                "runtime": 0.25,
                "args": "()",
                "kwargs": "{}",
            },
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    [line] = lines
    message = line.getMessage()
    assert message == ("Task taskhub.fire_triggers[4f1c] succeeded in 0.25s: (result not logged)")
    assert "k-do-not-log" not in json.dumps(line.data)  # type: ignore[attr-defined]


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
