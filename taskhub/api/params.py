"""What the routes read from the query and the path, documented here and checked by
the service (or, for execution ids, here).

The three lists of executions (a task's, the tenant's, its dead letters) share a due-time
window and a page: :data:`ExecutionWindow` reads those four parameters for all of them.
The list of tasks reads all its parameters into one :class:`TaskFilters`
(:data:`TaskQuery`), handed whole to the service.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel, WithJsonSchema

from taskhub.core import limits, paging
from taskhub.core.errors import NotFound
from taskhub.core.statuses import ExecutionStatus, LastStatus, TaskStatus

#: The largest execution id either database can hold (a signed 64-bit integer).
MAX_EXECUTION_ID = 2**63 - 1


# Query parameters are documented by exactly these schemas (never null, only absent) and
# checked by the service functions, so their errors read as the CLI's.
_STRING: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}

OptionalString = Annotated[str | None, WithJsonSchema(_STRING)]
OptionalTime = Annotated[str | None, WithJsonSchema(_TIME)]


def _one_of(values: type[StrEnum]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": [value.value for value in values]})


Cursor = Annotated[OptionalString, Query(description="The `next_cursor` of the previous page.")]
Limit = Annotated[
    int | None,
    Query(description=f"Page size (default {paging.DEFAULT_LIMIT})."),
    WithJsonSchema({"type": "integer", "minimum": paging.MIN_LIMIT, "maximum": paging.MAX_LIMIT}),
]
Count = Annotated[
    int,
    Query(description="How many fire times."),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": limits.MIN_PREVIEW,
            "maximum": limits.MAX_PREVIEW,
            "default": limits.DEFAULT_PREVIEW,
        }
    ),
]
Since = Annotated[OptionalTime, Query(description="Only occurrences due at or after this time.")]
Until = Annotated[OptionalTime, Query(description="Only occurrences due before this time.")]
TaskStatusQuery = Annotated[str | None, Query(), _one_of(TaskStatus)]
LastStatusQuery = Annotated[str | None, Query(), _one_of(LastStatus)]
ExecutionStatusQuery = Annotated[str | None, Query(), _one_of(ExecutionStatus)]
TaskIdQuery = Annotated[OptionalString, Query(description="Only this task's (404 if it is none).")]
#: Named ``tags`` in code, as the service names them; ``tag`` in the query, once per tag.
TagsQuery = Annotated[
    list[str] | None,
    Query(alias="tag", description="`key:value`; repeat to require several tags."),
    WithJsonSchema({"type": "array", "items": {"type": "string", "pattern": "^[^:]+:"}}),
]
NameQuery = Annotated[OptionalString, Query(description="Exactly this name.")]
NamePrefixQuery = Annotated[OptionalString, Query(description="Names that start so.")]
NextBeforeQuery = Annotated[
    OptionalTime, Query(description="Next execution strictly before this time.")
]
NextAfterQuery = Annotated[
    OptionalTime, Query(description="Next execution strictly after this time.")
]


class TaskFilters(BaseModel):
    """The query of the list of tasks: its filters and its page, named as
    :func:`taskhub.service.task_views.list_tasks` takes them."""

    status: TaskStatusQuery = None
    tags: TagsQuery = None
    name: NameQuery = None
    name_prefix: NamePrefixQuery = None
    last_status: LastStatusQuery = None
    next_before: NextBeforeQuery = None
    next_after: NextAfterQuery = None
    cursor: Cursor = None
    limit: Limit = None


#: The list of tasks' query parameters, read together into :class:`TaskFilters`.
TaskQuery = Annotated[TaskFilters, Query()]


class Window(BaseModel):
    """Executions due in ``[since, until)``, one page of them, named as the service's list
    functions take them."""

    since: Since = None
    until: Until = None
    cursor: Cursor = None
    limit: Limit = None


def window_of(window: Annotated[Window, Query()]) -> Window:
    """A dependency of its own, so that the window's parameters follow each route's own
    in the OpenAPI document."""
    return window


ExecutionWindow = Annotated[Window, Depends(window_of)]


def execution_ref(value: str) -> str:
    """An id that cannot be an execution is simply not found (never a database error)."""
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_EXECUTION_ID:
        raise NotFound("no such execution")
    return value
