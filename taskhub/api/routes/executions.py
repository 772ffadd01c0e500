"""The executions: the record of every fired occurrence, a task's or all the tenant's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from taskhub.api.deps import Authed
from taskhub.api.params import ExecutionStatusQuery, ExecutionWindow, TaskIdQuery, execution_ref
from taskhub.api.schemas import Execution, ExecutionPage, error_responses
from taskhub.service import executions

router = APIRouter(tags=["executions"])


@router.get(
    "/v1/tasks/{task_id}/executions",
    response_model=ExecutionPage,
    responses=error_responses(404),
    summary="A task's executions, newest first",
)
def list_task_executions(
    caller: Authed, window: ExecutionWindow, task_id: str, status: ExecutionStatusQuery = None
) -> dict[str, Any]:
    # The tenant-wide listing filtered by the path's task: one listing, two addresses.
    return list_all_executions(caller, window, task_id=task_id, status=status)


@router.get(
    "/v1/executions",
    response_model=ExecutionPage,
    responses=error_responses(404),
    summary="Executions of all the tenant's tasks, newest first",
)
def list_all_executions(
    caller: Authed,
    window: ExecutionWindow,
    task_id: TaskIdQuery = None,
    status: ExecutionStatusQuery = None,
) -> dict[str, Any]:
    return caller.run(
        lambda conn: executions.list_executions(
            conn, caller.tenant, task_id=task_id, status=status, **window.filters()
        )
    )


@router.get(
    "/v1/executions/{execution_id}",
    response_model=Execution,
    responses=error_responses(404),
    summary="One execution",
)
def get_execution(caller: Authed, execution_id: str) -> dict[str, Any]:
    ref = execution_ref(execution_id)
    return caller.run(lambda conn: executions.get_execution(conn, caller.tenant, ref))
