"""Log records as one JSON object a line (``TASKHUB_LOG_FORMAT=json``), a redaction
filter on every handler whatever the format, and Celery's success line without the result.

The engine logs with ``extra={"task_id": ..., "execution_id": ..., "scheduled_for": ...}``
so that a log search for one task, occurrence or execution finds every line about it;
those keys become top-level JSON fields. Redaction is a last line of defence: the code
never logs a header value or a body on purpose, but an exception message may quote one.
It masks bearer/basic credentials; the value of anything named like a credential
(``Authorization: Token abc``, ``"access_token": "..."``, ``api_key=...``,
``client_secret=...``, ``X-Access-Token: ...``: the words of
``credentials.SECRET_NAME_WORDS``) whether written as a header, a JSON or Python pair, or
a query parameter; taskhub's own API keys and signing secrets; and passwords in URLs.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Final

from taskhub.core.credentials import REDACTED, SECRET_NAME_WORDS

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

MASK: Final = REDACTED

_NAME_CHARS: Final = r"[A-Za-z0-9_.-]"
_WORDS: Final = "|".join(re.escape(w) for w in SECRET_NAME_WORDS)
#: A credential's name and what assigns it a value: ``Authorization: ``, ``"api_key": ``,
#: ``client_secret=``, ``\"token\": `` (JSON inside a JSON string), ``'password': ``.
_ASSIGNED: Final = re.compile(
    # Possessive: a long run of name characters is read once, never backtracked into.
    rf"(?<!{_NAME_CHARS})({_NAME_CHARS}++)"
    r"((?:\\?[\"'])?[ \t]*[:=][ \t]*)"
)
_SECRET_WORD: Final = re.compile(rf"(?i){_WORDS}")
#: Names whose unquoted value runs to the end of the line (``Token abc``, ``a=1; b=2``).
_WHOLE_LINE: Final = re.compile(r"(?i)authorization|cookie")
#: Authorization schemes, kept in front of a masked credential ("Token [redacted]").
_SCHEME: Final = re.compile(
    r"(?i)(?:bearer|basic|token|digest|negotiate|ntlm|bot|jwt|api-?key|key|oauth|hawk|ssws"
    r"|aws4-hmac-sha256)[ \t]+(?=[^\s\"',;&])"
)
_UNQUOTED_END: Final = re.compile(r"[\s\"',;&]")
_LINE_END: Final = re.compile(r"[\r\n]")

_PATTERNS: Final = (
    # Authorization: Bearer abc / Basic abc, and bare "Bearer abc".
    re.compile(r"(?i)\b(bearer|basic)\s+[^\s\",;]+"),
    # taskhub's API keys (th_<prefix>_<secret>) and signing secrets (whsec_...: urlsafe
    # base64 for the taskhub scheme, standard base64 with + / = for standard-webhooks).
    re.compile(r"\bth_[a-z2-7]{8}_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9_+/=-]{8,}"),
    # user:password@ in URLs.
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"),
)


def _value_span(text: str, start: int, whole_line: bool) -> tuple[int, int]:
    """Where the value that starts at ``start`` lies (inside its quotes, if quoted)."""
    if text.startswith(('\\"', "\\'"), start):  # quoted inside a quoted string
        quote = text[start : start + 2]
        end = text.find(quote, start + 2)
        return start + 2, len(text) if end < 0 else end
    if start < len(text) and text[start] in "\"'":
        quote, i = text[start], start + 1
        while i < len(text) and text[i] != quote:
            i += 2 if text[i] == "\\" else 1
        return start + 1, min(i, len(text))
    if whole_line:
        found = _LINE_END.search(text, start)
    else:  # one word, or a scheme and its credential ("Token abc")
        scheme = _SCHEME.match(text, start)
        found = _UNQUOTED_END.search(text, scheme.end() if scheme else start)
    return start, len(text) if found is None else found.start()


def _redact_named(text: str) -> str:
    out: list[str] = []
    position = 0
    while (found := _ASSIGNED.search(text, position)) is not None:
        if _SECRET_WORD.search(found.group(1)) is None:
            out.append(text[position : found.end()])
            position = found.end()
            continue
        whole_line = _WHOLE_LINE.search(found.group(1)) is not None
        start, end = _value_span(text, found.end(), whole_line)
        if end <= start:
            out.append(text[position : found.end()])
            position = found.end()
            continue
        keep = _SCHEME.match(text, start, end)
        out.append(text[position : keep.end() if keep else start])
        out.append(MASK)
        position = end
    out.append(text[position:])
    return "".join(out)


def redact(text: str) -> str:
    """``text`` with every credential-looking part masked."""
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _redact_named(text)
    text = _PATTERNS[1].sub(MASK, text)
    text = _PATTERNS[2].sub(MASK, text)
    return _PATTERNS[3].sub(f"{MASK}@", text)


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


#: What Celery's success line shows instead of a task's return value.
RESULT_NOT_LOGGED: Final = "(result not logged)"


class ResultNotLogged(logging.Filter):
    """Celery's ``Task … succeeded in …s: <return value>`` line without the return value.

    Celery formats that line (``celery.app.trace.LOG_SUCCESS``) with a context mapping
    whose ``return_value`` is the result's repr: for a trigger task, every outcome with
    its response excerpt. Results hold what targets answered, so they are not logged;
    they stay in the result backend and the database. Installed on the
    ``celery.app.trace`` logger, it sees each of its records before any handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = record.args
        if isinstance(context, dict) and "return_value" in context:
            context = {**context, "return_value": RESULT_NOT_LOGGED}
            record.args = context
            if isinstance(getattr(record, "data", None), dict):
                record.data = context  # Celery passes the context as extra "data" too
        return True


def hide_results(logger: logging.Logger) -> None:
    """Install :class:`ResultNotLogged` on ``logger`` once."""
    if not any(isinstance(f, ResultNotLogged) for f in logger.filters):
        logger.addFilter(ResultNotLogged())


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
        {"()": "taskhub.observability.logs.JsonFormatter"}
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
        "filters": {"redact": {"()": "taskhub.observability.logs.RedactingFilter"}},
        "formatters": {"taskhub": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }
