"""Dead letters: the tenant's executions that exhausted their attempts, filtered as the
API filters them, with their last error; redriven one at a time or all that match a
filter, after a page that says how many that is.

A redrive is counted against the tenant's runs per minute and asks for a tick, exactly
as the API's redrive does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
from taskhub.api.params import execution_ref
from taskhub.core.errors import NotFound, TaskhubError, ValidationError
from taskhub.service import dead_letters, executions, quotas
from taskhub.service.dead_letters import DeadLetterFilter

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: The filter fields as the page's form names them: the API's query parameters.
FIELDS = ("task_id", "tag", "since", "until")


def _filter_of(values: Mapping[str, Sequence[str]]) -> DeadLetterFilter:
    """The filter a query string or a posted form carries (blank fields: no filter)."""

    def one(name: str) -> str:
        given = values.get(name) or [""]
        return given[0].strip()

    tags = tuple(tag.strip() for tag in values.get("tag", []) if tag.strip())
    return DeadLetterFilter(one("task_id"), tags, one("since"), one("until"))


def _query_of(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        found.setdefault(name, []).append(value)
    return found


def _field_of(error: TaskhubError, where: DeadLetterFilter) -> str:
    """The page's field a refused filter names ('' for none): the API's field names it,
    and a task that is not the tenant's is the task field's."""
    field = error.field or ""
    if field.startswith("tag"):
        return "tag"
    if field in ("since", "until", "task_id"):
        return field
    if isinstance(error, NotFound) and where.task_id:
        return "task_id"
    return ""


def _filter_query(where: DeadLetterFilter) -> list[tuple[str, str]]:
    """The filter as query parameters (for links that keep it)."""
    pairs = [("task_id", where.task_id)] + [("tag", tag) for tag in where.tags]
    pairs += [("since", where.since), ("until", where.until)]
    return [(name, value) for name, value in pairs if value]


def _count_run(viewer: Viewer) -> None:
    """A redrive counts against the tenant's runs per minute, as the API's does."""
    viewer.run(
        lambda conn: quotas.count_call(
            conn, viewer.tenant, quotas.RUNS, viewer.now, viewer.settings
        )
    )


def _list_page(
    request: Request,
    viewer: Viewer,
    where: DeadLetterFilter,
    cursor: str | None = None,
    refused: TaskhubError | None = None,
) -> Response:
    """The list (a page of it), or the filter form with the refusal beside its field."""
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    if refused is None:
        try:
            page = viewer.run(
                lambda conn: dead_letters.list_page(conn, viewer.tenant, where, cursor)
            )
        except TaskhubError as error:
            refused = error
    return render(
        request,
        "dead_letters.html",
        viewer,
        200 if refused is None else refused.http_status,
        where=where,
        page=page,
        filter_query=_filter_query(where),
        error=refused.message if refused else "",
        error_field=_field_of(refused, where) if refused else "",
    )


@router.get("/dead-letters")
def dead_letter_list(request: Request, viewer: SignedIn) -> Response:
    query = _query_of(request)
    return _list_page(request, viewer, _filter_of(query), first(query, "cursor") or None)


@router.get("/dead-letters/redrive")
def confirm_redrive_matching(request: Request, viewer: SignedIn) -> Response:
    where = _filter_of(_query_of(request))
    try:
        count = viewer.run(lambda conn: dead_letters.count_matching(conn, viewer.tenant, where))
    except (ValidationError, NotFound) as refused:
        return _list_page(request, viewer, where, refused=refused)
    return render(
        request,
        "dead_letters_redrive.html",
        viewer,
        where=where,
        count=count,
        filter_query=_filter_query(where),
    )


@router.post("/dead-letters/redrive")
def redrive_matching(
    request: Request, viewer: Changing, form: Form, background: BackgroundTasks
) -> Response:
    """The filter is checked before anything changes; refused, the list's filter form
    says why, beside the field."""
    where = _filter_of(form)
    _count_run(viewer)
    try:
        body = where.redrive_body()
        result = executions.redrive_matching(viewer.context.engine, viewer.tenant, body, viewer.now)
    except (ValidationError, NotFound) as refused:
        return _list_page(request, viewer, where, refused=refused)
    if result["redriven"]:
        background.add_task(viewer.context.tick)
    return redirect("/dead-letters", "redriven-all")


@router.post("/dead-letters/{execution_id}/redrive")
def redrive(execution_id: str, viewer: Changing, background: BackgroundTasks) -> Response:
    ref = execution_ref(execution_id)
    _count_run(viewer)
    viewer.run(lambda conn: executions.redrive(conn, viewer.tenant, ref, viewer.now))
    background.add_task(viewer.context.tick)
    return redirect("/dead-letters", "redriven")
