"""The executions: the record of every fired occurrence, a task's or all the tenant's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from taskhub.api.deps import Authed, Caller
from taskhub.api.params import (
    ExecutionStatusQuery,
    ExecutionWindow,
    TaskIdQuery,
    Window,
    execution_ref,
)
from taskhub.api.schemas import Execution, ExecutionPage, answers
from taskhub.service import executions

router = APIRouter(tags=["executions"])

#: A service function that lists the tenant's executions, newest first, a page at a time.
Listing = Callable[..., dict[str, Any]]


def page(caller: Caller, listing: Listing, window: Window, **filters: Any) -> dict[str, Any]:
    """One page of ``listing`` in ``window``: the lists of executions (dead letters too)
    differ only in their filters."""
    return caller.run(lambda conn: listing(conn, caller.tenant, **filters, **window.model_dump()))


@router.get(
    "/v1/tasks/{task_id}/executions",
    **answers(ExecutionPage, 404, summary="A task's executions, newest first"),
)
def list_task_executions(
    caller: Authed, window: ExecutionWindow, task_id: str, status: ExecutionStatusQuery = None
) -> dict[str, Any]:
    # The tenant-wide listing filtered by the path's task: one listing, two addresses.
    return list_all_executions(caller, window, task_id=task_id, status=status)


@router.get(
    "/v1/executions",
    **answers(ExecutionPage, 404, summary="Executions of all the tenant's tasks, newest first"),
)
def list_all_executions(
    caller: Authed,
    window: ExecutionWindow,
    task_id: TaskIdQuery = None,
    status: ExecutionStatusQuery = None,
) -> dict[str, Any]:
    return page(caller, executions.list_executions, window, task_id=task_id, status=status)


@router.get("/v1/executions/{execution_id}", **answers(Execution, 404, summary="One execution"))
def get_execution(caller: Authed, execution_id: str) -> dict[str, Any]:
    ref = execution_ref(execution_id)
    return caller.run(lambda conn: executions.get_execution(conn, caller.tenant, ref))
