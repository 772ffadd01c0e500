"""``taskhub import redbeat``: redbeat's entries, read from Redis with redis-py (no
redbeat installed): the ``<prefix>:schedule`` sorted set names each entry's hash
``<prefix><name>``, whose ``definition`` field holds the entry as redbeat's JSON.

redbeat stores a crontab without its zone (its beat runs it in the app's): the crontabs
are read in ``--timezone``. An ``rrule`` schedule is refused; a disabled entry becomes a
paused task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from celery.schedules import crontab

from taskhub.core.errors import ValidationError
from taskhub.service.importing.entries import (
    Entry,
    Unmappable,
    celery_target,
    definition,
    refused,
)
from taskhub.service.importing.schedules import (
    CRON_FIELDS,
    cron_of,
    interval_schedule,
)

_READ_TIMEOUT_S = 30


def read(url: str, key_prefix: str, timezone: str, default_queue: str) -> list[Entry]:
    """Every entry redbeat schedules under ``key_prefix`` at ``url``, by name."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("--timezone", f"unknown time zone {timezone!r}") from None
    try:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=_READ_TIMEOUT_S,
            socket_timeout=_READ_TIMEOUT_S,
        )
        with client:
            keys = [str(key) for key in client.zrange(f"{key_prefix}:schedule", 0, -1)]
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(key, "definition")
                definitions = pipe.execute()
    except (redis.RedisError, ValueError) as error:
        raise ValidationError("--redis-url", f"cannot read redbeat's entries: {error}") from None
    entries = [
        entry_of(key, raw, key_prefix, timezone, default_queue)
        for key, raw in zip(keys, definitions, strict=True)
    ]
    return sorted(entries, key=lambda entry: entry.name)


def _schedule(data: Any, timezone: str) -> dict[str, Any]:
    kind = data.get("__type__") if isinstance(data, Mapping) else None
    if kind == "crontab":
        try:
            tab = crontab(**{field: data.get(field, "*") for field, _low, _high in CRON_FIELDS})
        except ValueError as error:
            raise Unmappable(f"its crontab is not one Celery reads: {error}") from None
        return {"cron": cron_of(tab), "timezone": timezone}
    if kind == "interval":
        every = data.get("every")
        if isinstance(every, bool) or not isinstance(every, int | float):
            raise Unmappable(f"interval {every!r} is not a number of seconds")
        return interval_schedule(timedelta(seconds=every), bool(data.get("relative")), timezone)
    if kind == "rrule":
        raise Unmappable(
            "rrule schedule (redbeat.schedules.rrule): taskhub has no recurrence rules"
        )
    raise Unmappable(f"schedule {str(data)[:60]} is not one redbeat writes")


def entry_of(
    key: str, raw: str | None, key_prefix: str, timezone: str, default_queue: str
) -> Entry:
    """One redbeat entry (its key and its ``definition``), or refused."""
    name = key.removeprefix(key_prefix)
    if raw is None:
        return refused(name, f"{key} has no definition (the entry was deleted)")
    try:
        data = json.loads(raw)
    except ValueError:
        return refused(name, f"{key}'s definition is not JSON")
    if not isinstance(data, Mapping):
        return refused(name, f"{key}'s definition is not an object")
    name = str(data.get("name") or name)
    try:
        schedule = _schedule(data.get("schedule"), timezone)
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise Unmappable(f"options {options!r} is not an object")
        target = celery_target(
            data.get("task"), data.get("args"), data.get("kwargs"), options, default_queue
        )
        return Entry(name, definition(name, schedule, target), paused=not data.get("enabled", True))
    except Unmappable as error:
        return refused(name, str(error))
