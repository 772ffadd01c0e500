"""The tasks: registered HTTP triggers, their schedules, and what they fire next."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Response

from taskhub.api.deps import Authed, BatchJsonBody, JsonBody, OptionalJsonBody, RunAuthed
from taskhub.api.params import Count, TaskQuery
from taskhub.api.schemas import (
    Backfilled,
    BackfillRequest,
    BatchRequest,
    BatchResult,
    Execution,
    PauseRequest,
    Preview,
    SchedulePreviewRequest,
    Skip,
    SkipRequest,
    Task,
    TaskCreate,
    TaskPage,
    TaskPatch,
    answers,
    body_doc,
)
from taskhub.core import limits
from taskhub.service import exclusions, task_batches, task_service, task_views

router = APIRouter(tags=["tasks"])


@router.post(
    "/v1/tasks",
    status_code=201,
    openapi_extra=body_doc(TaskCreate),
    **answers(Task, 409, 413, summary="Create a task"),
)
def create_task(caller: Authed, body: JsonBody, response: Response) -> dict[str, Any]:
    task = caller.run(
        lambda conn: task_service.add_task(conn, caller.tenant, body, caller.now, caller.settings)
    )
    response.headers["Location"] = f"/v1/tasks/{task['id']}"
    return task


@router.post(
    "/v1/tasks:batch",
    openapi_extra=body_doc(BatchRequest),
    **answers(
        BatchResult,
        413,
        summary="Create, update (by name) and delete many tasks in one transaction, "
        "with a result per item",
    ),
)
def batch_tasks(caller: Authed, body: BatchJsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_batches.run_batch(conn, caller.tenant, body, caller.now, caller.settings)
    )


@router.get("/v1/tasks", **answers(TaskPage, summary="List tasks, oldest first"))
def list_tasks(caller: Authed, query: TaskQuery) -> dict[str, Any]:
    filters = query.model_dump()
    return caller.run(
        lambda conn: task_views.list_tasks(conn, caller.tenant, caller.settings, **filters)
    )


@router.get("/v1/tasks/{task_id}", **answers(Task, 404, summary="One task"))
def get_task(caller: Authed, task_id: str) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_views.get_task(conn, caller.tenant, task_id, caller.settings)
    )


@router.patch(
    "/v1/tasks/{task_id}",
    openapi_extra=body_doc(TaskPatch),
    **answers(Task, 404, 409, 413, summary="Change fields of a task; the next run is recomputed"),
)
def update_task(caller: Authed, task_id: str, body: JsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.update_task(
            conn, caller.tenant, task_id, body, caller.now, caller.settings
        )
    )


@router.delete(
    "/v1/tasks/{task_id}", **answers(None, 404, summary="Delete a task, with its executions")
)
def delete_task(caller: Authed, task_id: str) -> None:
    caller.run(lambda conn: task_service.delete_task(conn, caller.tenant, task_id))


@router.post(
    "/v1/tasks/{task_id}/pause",
    openapi_extra=body_doc(PauseRequest, required=False),
    **answers(Task, 404, 409, summary="Pause a task, optionally saying why"),
)
def pause_task(caller: Authed, task_id: str, body: OptionalJsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.pause_task(
            conn, caller.tenant, task_id, caller.now, caller.settings, body
        )
    )


@router.post(
    "/v1/tasks/{task_id}/resume",
    **answers(
        Task, 404, 409, summary="Resume a task; occurrences that fell due while paused are skipped"
    ),
)
def resume_task(caller: Authed, task_id: str) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_service.resume_task(
            conn, caller.tenant, task_id, caller.now, caller.settings
        )
    )


@router.post(
    "/v1/tasks/{task_id}/run",
    status_code=202,
    **answers(Execution, 404, 409, summary="Fire now: an extra occurrence, sent at once"),
)
def run_task(caller: RunAuthed, task_id: str, background: BackgroundTasks) -> dict[str, Any]:
    execution = caller.run(
        lambda conn: task_service.run_task_now(conn, caller.tenant, task_id, caller.now)
    )
    background.add_task(caller.context.tick)
    return execution


@router.post(
    "/v1/tasks/{task_id}/backfill",
    status_code=202,
    openapi_extra=body_doc(BackfillRequest),
    **answers(
        Backfilled,
        404,
        413,
        summary="Fire every occurrence of a past range not yet executed, each once",
    ),
)
def backfill_task(
    caller: RunAuthed, task_id: str, body: JsonBody, background: BackgroundTasks
) -> dict[str, Any]:
    result = caller.run(
        lambda conn: task_service.backfill_task(
            conn, caller.tenant, task_id, body, caller.now, caller.settings
        )
    )
    if result["count"]:
        background.add_task(caller.context.tick)
    return result


@router.get(
    "/v1/tasks/{task_id}/preview",
    **answers(Preview, 404, summary="The task's next fire times, in UTC and in its time zone"),
)
def preview_task(
    caller: Authed, task_id: str, count: Count = limits.DEFAULT_PREVIEW
) -> dict[str, Any]:
    return caller.run(
        lambda conn: task_views.preview_task(conn, caller.tenant, task_id, caller.now, count)
    )


@router.post(
    "/v1/schedules/preview",
    openapi_extra=body_doc(SchedulePreviewRequest),
    **answers(
        Preview,
        413,
        summary="The next fire times of a schedule not saved (catch DST and cron mistakes)",
    ),
)
def preview_schedule(
    caller: Authed, body: JsonBody, count: Count = limits.DEFAULT_PREVIEW
) -> dict[str, Any]:
    # Reads nothing stored: no transaction.
    return task_views.preview_schedule(body, caller.now, count)


@router.post(
    "/v1/tasks/{task_id}/skip",
    openapi_extra=body_doc(SkipRequest),
    **answers(Skip, 404, summary="Skip one occurrence: it is not fired"),
)
def skip_occurrence(caller: Authed, task_id: str, body: JsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: exclusions.skip_occurrence(conn, caller.tenant, task_id, body, caller.now)
    )


@router.post(
    "/v1/tasks/{task_id}/unskip",
    openapi_extra=body_doc(SkipRequest),
    **answers(Skip, 404, summary="Undo the skip of one occurrence"),
)
def unskip_occurrence(caller: Authed, task_id: str, body: JsonBody) -> dict[str, Any]:
    return caller.run(
        lambda conn: exclusions.unskip_occurrence(conn, caller.tenant, task_id, body, caller.now)
    )
