"""Tasks as users make them: cron schedules in their own time zones that POST a JSON
body with headers (one a credential), created through a real ``taskhub api`` process by
several keep-alive clients, as a deployment script or a team's services do."""

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
#: What registration through one API process is allowed per task when a due minute is
#: chosen (it creates a few hundred a second; a minute it misses is a run thrown away).
SECONDS_PER_TASK = 0.012


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


def _create_all(port: int, key: str, bodies: list[bytes], failures: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in bodies:
        connection.request("POST", "/v1/tasks", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
        if response.status != 201:
            failures.append(f"{response.status} {text[:200]!r}")
            return
    connection.close()


def register_through_api(
    engine: Engine, env: dict[str, str], log: Path, definitions: list[dict[str, Any]]
) -> dict[str, Any]:
    """Create ``definitions`` in tenant ``bench`` through ``taskhub api`` from
    ``CLIENTS`` keep-alive clients; the tenant's limits are raised first, as an operator
    raises them for such a tenant (``taskhub tenant limits set``). Returns the rate."""
    now = utcnow()
    with engine.begin() as conn:
        key, _ = apikeys.create_key(conn, TENANT, now)
        quotas.set_limits(
            conn,
            TENANT,
            {"max_tasks": len(definitions), "requests_per_second": 0},
            now,
            load(env),
        )
    bodies = [json.dumps(d).encode() for d in definitions]
    failures: list[str] = []
    with api_process(env, log) as port:
        started = time.perf_counter()
        threads = [
            threading.Thread(target=_create_all, args=(port, key, bodies[i::CLIENTS], failures))
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"registration through the API failed: {failures[0]}")
    return {
        "through": "POST /v1/tasks",
        "clients": CLIENTS,
        "tasks": len(definitions),
        "seconds": round(seconds, 1),
        "creates_per_s": round(len(definitions) / seconds),
    }
