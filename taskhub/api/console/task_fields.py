"""The task form's fields and a task definition, each turned into the other.

Pure: the form's text becomes the JSON definition the API takes (and is then checked by
the service, as a JSON create or change is), and a definition becomes the text the form
shows. A refusal names the field by its dotted API path (``schedule.cron``); the form
shows it beside the input that path belongs to (:func:`input_for`).

A target is an HTTP request or a Celery task (the form's "Target" choice); a Celery
task's arguments are typed as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from taskhub.core import callbacks, limits
from taskhub.core.errors import ValidationError
from taskhub.core.statuses import MisfirePolicy, OverlapPolicy

#: The form's schedule choice (the select's option values), by its visible word.
SCHEDULE_KINDS: Final = (("cron", "Cron"), ("interval", "Interval"), ("once", "Once"))
#: The form's target choice.
TARGET_KINDS: Final = (("http", "HTTP request"), ("celery", "Celery task"))
METHODS: Final = limits.METHODS
MISFIRE_POLICIES: Final = tuple(p.value for p in MisfirePolicy)
OVERLAP_POLICIES: Final = tuple(p.value for p in OverlapPolicy)

#: Each input of the form and the API field (dotted path) it holds.
INPUTS: Final = {
    "name": "name",
    "target": "target",
    "url": "target.url",
    "method": "target.method",
    "headers": "target.headers",
    "body": "target.body",
    "celery_task": "target.celery.task",
    "celery_args": "target.celery.args",
    "celery_kwargs": "target.celery.kwargs",
    "celery_queue": "target.celery.queue",
    "celery_broker": "target.celery.broker",
    "celery_track": "target.celery.track",
    "celery_expires_seconds": "target.celery.expires_seconds",
    "timeout_seconds": "target.timeout_seconds",
    "schedule": "schedule",
    "cron": "schedule.cron",
    "timezone": "schedule.timezone",
    "interval_seconds": "schedule.interval_seconds",
    "at": "schedule.at",
    "max_attempts": "retry.max_attempts",
    "backoff_seconds": "retry.backoff_seconds",
    "max_backoff_seconds": "retry.max_backoff_seconds",
    "start_at": "start_at",
    "end_at": "end_at",
    "max_executions": "max_executions",
    "tags": "tags",
    "misfire_policy": "misfire_policy",
    "auto_pause_after_failures": "auto_pause_after_failures",
    "max_in_flight": "rate_limit.max_in_flight",
    "per_second": "rate_limit.per_second",
    "spread_seconds": "spread_seconds",
    "exclude_calendars": "exclude_calendars",
    "overlap": "overlap",
    "retention_days": "retention_days",
    "callback_url": "callback.url",
    "callback_on": "callback.on",
    "max_lag_seconds": "max_lag_seconds",
}
_BY_PATH: Final = {path: name for name, path in INPUTS.items()}
#: Each input's label, as the page shows it (and a refusal in the preview names it).
LABELS: Final = {
    "name": "Name",
    "target": "Target",
    "url": "URL",
    "method": "Method",
    "headers": "Headers",
    "body": "Body",
    "celery_task": "Celery task",
    "celery_args": "Arguments (JSON array)",
    "celery_kwargs": "Keyword arguments (JSON object)",
    "celery_queue": "Queue",
    "celery_broker": "Broker",
    "celery_track": "Wait for the result",
    "celery_expires_seconds": "Expires (seconds)",
    "timeout_seconds": "Timeout (seconds)",
    "schedule": "Schedule",
    "cron": "Cron",
    "timezone": "Time zone",
    "interval_seconds": "Interval (seconds)",
    "at": "At",
    "max_attempts": "Max attempts",
    "backoff_seconds": "Backoff (seconds)",
    "max_backoff_seconds": "Max backoff (seconds)",
    "start_at": "Start at",
    "end_at": "End at",
    "max_executions": "Max executions",
    "tags": "Tags",
    "misfire_policy": "Misfire policy",
    "auto_pause_after_failures": "Auto-pause after failures",
    "max_in_flight": "Max in flight",
    "per_second": "Per second",
    "spread_seconds": "Spread (seconds)",
    "exclude_calendars": "Exclusion calendars",
    "overlap": "Overlap",
    "retention_days": "Retention (days)",
    "callback_url": "Callback URL",
    "callback_on": "Callback on",
    "max_lag_seconds": "Max lag (seconds)",
}
#: Paths that name no input of their own, and the input that shows their refusal.
_ALSO: Final = {
    "target.celery": "celery_task",
    "rate_limit": "max_in_flight",
    "retry": "max_attempts",
    "callback": "callback_url",
}

#: What a new task's form starts with: the API's defaults, so that leaving them is
#: the same as a JSON create without them.
NEW_TASK: Final = {
    "target": "http",
    "method": limits.DEFAULT_METHOD,
    "celery_queue": limits.DEFAULT_CELERY_QUEUE,
    "celery_broker": limits.DEFAULT_CELERY_BROKER,
    "schedule": "cron",
    "timezone": limits.DEFAULT_TIMEZONE,
    "timeout_seconds": "30",
    "max_attempts": str(limits.DEFAULT_MAX_ATTEMPTS),
    "backoff_seconds": "10",
    "max_backoff_seconds": "600",
    "misfire_policy": limits.DEFAULT_MISFIRE_POLICY.value,
    "spread_seconds": str(limits.DEFAULT_SPREAD_S),
    "overlap": limits.DEFAULT_OVERLAP_POLICY.value,
}

_INTEGER = re.compile(r"[+-]?\d+")


def input_for(path: str | None) -> str | None:
    """The input beside which a refusal of API field ``path`` is shown: its own, else
    the nearest enclosing one's (``target.headers.Host`` → ``headers``); None: the
    form as a whole (a refusal of the body, or of a field the form has no input for)."""
    while path:
        if path in _BY_PATH:
            return _BY_PATH[path]
        if path in _ALSO:
            return _ALSO[path]
        path = path.rpartition(".")[0]
    return None


def _text(values: Mapping[str, str], name: str) -> str:
    return values.get(name, "").strip()


def _number(text: str) -> Any:
    """A typed number as JSON would carry it; anything else as typed, so that the
    service refuses it naming the field ("must be a number")."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        read = float(text)
    except ValueError:
        return text
    return read if read == read and read not in (float("inf"), float("-inf")) else text


def _optional_number(values: Mapping[str, str], name: str) -> Any:
    text = _text(values, name)
    return None if text == "" else _number(text)


def _optional_text(values: Mapping[str, str], name: str) -> str | None:
    text = _text(values, name)
    return text or None


def _pairs(text: str, separator: str, field: str) -> dict[str, str]:
    """``key<separator>value`` lines (blank ones skipped), each key once; a refusal names
    ``field`` (or ``field.key`` for a key given twice)."""
    pairs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        key, found, value = line.partition(separator)
        key = key.strip()
        if not found or not key:
            shape = "Name: value" if separator == ":" else f"key{separator}value"
            raise ValidationError(field, f"line {number}: write {shape}")
        if key in pairs:
            raise ValidationError(f"{field}.{key}", "given twice")
        pairs[key] = value.strip()
    return pairs


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines as the target's headers."""
    return _pairs(text, ":", "target.headers")


def parse_tags(text: str) -> dict[str, str]:
    """``key=value`` lines as the task's tags."""
    return _pairs(text, "=", "tags")


def schedule_of(values: Mapping[str, str]) -> dict[str, Any]:
    """The schedule the form's choice names, from that choice's fields only."""
    kind = _text(values, "schedule")
    if kind == "cron":
        schedule: dict[str, Any] = {"cron": _text(values, "cron")}
        timezone = _text(values, "timezone")
        if timezone:
            schedule["timezone"] = timezone
        return schedule
    if kind == "interval":
        return {"interval_seconds": _number(_text(values, "interval_seconds"))}
    if kind == "once":
        return {"at": _text(values, "at")}
    raise ValidationError("schedule", "choose Cron, Interval or Once")


def window_of(values: Mapping[str, str]) -> dict[str, Any]:
    """``start_at``, ``end_at`` and ``max_executions`` (null when left empty)."""
    return {
        "start_at": _optional_text(values, "start_at"),
        "end_at": _optional_text(values, "end_at"),
        "max_executions": _optional_number(values, "max_executions"),
    }


def _number_or_default(values: Mapping[str, str], name: str, default: float) -> Any:
    text = _text(values, name)
    return default if text == "" else _number(text)


def _json(values: Mapping[str, str], name: str, empty: Any) -> Any:
    """A JSON input (a Celery task's arguments): ``empty`` when left empty."""
    text = _text(values, name)
    if text == "":
        return empty
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValidationError(INPUTS[name], f"is not JSON ({error})") from None


def target_of(values: Mapping[str, str]) -> dict[str, Any]:
    """The target the form's choice names, from that choice's fields only."""
    timeout = _number_or_default(values, "timeout_seconds", limits.DEFAULT_TIMEOUT_S)
    if _text(values, "target") == "celery":
        return {
            "celery": {
                "task": _text(values, "celery_task"),
                "args": _json(values, "celery_args", []),
                "kwargs": _json(values, "celery_kwargs", {}),
                "queue": _text(values, "celery_queue") or limits.DEFAULT_CELERY_QUEUE,
                "broker": _text(values, "celery_broker") or limits.DEFAULT_CELERY_BROKER,
                "track": bool(_text(values, "celery_track")),
                "expires_seconds": _optional_number(values, "celery_expires_seconds"),
            },
            "timeout_seconds": timeout,
        }
    body = values.get("body", "").replace("\r\n", "\n")
    return {
        "url": _text(values, "url"),
        "method": _text(values, "method") or limits.DEFAULT_METHOD,
        "headers": parse_headers(values.get("headers", "")),
        "body": body or None,
        "timeout_seconds": timeout,
    }


def definition_of(values: Mapping[str, str]) -> dict[str, Any]:
    """The task definition (the API's JSON) the form's values say, every field given:
    an empty optional field is null (or the API's default where it takes no null)."""
    in_flight = _optional_number(values, "max_in_flight")
    per_second = _optional_number(values, "per_second")
    return {
        # As typed: the API keeps a name's spaces, so a save must not drop them.
        "name": values.get("name", ""),
        "schedule": schedule_of(values),
        "target": target_of(values),
        "retry": {
            "max_attempts": _number_or_default(values, "max_attempts", limits.DEFAULT_MAX_ATTEMPTS),
            "backoff_seconds": _number_or_default(
                values, "backoff_seconds", limits.DEFAULT_BACKOFF_S
            ),
            "max_backoff_seconds": _number_or_default(
                values, "max_backoff_seconds", limits.DEFAULT_MAX_BACKOFF_S
            ),
        },
        **window_of(values),
        "tags": parse_tags(values.get("tags", "")),
        "misfire_policy": _text(values, "misfire_policy") or limits.DEFAULT_MISFIRE_POLICY.value,
        "auto_pause_after_failures": _optional_number(values, "auto_pause_after_failures"),
        "rate_limit": None
        if in_flight is None and per_second is None
        else {"max_in_flight": in_flight, "per_second": per_second},
        "spread_seconds": _number_or_default(values, "spread_seconds", limits.DEFAULT_SPREAD_S),
        "exclude_calendars": parse_calendar_names(values.get("exclude_calendars", "")),
        "overlap": _text(values, "overlap") or limits.DEFAULT_OVERLAP_POLICY.value,
        "retention_days": _optional_number(values, "retention_days"),
        "callback": callback_of(values),
        "max_lag_seconds": _optional_number(values, "max_lag_seconds"),
    }


def callback_of(values: Mapping[str, str]) -> dict[str, Any] | None:
    """The callback (null when its URL is left empty); ``on`` as words separated by
    commas or spaces, every ending when left empty."""
    url = _text(values, "callback_url")
    if not url:
        return None
    on = parse_calendar_names(values.get("callback_on", ""))
    return {"url": url, "on": on or list(callbacks.DEFAULT_ON)}


def parse_calendar_names(text: str) -> list[str]:
    """Calendar names separated by commas or spaces."""
    return [name for name in re.split(r"[\s,]+", text) if name]


def _shown(value: Any) -> str:
    """A value as the form shows it: nothing for null, a whole number without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _schedule_values(schedule: Mapping[str, Any]) -> dict[str, str]:
    """Every schedule input: the task's kind filled in, the others empty (a switch of
    kind on the page starts from nothing, a cron from the default zone)."""
    values = {
        "cron": "",
        "timezone": limits.DEFAULT_TIMEZONE,
        "interval_seconds": "",
        "at": "",
    }
    if "cron" in schedule:
        return values | {
            "schedule": "cron",
            "cron": schedule["cron"],
            "timezone": schedule.get("timezone", limits.DEFAULT_TIMEZONE),
        }
    if "interval_seconds" in schedule:
        return values | {
            "schedule": "interval",
            "interval_seconds": _shown(schedule["interval_seconds"]),
        }
    return values | {"schedule": "once", "at": _shown(schedule.get("at"))}


def _target_values(target: Mapping[str, Any]) -> dict[str, str]:
    """Every target input: the task's kind filled in, the other's at its defaults."""
    values = {
        "target": "http",
        "url": "",
        "method": limits.DEFAULT_METHOD,
        "headers": "",
        "body": "",
        "celery_task": "",
        "celery_args": "",
        "celery_kwargs": "",
        "celery_queue": limits.DEFAULT_CELERY_QUEUE,
        "celery_broker": limits.DEFAULT_CELERY_BROKER,
        "celery_track": "",
        "celery_expires_seconds": "",
        "timeout_seconds": _shown(target.get("timeout_seconds")),
    }
    call = target.get("celery")
    if call is not None:
        return values | {
            "target": "celery",
            "celery_task": call["task"],
            "celery_args": json.dumps(call.get("args", []), ensure_ascii=False),
            "celery_kwargs": json.dumps(call.get("kwargs", {}), ensure_ascii=False),
            "celery_queue": call.get("queue", limits.DEFAULT_CELERY_QUEUE),
            "celery_broker": call.get("broker", limits.DEFAULT_CELERY_BROKER),
            "celery_track": "on" if call.get("track") else "",
            "celery_expires_seconds": _shown(call.get("expires_seconds")),
        }
    return values | {
        "url": target["url"],
        "method": target.get("method", limits.DEFAULT_METHOD),
        "headers": "\n".join(f"{k}: {v}" for k, v in (target.get("headers") or {}).items()),
        "body": target.get("body") or "",
    }


def values_of(definition: Mapping[str, Any]) -> dict[str, str]:
    """The form's values for a task definition (as the API returns it: credential
    headers already masked)."""
    retry = definition.get("retry") or {}
    rate_limit = definition.get("rate_limit") or {}
    return {
        "name": definition["name"],
        **_schedule_values(definition["schedule"]),
        **_target_values(definition["target"]),
        "max_attempts": _shown(retry.get("max_attempts")),
        "backoff_seconds": _shown(retry.get("backoff_seconds")),
        "max_backoff_seconds": _shown(retry.get("max_backoff_seconds")),
        "start_at": _shown(definition.get("start_at")),
        "end_at": _shown(definition.get("end_at")),
        "max_executions": _shown(definition.get("max_executions")),
        "tags": "\n".join(f"{k}={v}" for k, v in (definition.get("tags") or {}).items()),
        "misfire_policy": _shown(definition.get("misfire_policy")),
        "auto_pause_after_failures": _shown(definition.get("auto_pause_after_failures")),
        "max_in_flight": _shown(rate_limit.get("max_in_flight")),
        "per_second": _shown(rate_limit.get("per_second")),
        "spread_seconds": _shown(definition.get("spread_seconds")),
        "exclude_calendars": ", ".join(definition.get("exclude_calendars") or []),
        "overlap": _shown(definition.get("overlap")),
        "retention_days": _shown(definition.get("retention_days")),
        "callback_url": (definition.get("callback") or {}).get("url", ""),
        "callback_on": ", ".join((definition.get("callback") or {}).get("on") or []),
        "max_lag_seconds": _shown(definition.get("max_lag_seconds")),
    }


def changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The patch from ``current`` (the stored definition) to ``wanted`` (the form's):
    only the fields that differ, so a save that leaves the schedule, the window and the
    target as they were neither recomputes nor withdraws anything (and a one-time
    schedule already past stays as it is)."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}
