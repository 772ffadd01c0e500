"""The overview: how the tenant's tasks have fared over the last hour, as figures and
small charts, refreshed in place (``data-refresh-seconds``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taskhub.api.console.charts import Sparkline, sparkline
from taskhub.api.console.web import PREFIX, SignedIn, render
from taskhub.service import overview as overview_service

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: How often the figures reload themselves in the browser.
REFRESH_SECONDS = 15


def seconds(value: float | None) -> str:
    """A duration as a person reads it at a glance."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _count(value: float) -> str:
    return f"{value:.0f}"


def charts(figures: overview_service.Overview) -> dict[str, Sparkline]:
    """Each figure's chart over the window's buckets, with its text alternative."""
    per = f"per {figures.bucket_seconds // 60} minutes"
    return {
        "fired": sparkline(figures.fired_series, f"Occurrences fired {per}", _count),
        "success": sparkline(figures.success_series, f"Success rate {per}", percent),
        "lag": sparkline(figures.lag_p99_series, f"Fire lag p99 {per}", seconds),
        "backlog": sparkline(figures.backlog_series, f"Backlog by due time, {per}", _count),
        "dead": sparkline(figures.dead_series, f"Dead letters {per}", _count),
        "paused": sparkline(
            figures.paused_series, f"Tasks still paused, by when they were paused, {per}", _count
        ),
    }


@router.get("/")
def overview(request: Request, viewer: SignedIn) -> Response:
    figures = viewer.run(
        lambda conn: overview_service.read_overview(conn, viewer.tenant, viewer.now)
    )
    return render(
        request,
        "overview.html",
        viewer,
        figures=figures,
        charts=charts(figures),
        seconds=seconds,
        percent=percent,
        refresh_seconds=REFRESH_SECONDS,
    )
