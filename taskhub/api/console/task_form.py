"""Creating and editing a task in the browser, and the schedule's live preview.

The form's values become the JSON definition the API takes (:mod:`task_fields`) and go
through the same service functions as ``POST /v1/tasks`` and ``PATCH /v1/tasks/{id}``,
so the form refuses exactly what the API refuses. A refusal re-renders the form as
typed, its message beside the field it names; nothing is stored (the service's
transaction is rolled back).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taskhub.api.console import task_fields
from taskhub.api.console.web import (
    PREFIX,
    Changing,
    Form,
    SignedIn,
    Viewer,
    first,
    redirect,
    render,
)
from taskhub.core.definitions import TOP_LEVEL
from taskhub.core.errors import Conflict, QuotaExceeded, TaskhubError, ValidationError
from taskhub.service import task_service, task_views

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: Where the form posts its fields for the live preview.
PREVIEW_PATH = "/schedules/preview"
#: The refusals a form shows beside a field (or above the form) and lets one correct.
_CORRECTABLE = (ValidationError, Conflict, QuotaExceeded)


def _values(form: Mapping[str, list[str]]) -> dict[str, str]:
    return {name: first(form, name) for name in task_fields.INPUTS}


#: The input holding what the schedule's kind needs typed before there is anything to show.
_FIRST_INPUT = {"cron": "cron", "interval": "interval_seconds", "once": "at"}


def _preview(values: Mapping[str, str], viewer: Viewer, anchor: str = "") -> dict[str, Any]:
    """What the preview region shows: the next fire times, or the refusal naming its
    field (as the form's label says it). ``anchor``: a saved task's creation time, which
    its interval counts from when it has no ``start_at`` (as the saved task does)."""
    needed = _FIRST_INPUT.get(values.get("schedule", ""))
    if needed is not None and not values.get(needed, "").strip():
        return {"error": None, "empty": True}
    try:
        data = {"schedule": task_fields.schedule_of(values), **task_fields.window_of(values)}
        if anchor and "interval_seconds" in data["schedule"] and data["start_at"] is None:
            data["start_at"] = anchor
        preview = task_views.preview_schedule(data, viewer.now)
    except ValidationError as error:
        return {"error": error.message, "error_input": task_fields.input_for(error.field)}
    return {"error": None, "empty": False, **preview, "fire_times": _shown(preview)}


def _shown(preview: Mapping[str, Any]) -> list[dict[str, str]]:
    """Each fire time as the page shows it: in the schedule's zone, and in UTC."""
    times = []
    for time in preview["fire_times"]:
        utc, local = datetime.fromisoformat(time["utc"]), datetime.fromisoformat(time["local"])
        times.append(
            {
                "utc": time["utc"],
                "local": local.strftime(_SHOWN),
                "in_utc": utc.strftime(_SHOWN) if local.utcoffset() else "",
            }
        )
    return times


#: How the preview writes a time: the weekday catches a cron's day-of-week mistakes.
_SHOWN = "%a %Y-%m-%d %H:%M:%S"


def _form_page(
    request: Request,
    viewer: Viewer,
    values: Mapping[str, str],
    *,
    task: Mapping[str, Any] | None = None,
    error: TaskhubError | None = None,
) -> Response:
    errors: dict[str, str] = {}
    general = None
    if error is not None:
        where = task_fields.input_for(error.field)
        if where is None:
            general = f"{error.field}: {error.message}" if error.field else error.message
        else:
            errors[where] = error.message
    return render(
        request,
        "task_form.html",
        viewer,
        200 if error is None else error.http_status,
        task=task,
        values={**{name: "" for name in task_fields.INPUTS}, **values},
        errors=errors,
        general_error=general,
        preview=_preview(values, viewer, task["created_at"] if task else ""),
        preview_url=f"{PREFIX}{PREVIEW_PATH}",
        title=f"Edit {task['name']}" if task else "New task",
        labels=task_fields.LABELS,
        kinds=task_fields.SCHEDULE_KINDS,
        target_kinds=task_fields.TARGET_KINDS,
        brokers=", ".join(viewer.settings.celery_brokers.keys()),
        methods=[(m, m) for m in task_fields.METHODS],
        misfire_policies=[(p, p) for p in task_fields.MISFIRE_POLICIES],
        overlap_policies=[(p, p) for p in task_fields.OVERLAP_POLICIES],
    )


@router.get("/tasks/new")
def new_task(request: Request, viewer: SignedIn) -> Response:
    return _form_page(request, viewer, task_fields.NEW_TASK)


@router.post("/tasks/new")
def create_task(request: Request, viewer: Changing, form: Form) -> Response:
    values = _values(form)
    try:
        definition = task_fields.definition_of(values)
        task = viewer.run(
            lambda conn: task_service.add_task(
                conn, viewer.tenant, definition, viewer.now, viewer.settings
            )
        )
    except _CORRECTABLE as error:
        return _form_page(request, viewer, values, error=error)
    return redirect(f"/tasks/{task['id']}", "created")


def _task(viewer: Viewer, task_id: str) -> dict[str, Any]:
    return viewer.run(
        lambda conn: task_views.get_task(conn, viewer.tenant, task_id, viewer.settings, viewer.now)
    )


@router.get("/tasks/{task_id}/edit")
def edit_task(request: Request, viewer: SignedIn, task_id: str) -> Response:
    task = _task(viewer, task_id)
    return _form_page(request, viewer, task_fields.values_of(task), task=task)


@router.post("/tasks/{task_id}/edit")
def save_task(request: Request, viewer: Changing, form: Form, task_id: str) -> Response:
    task = _task(viewer, task_id)
    values = _values(form)
    current = {key: task[key] for key in TOP_LEVEL}
    try:
        patch = task_fields.changes(current, task_fields.definition_of(values))
        if patch:
            viewer.run(
                lambda conn: task_service.update_task(
                    conn, viewer.tenant, task["id"], patch, viewer.now, viewer.settings
                )
            )
    except _CORRECTABLE as error:
        return _form_page(request, viewer, values, task=task, error=error)
    return redirect(f"/tasks/{task['id']}", "saved")


@router.post(PREVIEW_PATH)
def preview_schedule(request: Request, viewer: Changing, form: Form) -> Response:
    """The preview region's new content (a fragment, 200 even for a refusal: the page
    shows it in place of the fire times)."""
    return render(
        request,
        "schedule_preview.html",
        viewer,
        preview=_preview(_values(form), viewer, first(form, "created_at")),
        labels=task_fields.LABELS,
    )
