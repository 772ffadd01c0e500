"""The dead letters: executions that exhausted their attempts, and sending them again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks

from taskhub.api.deps import Authed, JsonBody, RunAuthed
from taskhub.api.params import ExecutionWindow, TagsQuery, TaskIdQuery, execution_ref
from taskhub.api.routes.executions import page
from taskhub.api.schemas import Execution, ExecutionPage, RedriveFilter, Redriven, answers, body_doc
from taskhub.service import executions

router = APIRouter(tags=["dead letters"])


@router.get(
    "/v1/dead-letters",
    **answers(ExecutionPage, 404, summary="Executions that exhausted their attempts, newest first"),
)
def list_dead_letters(
    caller: Authed, window: ExecutionWindow, task_id: TaskIdQuery = None, tags: TagsQuery = None
) -> dict[str, Any]:
    return page(caller, executions.list_dead_letters, window, task_id=task_id, tags=tags)


@router.post(
    "/v1/dead-letters/redrive",
    openapi_extra=body_doc(RedriveFilter),
    **answers(
        Redriven,
        404,
        413,
        summary="Redrive every dead letter that matches a filter (or all, explicitly)",
    ),
)
def redrive_matching(
    caller: RunAuthed, body: JsonBody, background: BackgroundTasks
) -> dict[str, Any]:
    result = executions.redrive_matching(caller.context.engine, caller.tenant, body, caller.now)
    if result["redriven"]:
        background.add_task(caller.context.tick)
    return result


@router.post(
    "/v1/dead-letters/{execution_id}/redrive",
    **answers(
        Execution,
        404,
        409,
        summary="Send a dead letter again: same idempotency key, a fresh budget of attempts",
    ),
)
def redrive(caller: RunAuthed, execution_id: str, background: BackgroundTasks) -> dict[str, Any]:
    ref = execution_ref(execution_id)
    execution = caller.run(lambda conn: executions.redrive(conn, caller.tenant, ref, caller.now))
    background.add_task(caller.context.tick)
    return execution
