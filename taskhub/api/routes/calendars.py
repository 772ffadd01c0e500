"""Exclusion calendars: dates on which the tasks that name them do not fire."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from taskhub.api.deps import Authed, JsonBody
from taskhub.api.schemas import (
    Calendar,
    CalendarCreate,
    CalendarPage,
    CalendarPatch,
    answers,
    body_doc,
)
from taskhub.service import exclusions

router = APIRouter(tags=["calendars"])


@router.post(
    "/v1/calendars",
    status_code=201,
    openapi_extra=body_doc(CalendarCreate),
    **answers(Calendar, 409, 413, summary="Create an exclusion calendar"),
)
def create_calendar(caller: Authed, body: JsonBody, response: Response) -> dict[str, Any]:
    calendar = caller.run(
        lambda conn: exclusions.create_calendar(conn, caller.tenant, body, caller.now)
    )
    response.headers["Location"] = f"/v1/calendars/{calendar['name']}"
    return calendar


@router.get("/v1/calendars", **answers(CalendarPage, summary="The tenant's calendars, by name"))
def list_calendars(caller: Authed) -> dict[str, Any]:
    return caller.run(lambda conn: exclusions.list_calendars(conn, caller.tenant))


@router.get("/v1/calendars/{name}", **answers(Calendar, 404, summary="One calendar"))
def get_calendar(caller: Authed, name: str) -> dict[str, Any]:
    return caller.run(lambda conn: exclusions.get_calendar(conn, caller.tenant, name))


@router.patch(
    "/v1/calendars/{name}",
    openapi_extra=body_doc(CalendarPatch),
    **answers(
        Calendar,
        404,
        413,
        summary="Change a calendar's time zone or dates; its tasks' next runs are recomputed",
    ),
)
def update_calendar(caller: Authed, name: str, body: JsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: exclusions.update_calendar(conn, caller.tenant, name, body, caller.now)
    )


@router.delete(
    "/v1/calendars/{name}",
    **answers(None, 404, 409, summary="Delete a calendar (refused while a task names it)"),
)
def delete_calendar(caller: Authed, name: str) -> None:
    caller.run(lambda conn: exclusions.delete_calendar(conn, caller.tenant, name))
