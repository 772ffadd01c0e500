"""The tasks: the list (the API's filters, a search by name prefix, keyset pages), one
task's page (its definition with credentials masked, its next fire times, its executions)
and what an operator does to a task from there: pause, resume, run now, backfill, delete.

Each page is a few indexed reads in one transaction, through the service functions the
REST routes use: the list never counts its rows (a "Next page" link carries the cursor),
and a task's executions are a keyset page of the task's own index.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

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
from taskhub.core import definitions, limits
from taskhub.core.cron_words import describe_view
from taskhub.core.errors import ValidationError
from taskhub.core.statuses import LastStatus, TaskStatus
from taskhub.service import executions, quotas, task_service, task_views

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: Executions shown on a task's page at a time (the newest first).
EXECUTIONS_PER_PAGE: Final = 20
#: Fire times shown on a task's page.
FIRE_TIMES: Final = 10


def when(value: str | None) -> dict[str, str] | None:
    """An instant as the pages show it: its ISO form (for ``<time datetime>`` and the
    browser's own zone) and its text in UTC (what shows without JavaScript)."""
    if value is None:
        return None
    instant = datetime.fromisoformat(value)
    return {"iso": value, "text": _text(instant, "UTC")}


def _text(instant: datetime, zone: str) -> str:
    shape = "%Y-%m-%d %H:%M:%S" if instant.second or instant.microsecond else "%Y-%m-%d %H:%M"
    return f"{instant.strftime(shape)} {zone}"


def _row(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": task["id"],
        "name": task["name"],
        "status": task["status"],
        "schedule": describe_view(task["schedule"]),
        "next_run": when(task["next_execution_time"]),
        "last_run": when(task["last_execution_time"]),
        "last_status": task["last_status"],
    }


@router.get("/tasks")
def task_list(request: Request, viewer: SignedIn) -> Response:
    """The tenant's tasks, oldest first, filtered as the API's list is."""
    query = request.query_params
    tags = [tag for tag in query.getlist("tag") if tag]
    chosen = {
        "search": query.get("search", ""),
        "status": query.get("status", ""),
        "tag": tags[0] if tags else "",
        "last_status": query.get("last_status", ""),
    }
    filters: dict[str, Any] = {
        "name_prefix": chosen["search"] or None,
        "status": chosen["status"] or None,
        "tags": tags,
        "last_status": chosen["last_status"] or None,
    }
    cursor = query.get("cursor") or None
    errors: dict[str, str] = {}
    try:
        page = viewer.run(
            lambda conn: task_views.list_tasks(
                conn, viewer.tenant, viewer.settings, cursor=cursor, now=viewer.now, **filters
            )
        )
    except ValidationError as error:
        # Beside its field; a cursor not of this list (an edited address) above the list.
        if error.field in chosen:
            errors[error.field] = error.message
        else:
            errors["page"] = f"{error.field}: {error.message}"
        page = {"items": [], "next_cursor": None}
    # Every filter carried to the next page (each tag as its own parameter).
    kept = [(name, value) for name, value in chosen.items() if value and name != "tag"]
    kept += [("tag", tag) for tag in tags]
    next_page = None
    if page["next_cursor"]:
        next_page = urlencode([*kept, ("cursor", page["next_cursor"])])
    return render(
        request,
        "tasks.html",
        viewer,
        422 if errors else 200,
        rows=[_row(task) for task in page["items"]],
        chosen=chosen,
        more_tags=tags[1:],
        errors=errors,
        paged=cursor is not None,
        next_page=next_page,
        first_page_query=urlencode(kept),
        task_statuses=[status.value for status in TaskStatus],
        last_statuses=[status.value for status in LastStatus],
    )


def _fire_times(preview: dict[str, Any]) -> list[dict[str, Any]]:
    zone = preview["timezone"]
    return [
        {
            "iso": fire["utc"],
            "utc": _text(datetime.fromisoformat(fire["utc"]), "UTC"),
            "local": _text(datetime.fromisoformat(fire["local"]), zone),
            "skipped": fire.get("skipped", False),
            "reason": fire.get("reason"),
        }
        for fire in preview["fire_times"]
    ]


def _execution(execution: dict[str, Any]) -> dict[str, Any]:
    return {**execution, "scheduled": when(execution["scheduled_for"])}


@router.get("/tasks/{task_id:uuid}")
def task_page(request: Request, viewer: SignedIn, task_id: uuid.UUID) -> Response:
    """One task: what it is, when it fires next, what its executions did."""
    return _task_page(request, viewer, task_id)


def _task_page(
    request: Request,
    viewer: Viewer,
    task_id: uuid.UUID,
    status_code: int = 200,
    reason: str = "",
    reason_error: str = "",
    backfill: Backfill | None = None,
) -> Response:
    """The task's page; after a refused pause or backfill, with what was given and why it
    was refused."""
    cursor = request.query_params.get("cursor") or None

    def read(conn: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        task = task_views.get_task(conn, viewer.tenant, task_id, viewer.settings, viewer.now)
        preview = task_views.preview_task(conn, viewer.tenant, task_id, viewer.now, FIRE_TIMES)
        history = executions.list_executions(
            conn,
            viewer.tenant,
            task_id=str(task_id),
            cursor=cursor,
            limit=EXECUTIONS_PER_PAGE,
        )
        return task, preview, history

    task, preview, history = viewer.run(read)
    definition = {key: value for key, value in task.items() if key in _DEFINITION_FIELDS}
    return render(
        request,
        "task.html",
        viewer,
        status_code,
        task=task,
        schedule_words=describe_view(task["schedule"]),
        next_run=when(task["next_execution_time"]),
        last_run=when(task["last_execution_time"]),
        paused_at=when(task["paused_at"]),
        definition_json=json.dumps(definition, indent=2, ensure_ascii=False),
        timezone=preview["timezone"],
        fire_times=_fire_times(preview),
        executions=[_execution(execution) for execution in history["items"]],
        executions_paged=cursor is not None,
        next_cursor=history["next_cursor"],
        max_reason=limits.MAX_PAUSE_REASON_CHARS,
        reason=reason,
        reason_error=reason_error,
        backfill=backfill or Backfill(),
    )


@dataclass(frozen=True)
class Backfill:
    """The backfill form as sent, and the field a refusal named with its message."""

    start: str = ""
    end: str = ""
    field: str = ""
    error: str = ""


#: What a user sends to define a task (the rest of a task's view is its state).
_DEFINITION_FIELDS: Final = frozenset(definitions.TOP_LEVEL)


@router.post("/tasks/{task_id:uuid}/pause")
def pause(request: Request, viewer: Changing, form: Form, task_id: uuid.UUID) -> Response:
    """Pause, saying why if a reason was given (kept with the task, shown on its page)."""
    reason = first(form, "reason").strip()
    body = {"reason": reason} if reason else {}
    try:
        viewer.run(
            lambda conn: task_service.pause_task(
                conn, viewer.tenant, task_id, viewer.now, viewer.settings, body
            )
        )
    except ValidationError as error:
        return _task_page(request, viewer, task_id, error.http_status, reason, error.message)
    return redirect(f"/tasks/{task_id}", "paused")


@router.post("/tasks/{task_id:uuid}/resume")
def resume(viewer: Changing, task_id: uuid.UUID) -> Response:
    viewer.run(
        lambda conn: task_service.resume_task(
            conn, viewer.tenant, task_id, viewer.now, viewer.settings
        )
    )
    return redirect(f"/tasks/{task_id}", "resumed")


@router.post("/tasks/{task_id:uuid}/run")
def run_now(viewer: Changing, task_id: uuid.UUID, background: BackgroundTasks) -> Response:
    """An extra occurrence now, counted against the tenant's runs as the API's is; a
    tick is asked for at once, as the API asks for one."""
    viewer.run(
        lambda conn: quotas.count_call(
            conn, viewer.tenant, quotas.RUNS, viewer.now, viewer.settings
        )
    )
    viewer.run(lambda conn: task_service.run_task_now(conn, viewer.tenant, task_id, viewer.now))
    background.add_task(viewer.context.tick)
    return redirect(f"/tasks/{task_id}", "run")


@router.post("/tasks/{task_id:uuid}/backfill")
def backfill(
    request: Request,
    viewer: Changing,
    form: Form,
    task_id: uuid.UUID,
    background: BackgroundTasks,
) -> Response:
    """Fire the occurrences of a past range not yet executed, counted against the
    tenant's runs as the API's backfill is; a refusal shows the form again, naming the
    field."""
    sent = Backfill(first(form, "start").strip(), first(form, "end").strip())
    viewer.run(
        lambda conn: quotas.count_call(
            conn, viewer.tenant, quotas.RUNS, viewer.now, viewer.settings
        )
    )
    body = {"start": sent.start or None, "end": sent.end or None}
    try:
        result = viewer.run(
            lambda conn: task_service.backfill_task(
                conn, viewer.tenant, task_id, body, viewer.now, viewer.settings
            )
        )
    except ValidationError as error:
        refused = dataclasses.replace(sent, field=error.field, error=error.message)
        return _task_page(request, viewer, task_id, error.http_status, backfill=refused)
    if not result["count"]:
        return redirect(f"/tasks/{task_id}", "backfilled-none")
    background.add_task(viewer.context.tick)
    return redirect(f"/tasks/{task_id}", "backfilled")


@router.get("/tasks/{task_id:uuid}/delete")
def delete_page(request: Request, viewer: SignedIn, task_id: uuid.UUID) -> Response:
    """The confirmation a delete asks for: it takes the task's executions with it."""
    task = viewer.run(
        lambda conn: task_views.get_task(conn, viewer.tenant, task_id, viewer.settings, viewer.now)
    )
    return render(request, "task_delete.html", viewer, task=task)


@router.post("/tasks/{task_id:uuid}/delete")
def delete(viewer: Changing, task_id: uuid.UUID) -> Response:
    viewer.run(lambda conn: task_service.delete_task(conn, viewer.tenant, task_id, viewer.now))
    return redirect("/tasks", "deleted")
