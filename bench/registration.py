"""Tasks as users make them: cron schedules in their own time zones that POST a JSON
body with headers (one a credential), created through a real ``taskhub api`` process by
several keep-alive clients, as a deployment script (``POST /v1/tasks:batch``, 1,000 a
request, what ``taskhub apply`` sends) or a team's services (``POST /v1/tasks``) do."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from bench.console import api_process
from taskhub.core.clock import utcnow
from taskhub.core.settings import load
from taskhub.service import apikeys, quotas

TENANT = "bench"
#: Zones with whole-hour, half-hour and DST-observing offsets, as a team's tasks have.
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Taipei",
    "America/Los_Angeles",
    "Australia/Sydney",
)
CLIENTS = 4
#: Definitions per ``POST /v1/tasks:batch`` (the endpoint's most).
BATCH_ITEMS = 1000
#: What registration through one API process is allowed per task when a due minute is
#: chosen (a minute it misses is a run thrown away): one by one it creates a few hundred
#: a second, in batches about 2,000.
SECONDS_PER_TASK = {"batch": 0.001, "single": 0.012}


def user_definition(i: int, url: str, due: datetime) -> dict[str, Any]:
    """A daily cron at ``due``'s wall time in one of ``ZONES``, POSTing JSON with headers."""
    zone = ZONES[i % len(ZONES)]
    local = due.astimezone(ZoneInfo(zone))
    return {
        "name": f"report-{i}",
        "schedule": {"cron": f"{local.minute} {local.hour} * * *", "timezone": zone},
        "target": {
            "url": url,
            "method": "POST",
            "headers": {
                "Content-Type": "application/json",
                "X-Request-Source": "taskhub",
                "Authorization": f"Bearer bench-token-{i % 17}",
            },
            "body": json.dumps(
                {"report": "daily-usage", "customer_id": i, "zone": zone, "format": "csv"}
            ),
            "timeout_seconds": 30,
        },
        "tags": {"team": f"team-{i % 10}", "env": "prod"},
    }


def _requests(definitions: list[dict[str, Any]], through: str) -> tuple[str, list[bytes]]:
    """The path and the bodies that create ``definitions`` one by one or in batches."""
    if through == "single":
        return "/v1/tasks", [json.dumps(d).encode() for d in definitions]
    batches = [
        definitions[start : start + BATCH_ITEMS]
        for start in range(0, len(definitions), BATCH_ITEMS)
    ]
    return "/v1/tasks:batch", [json.dumps({"tasks": batch}).encode() for batch in batches]


def _refusal(path: str, status: int, text: bytes) -> str | None:
    """Why a create failed, or None: a batch answers 200 with a result per item."""
    if path == "/v1/tasks":
        return None if status == 201 else f"{status} {text[:200]!r}"
    if status != 200:
        return f"{status} {text[:200]!r}"
    refused = [r for r in json.loads(text)["results"] if r.get("error") is not None]
    return f"{len(refused)} items refused: {refused[0]}" if refused else None


def _create_all(port: int, key: str, path: str, bodies: list[bytes], failures: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in bodies:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        refusal = _refusal(path, response.status, response.read())
        if refusal is not None:
            failures.append(refusal)
            return
    connection.close()


def tenant_key(engine: Engine, env: dict[str, str], tenant: str, max_tasks: int) -> str:
    """A new API key of ``tenant``, its ``max_tasks`` raised and its request rate
    unlimited, as an operator sets them for such a tenant (``taskhub tenant limits set``)."""
    now = utcnow()
    with engine.begin() as conn:
        key, _ = apikeys.create_key(conn, tenant, now)
        quotas.set_limits(
            conn, tenant, {"max_tasks": max_tasks, "requests_per_second": 0}, now, load(env)
        )
    return key


def post_from_clients(port: int, key: str, path: str, bodies: list[bytes], clients: int) -> float:
    """``bodies`` POSTed to ``path`` (``/v1/tasks`` or ``/v1/tasks:batch``) by ``clients``
    keep-alive clients at once, each its share in turn; the seconds from the first
    request to the last answer. A refused create, or a batch item refused, ends the run."""
    failures: list[str] = []
    started = time.perf_counter()
    threads = [
        threading.Thread(target=_create_all, args=(port, key, path, bodies[i::clients], failures))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"POST {path} through the API failed: {failures[0]}")
    return seconds


def register_through_api(
    engine: Engine,
    env: dict[str, str],
    log: Path,
    definitions: list[dict[str, Any]],
    through: str = "batch",
) -> dict[str, Any]:
    """Create ``definitions`` in tenant ``bench`` through ``taskhub api`` from
    ``CLIENTS`` keep-alive clients, ``through`` ``batch`` or ``single`` requests; the
    tenant's limits are raised first, as an operator raises them for such a tenant
    (``taskhub tenant limits set``). Returns the rate."""
    key = tenant_key(engine, env, TENANT, len(definitions))
    path, bodies = _requests(definitions, through)
    with api_process(env, log) as served:
        seconds = post_from_clients(served.port, key, path, bodies, CLIENTS)
    return {
        "through": f"POST {path}",
        "clients": CLIENTS,
        "tasks": len(definitions),
        "seconds": round(seconds, 1),
        "creates_per_s": round(len(definitions) / seconds),
    }
