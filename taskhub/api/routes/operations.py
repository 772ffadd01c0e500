"""Operations: liveness and Prometheus metrics, for probes and scrapers (no key needed)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response

from taskhub.api.deps import AppContext
from taskhub.api.errors import error_response
from taskhub.api.schemas import Error, Health
from taskhub.observability.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Error, "description": "The database is unavailable"}},
    summary="Liveness: 200 when the database answers (no key needed)",
)
def healthz(context: AppContext) -> Any:
    # On the raw driver connection: no transaction, so on SQLite no BEGIN IMMEDIATE, and
    # a probe never queues behind a writer for the busy timeout.
    try:
        raw = context.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()
    except Exception as error:  # any failure to answer is "not healthy"
        log.warning("healthz: database unavailable (%s)", error.__class__.__name__)
        return error_response(503, "unavailable", "the database is unavailable")
    return {"status": "ok"}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    summary="Prometheus metrics (no key needed)",
)
def prometheus_metrics(context: AppContext) -> Response:
    return Response(context.metrics.render(), media_type=CONTENT_TYPE)
