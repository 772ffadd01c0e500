"""Log records as one JSON object a line (``TASKHUB_LOG_FORMAT=json``), and a redaction
filter on every handler whatever the format.

The engine logs with ``extra={"task_id": ..., "execution_id": ..., "scheduled_for": ...}``
so that a log search for one task, occurrence or execution finds every line about it;
those keys become top-level JSON fields. Redaction is a last line of defence: the code
never logs a header value or a body on purpose, but an exception message may quote one.
It masks bearer/basic credentials, ``Authorization``/``Cookie``/API-key style header
values, taskhub's own API keys and signing secrets, and passwords in URLs.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Final

#: The ``extra`` keys that name what a line is about; emitted as top-level JSON fields.
CONTEXT_KEYS: Final = (
    "task_id",
    "execution_id",
    "scheduled_for",
    "attempt",
    "status",
    "http_status",
    "chunk_id",
    "tenant",
)

MASK: Final = "[redacted]"

_PATTERNS: Final = (
    # Authorization: Bearer abc / Basic abc, and bare "Bearer abc".
    re.compile(r"(?i)\b(bearer|basic)\s+[^\s\",;]+"),
    # Header-like "name: value" / "name=value" for names that carry credentials.
    re.compile(
        r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|"
        r"x-auth-token|password|passwd|secret|token)(\"?\s*[:=]\s*\"?)([^\s\",;]+)"
    ),
    # taskhub's API keys (th_<prefix>_<secret>) and signing secrets (whsec_...).
    re.compile(r"\bth_[a-z2-7]{8}_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9_-]{8,}"),
    # user:password@ in URLs.
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"),
)


def redact(text: str) -> str:
    """``text`` with every credential-looking part masked."""
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _PATTERNS[2].sub(MASK, text)
    text = _PATTERNS[3].sub(MASK, text)
    return _PATTERNS[4].sub(f"{MASK}@", text)


class RedactingFilter(logging.Filter):
    """Masks credentials in the formatted message and the exception text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, process,
    the context keys present on the record, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, ensure_ascii=False)


def configure(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of ``logger`` the redaction filter, and the JSON formatter if
    asked for (called for Celery's loggers, the API's and the CLI's)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
        if log_format == "json":
            handler.setFormatter(JsonFormatter())


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for processes that are not Celery's (the API under
    uvicorn): the root logger and uvicorn's, redacted, in the chosen format."""
    formatter: dict[str, Any] = (
        {"()": "taskhub.logs.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "taskhub",
        "filters": ["redact"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "taskhub.logs.RedactingFilter"}},
        "formatters": {"taskhub": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }
