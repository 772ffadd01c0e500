"""Reading a task definition as the API documents it, and refusing anything unclear.

Pure: no database, no HTTP. Every refusal is a :class:`ValidationError` naming the
field by its dotted path. Its limits and defaults are those of :mod:`taskhub.core.limits`,
which the OpenAPI document states too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskhub.core import limits
from taskhub.core.addresses import AddressPolicy, TargetURLError, parse_target_url, target_refusal
from taskhub.core.callbacks import Callback, parse_callback
from taskhub.core.celery_calls import CeleryCall, parse_celery_call
from taskhub.core.errors import ScheduleError, ValidationError
from taskhub.core.fields import integer, number, object_of
from taskhub.core.host_limits import HostLimit
from taskhub.core.notifications import parse_max_lag
from taskhub.core.retry_policy import RetryPolicy
from taskhub.core.schedules import (
    Cron,
    Interval,
    OneTime,
    Schedule,
    Window,
    validate,
    validate_window,
)
from taskhub.core.statuses import MisfirePolicy, OverlapPolicy

_TOKEN = re.compile(limits.HEADER_NAME_PATTERN)
_TAG_KEY = re.compile(limits.TAG_KEY_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

TOP_LEVEL = (
    "name",
    "schedule",
    "target",
    "retry",
    "start_at",
    "end_at",
    "max_executions",
    "tags",
    "misfire_policy",
    "auto_pause_after_failures",
    "rate_limit",
    "spread_seconds",
    "exclude_calendars",
    "overlap",
    "retention_days",
    "callback",
    "max_lag_seconds",
)
RATE_LIMIT_FIELDS = ("max_in_flight", "per_second")
TARGET_FIELDS = ("url", "method", "headers", "body", "celery", "timeout_seconds")
#: The fields of an HTTP target that a Celery target does not take.
URL_TARGET_FIELDS = ("url", "method", "headers", "body")
RETRY_FIELDS = ("max_attempts", "backoff_seconds", "max_backoff_seconds")


@dataclass(frozen=True)
class Target:
    """Exactly one of an HTTP call (``url`` and its method, headers and body) and a
    Celery task to send (``celery``: ``url`` is None, the HTTP fields their defaults)."""

    url: str | None
    method: str = limits.DEFAULT_METHOD
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    timeout_seconds: float = limits.DEFAULT_TIMEOUT_S
    celery: CeleryCall | None = None


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    schedule: Schedule
    target: Target
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    window: Window = field(default_factory=Window)
    tags: dict[str, str] = field(default_factory=dict)
    misfire_policy: MisfirePolicy = limits.DEFAULT_MISFIRE_POLICY
    #: Pause the task once this many executions in a row have failed; None: never.
    auto_pause_after_failures: int | None = None
    #: This task's flow control (with its host's TASKHUB_HOST_LIMITS, the tighter wins).
    rate_limit: HostLimit | None = None
    #: Fire each occurrence at a stable pseudo-random offset within this many seconds.
    spread_seconds: int = limits.DEFAULT_SPREAD_S
    #: The names of the tenant's exclusion calendars whose dates this task does not fire on.
    exclude_calendars: tuple[str, ...] = ()
    #: What to do with an occurrence due while an earlier execution still runs.
    overlap: OverlapPolicy = limits.DEFAULT_OVERLAP_POLICY
    #: How many days this task's ended executions are kept; None: the installation's
    #: TASKHUB_EXECUTION_RETENTION_DAYS.
    retention_days: int | None = None
    #: Where the outcome of each ended execution is posted (``core.callbacks``).
    callback: Callback | None = None
    #: A first attempt sent more than this many seconds after its due time raises a
    #: ``late`` notification; None: never late by lag.
    max_lag_seconds: int | None = None


def parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, "must be an ISO 8601 time with offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(name, f"not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError(name, "must carry a UTC offset, e.g. 2026-01-01T09:00:00Z")
    return parsed.astimezone(UTC)


def parse_schedule(data: Any, now: datetime, *, require_future_at: bool = True) -> Schedule:
    data = object_of(data, "schedule", ("cron", "timezone", "interval_seconds", "at"))
    kinds = [k for k in ("cron", "interval_seconds", "at") if k in data]
    if len(kinds) != 1:
        raise ValidationError("schedule", "give exactly one of cron, interval_seconds, at")
    if "timezone" in data and kinds != ["cron"]:
        raise ValidationError("schedule.timezone", "only a cron schedule takes a timezone")
    schedule: Schedule
    if kinds == ["cron"]:
        if not isinstance(data["cron"], str):
            raise ValidationError("schedule.cron", "must be a string")
        timezone = data.get("timezone", limits.DEFAULT_TIMEZONE)
        if not isinstance(timezone, str):
            raise ValidationError("schedule.timezone", "must be a string")
        schedule = Cron(data["cron"], timezone)
    elif kinds == ["interval_seconds"]:
        seconds = integer(
            data["interval_seconds"],
            "schedule.interval_seconds",
            limits.MIN_INTERVAL_S,
            limits.MAX_INTERVAL_S,
        )
        schedule = Interval(seconds, anchor=now)
    else:
        at = parse_time(data["at"], "schedule.at")
        if at is None:
            raise ValidationError("schedule.at", "must be an ISO 8601 time with offset")
        if require_future_at and at < now:
            raise ValidationError("schedule.at", "is in the past")
        schedule = OneTime(at)
    try:
        validate(schedule)
    except ScheduleError as error:
        raise ValidationError(error.field, error.message) from None
    return schedule


def _object_of_strings(value: Any, field: str, most: int, noun: str) -> Mapping[Any, Any]:
    """``value`` as an object of at most ``most`` entries (None: none), before its entries
    are checked; the headers and the tags are refused alike."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, "must be an object of string values")
    if len(value) > most:
        raise ValidationError(field, f"at most {most} {noun}")
    return value


def parse_headers(value: Any) -> dict[str, str]:
    value = _object_of_strings(value, "target.headers", limits.MAX_HEADERS, "headers")
    total = 0
    seen: set[str] = set()
    for name, header_value in value.items():
        where = f"target.headers.{name}"
        if (
            not isinstance(name, str)
            or not _TOKEN.match(name)
            or len(name) > limits.MAX_HEADER_NAME_CHARS
        ):
            raise ValidationError("target.headers", f"invalid header name {str(name)[:40]!r}")
        lowered = name.lower()
        if lowered in limits.RESERVED_HEADERS or lowered.startswith(limits.RESERVED_HEADER_PREFIX):
            raise ValidationError(where, "is set by taskhub or describes one connection")
        if lowered in seen:
            raise ValidationError(where, "given twice (header names ignore case)")
        seen.add(lowered)
        if not isinstance(header_value, str):
            raise ValidationError(where, "must be a string")
        if len(header_value) > limits.MAX_HEADER_VALUE_CHARS or _CONTROL.search(
            header_value.replace("\t", "")
        ):
            raise ValidationError(
                where,
                f"must be at most {limits.MAX_HEADER_VALUE_CHARS} characters without control "
                "characters",
            )
        total += len(name.encode()) + len(header_value.encode())
    if total > limits.MAX_HEADERS_BYTES:
        raise ValidationError("target.headers", f"at most {limits.MAX_HEADERS_BYTES} bytes in all")
    return dict(value)


def parse_target(
    data: Any,
    address_policy: AddressPolicy | None = None,
    celery_brokers: Collection[str] | None = None,
    celery_result_backends: Collection[str] | None = None,
) -> Target:
    """Exactly one of ``url`` and ``celery`` (a null one counts as not given).
    ``address_policy``, when given, refuses an IP-literal host in a blocked address
    class and a port it does not allow (host names are checked when they resolve, at
    fire time); ``celery_brokers`` and ``celery_result_backends``, the names the
    operator configured, which a Celery target may name (:func:`parse_celery_call`)."""
    data = object_of(data, "target", TARGET_FIELDS)
    if data.get("celery") is not None:
        return _celery_target(data, celery_brokers, celery_result_backends)
    url = data.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("target.url", "is required")
    if len(url) > limits.MAX_URL_CHARS:
        raise ValidationError("target.url", f"at most {limits.MAX_URL_CHARS} characters")
    if _CONTROL.search(url) or " " in url:
        raise ValidationError("target.url", "must not contain spaces or control characters")
    try:
        # The HTTP client's own parse (trigger reads the URL the same way at fire time).
        target = parse_target_url(url)
    except TargetURLError as error:
        raise ValidationError("target.url", error.message) from None
    if address_policy is not None:
        refusal = target_refusal(target, address_policy)
        if refusal is not None:
            raise ValidationError("target.url", refusal)
    method = data.get("method", limits.DEFAULT_METHOD)
    if not isinstance(method, str) or method.upper() not in limits.METHODS:
        raise ValidationError("target.method", f"must be one of {', '.join(limits.METHODS)}")
    body = data.get("body")
    if body is not None:
        if not isinstance(body, str):
            raise ValidationError("target.body", "must be a string (send JSON as a string)")
        if len(body.encode("utf-8", errors="surrogatepass")) > limits.MAX_BODY_BYTES:
            raise ValidationError("target.body", f"at most {limits.MAX_BODY_BYTES} bytes")
    timeout = _timeout(data)
    return Target(url, method.upper(), parse_headers(data.get("headers")), body, timeout)


def _timeout(target: Mapping[str, Any]) -> float:
    """``target.timeout_seconds``, of either kind of target."""
    return number(
        target.get("timeout_seconds", limits.DEFAULT_TIMEOUT_S),
        "target.timeout_seconds",
        limits.MIN_TIMEOUT_S,
        limits.MAX_TIMEOUT_S,
    )


def _celery_target(
    data: Mapping[str, Any],
    brokers: Collection[str] | None,
    result_backends: Collection[str] | None,
) -> Target:
    """A target with ``celery``: none of an HTTP target's fields besides it."""
    if data.get("url") is not None:
        raise ValidationError("target.celery", "give exactly one of target.url and target.celery")
    for name in URL_TARGET_FIELDS:
        if data.get(name) is not None:
            raise ValidationError(f"target.{name}", "only for a url target")
    call = parse_celery_call(data["celery"], brokers, result_backends)
    return Target(url=None, timeout_seconds=_timeout(data), celery=call)


def parse_retry(data: Any) -> RetryPolicy:
    data = object_of({} if data is None else data, "retry", RETRY_FIELDS)
    policy = RetryPolicy(
        integer(
            data.get("max_attempts", limits.DEFAULT_MAX_ATTEMPTS),
            "retry.max_attempts",
            limits.MIN_ATTEMPTS,
            limits.MAX_ATTEMPTS,
        ),
        number(
            data.get("backoff_seconds", limits.DEFAULT_BACKOFF_S),
            "retry.backoff_seconds",
            limits.MIN_BACKOFF_S,
            limits.MAX_BACKOFF_S,
        ),
        number(
            data.get("max_backoff_seconds", limits.DEFAULT_MAX_BACKOFF_S),
            "retry.max_backoff_seconds",
            limits.MIN_BACKOFF_S,
            limits.MAX_BACKOFF_S,
        ),
    )
    if policy.max_backoff_seconds < policy.backoff_seconds:
        raise ValidationError("retry.max_backoff_seconds", "must not be below backoff_seconds")
    return policy


def parse_tags(value: Any) -> dict[str, str]:
    value = _object_of_strings(value, "tags", limits.MAX_TAGS, "tags")
    for key, tag_value in value.items():
        if not isinstance(key, str) or not _TAG_KEY.match(key):
            raise ValidationError(
                "tags",
                f"invalid tag key {str(key)[:40]!r}: use 1-{limits.MAX_TAG_KEY_CHARS} of letters, "
                "digits, '_', '.', '-'",
            )
        if not isinstance(tag_value, str) or len(tag_value) > limits.MAX_TAG_VALUE_CHARS:
            raise ValidationError(
                f"tags.{key}",
                f"must be a string of at most {limits.MAX_TAG_VALUE_CHARS} characters",
            )
    return dict(value)


def parse_misfire_policy(value: Any) -> MisfirePolicy:
    if value is None:
        return limits.DEFAULT_MISFIRE_POLICY
    if not isinstance(value, str) or value not in {p.value for p in MisfirePolicy}:
        raise ValidationError(
            "misfire_policy", f"must be one of {', '.join(p.value for p in MisfirePolicy)}"
        )
    return MisfirePolicy(value)


def parse_overlap(value: Any) -> OverlapPolicy:
    if value is None:
        return limits.DEFAULT_OVERLAP_POLICY
    if not isinstance(value, str) or value not in {p.value for p in OverlapPolicy}:
        raise ValidationError(
            "overlap", f"must be one of {', '.join(p.value for p in OverlapPolicy)}"
        )
    return OverlapPolicy(value)


def parse_auto_pause(value: Any) -> int | None:
    if value is None:
        return None
    return integer(
        value,
        "auto_pause_after_failures",
        limits.MIN_AUTO_PAUSE_AFTER_FAILURES,
        limits.MAX_AUTO_PAUSE_AFTER_FAILURES,
    )


def parse_rate_limit(value: Any) -> HostLimit | None:
    """``{"max_in_flight": N, "per_second": R}``, at least one of them; null: none."""
    if value is None:
        return None
    data = object_of(value, "rate_limit", RATE_LIMIT_FIELDS)
    in_flight = data.get("max_in_flight")
    per_second = data.get("per_second")
    if in_flight is None and per_second is None:
        raise ValidationError("rate_limit", "give max_in_flight, per_second or both")
    return HostLimit(
        None
        if in_flight is None
        else integer(
            in_flight,
            "rate_limit.max_in_flight",
            limits.MIN_RATE_IN_FLIGHT,
            limits.MAX_RATE_IN_FLIGHT,
        ),
        None
        if per_second is None
        else _above(
            per_second,
            "rate_limit.per_second",
            limits.RATE_PER_SECOND_ABOVE,
            limits.MAX_RATE_PER_SECOND,
        ),
    )


def _above(value: Any, name: str, low: float, high: float) -> float:
    read = number(value, name, low, high)
    if read <= low:
        raise ValidationError(name, f"must be above {low:g} and at most {high:g}")
    return read


def parse_spread(value: Any) -> int:
    if value is None:
        return limits.DEFAULT_SPREAD_S
    return integer(value, "spread_seconds", limits.MIN_SPREAD_S, limits.MAX_SPREAD_S)


def parse_window(data: Mapping[str, Any]) -> Window:
    """``start_at``, ``end_at`` and ``max_executions`` of a task or of a schedule to
    preview, read alike for both."""
    max_executions = data.get("max_executions")
    if max_executions is not None:
        max_executions = integer(
            max_executions, "max_executions", limits.MIN_EXECUTIONS, limits.MAX_EXECUTIONS
        )
    window = Window(
        start_at=parse_time(data.get("start_at"), "start_at"),
        end_at=parse_time(data.get("end_at"), "end_at"),
        max_executions=max_executions,
    )
    try:
        validate_window(window)
    except ScheduleError as error:
        raise ValidationError(error.field, error.message) from None
    return window


def rate_limit_dict(limit: HostLimit | None) -> dict[str, Any] | None:
    if limit is None:
        return None
    return {"max_in_flight": limit.max_in_flight, "per_second": limit.per_second}


def refuse_unencodable(data: Any, name: str = "") -> None:
    """Refuse any string (key or value) that is not valid Unicode text: JSON can carry a
    lone surrogate (``"\\ud800"``), which no database, header or response can encode."""
    stack: list[tuple[Any, str]] = [(data, name)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(where or "body", "is not valid Unicode text") from None
        elif isinstance(value, Mapping):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    try:
                        key.encode("utf-8")
                    except UnicodeEncodeError:
                        raise ValidationError(
                            where or "body", "holds a key that is not valid Unicode text"
                        ) from None
                stack.append((item, path))
        elif isinstance(value, list | tuple):
            stack.extend(
                (item, f"{where}.{i}" if where else str(i)) for i, item in enumerate(value)
            )


def parse_definition(
    data: Any,
    now: datetime,
    *,
    require_future_at: bool = True,
    address_policy: AddressPolicy | None = None,
    celery_brokers: Collection[str] | None = None,
    celery_result_backends: Collection[str] | None = None,
) -> TaskDefinition:
    """A task as the API documents it. ``require_future_at`` is off when a change leaves an
    existing one-time schedule as it was; ``address_policy`` refuses blocked IP-literal
    targets, ``celery_brokers`` and ``celery_result_backends`` the Celery brokers and
    result backends not configured (the service passes the settings': ``None`` checks
    none)."""
    refuse_unencodable(data)
    data = object_of(data, "", TOP_LEVEL)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name", "is required")
    if len(name) > limits.MAX_NAME_CHARS or _CONTROL.search(name):
        raise ValidationError(
            "name", f"at most {limits.MAX_NAME_CHARS} characters, no control characters"
        )
    if "schedule" not in data:
        raise ValidationError("schedule", "is required")
    if "target" not in data:
        raise ValidationError("target", "is required")
    window = parse_window(data)
    return TaskDefinition(
        name=name,
        schedule=parse_schedule(data["schedule"], now, require_future_at=require_future_at),
        target=parse_target(data["target"], address_policy, celery_brokers, celery_result_backends),
        retry=parse_retry(data.get("retry")),
        window=window,
        tags=parse_tags(data.get("tags")),
        misfire_policy=parse_misfire_policy(data.get("misfire_policy")),
        auto_pause_after_failures=parse_auto_pause(data.get("auto_pause_after_failures")),
        rate_limit=parse_rate_limit(data.get("rate_limit")),
        spread_seconds=parse_spread(data.get("spread_seconds")),
        exclude_calendars=parse_exclude_calendars(data.get("exclude_calendars")),
        overlap=parse_overlap(data.get("overlap")),
        retention_days=parse_retention_days(data.get("retention_days")),
        callback=parse_callback(data.get("callback"), address_policy),
        max_lag_seconds=parse_max_lag(data.get("max_lag_seconds")),
    )


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    if isinstance(schedule, Cron):
        return {"cron": schedule.expression, "timezone": schedule.timezone}
    if isinstance(schedule, Interval):
        return {"interval_seconds": schedule.interval_seconds}
    return {"at": schedule.at.isoformat()}


_CALENDAR_NAME = re.compile(limits.CALENDAR_NAME_PATTERN)


def parse_calendar_name(value: Any, field_path: str = "name") -> str:
    """A calendar's name: lower-case letters, digits, ``_``, ``.`` and ``-``."""
    if not isinstance(value, str) or not _CALENDAR_NAME.match(value):
        raise ValidationError(
            field_path,
            f"must be 1 to {limits.MAX_CALENDAR_NAME_CHARS} lower-case letters, digits, "
            "'_', '.' or '-', starting with a letter or digit",
        )
    return value


def parse_exclude_calendars(value: Any) -> tuple[str, ...]:
    """A task's ``exclude_calendars``: distinct calendar names, in the order given
    (whether each exists is the service's to check)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError("exclude_calendars", "must be a list of calendar names")
    if len(value) > limits.MAX_EXCLUDE_CALENDARS:
        raise ValidationError(
            "exclude_calendars", f"must name at most {limits.MAX_EXCLUDE_CALENDARS} calendars"
        )
    names: list[str] = []
    for index, item in enumerate(value):
        name = parse_calendar_name(item, f"exclude_calendars[{index}]")
        if name not in names:
            names.append(name)
    return tuple(names)


def parse_retention_days(value: Any) -> int | None:
    """A task's ``retention_days``: 1 to 3,650; null: the installation's default."""
    if value is None:
        return None
    return integer(value, "retention_days", limits.MIN_RETENTION_DAYS, limits.MAX_RETENTION_DAYS)
