"""What the routes read from the query and the path, documented here and checked by
the service (or, for execution ids, here).

The three lists of executions (a task's, the tenant's, its dead letters) share a due-time
window and a page: :data:`ExecutionWindow` reads those four parameters for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import WithJsonSchema

from taskhub.core import paging
from taskhub.core.errors import NotFound
from taskhub.core.statuses import ExecutionStatus, LastStatus, TaskStatus
from taskhub.service import task_views

#: The largest execution id either database can hold (a signed 64-bit integer).
MAX_EXECUTION_ID = 2**63 - 1


# Query parameters are documented by exactly these schemas (never null, only absent) and
# checked by the service functions, so their errors read as the CLI's.
_STRING: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}

Cursor = Annotated[
    str | None,
    Query(description="The `next_cursor` of the previous page."),
    WithJsonSchema(_STRING),
]
Limit = Annotated[
    int | None,
    Query(description=f"Page size (default {paging.DEFAULT_LIMIT})."),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": paging.MAX_LIMIT}),
]
Count = Annotated[
    int,
    Query(description="How many fire times."),
    WithJsonSchema(
        {"type": "integer", "minimum": 1, "maximum": task_views.MAX_PREVIEW, "default": 10}
    ),
]
Since = Annotated[
    str | None,
    Query(description="Only occurrences due at or after this time."),
    WithJsonSchema(_TIME),
]
Until = Annotated[
    str | None, Query(description="Only occurrences due before this time."), WithJsonSchema(_TIME)
]
TaskStatusQuery = Annotated[
    str | None, Query(), WithJsonSchema({"type": "string", "enum": [s.value for s in TaskStatus]})
]
LastStatusQuery = Annotated[
    str | None, Query(), WithJsonSchema({"type": "string", "enum": [s.value for s in LastStatus]})
]
ExecutionStatusQuery = Annotated[
    str | None,
    Query(),
    WithJsonSchema({"type": "string", "enum": [s.value for s in ExecutionStatus]}),
]
TaskIdQuery = Annotated[
    str | None, Query(description="Only this task's (404 if it is none)."), WithJsonSchema(_STRING)
]
TagQuery = Annotated[
    list[str] | None,
    Query(description="`key:value`; repeat to require several tags."),
    WithJsonSchema({"type": "array", "items": {"type": "string", "pattern": "^[^:]+:"}}),
]
NameQuery = Annotated[str | None, Query(description="Exactly this name."), WithJsonSchema(_STRING)]
NamePrefixQuery = Annotated[
    str | None, Query(description="Names that start so."), WithJsonSchema(_STRING)
]
NextBeforeQuery = Annotated[
    str | None,
    Query(description="Next execution strictly before this time."),
    WithJsonSchema(_TIME),
]
NextAfterQuery = Annotated[
    str | None, Query(description="Next execution strictly after this time."), WithJsonSchema(_TIME)
]


@dataclass(frozen=True)
class Window:
    """Executions due in ``[since, until)``, one page of them."""

    since: str | None
    until: str | None
    cursor: str | None
    limit: int | None

    def filters(self) -> dict[str, Any]:
        """As the service's list functions take them."""
        return {
            "since": self.since,
            "until": self.until,
            "cursor": self.cursor,
            "limit": self.limit,
        }


def window_of(
    since: Since = None, until: Until = None, cursor: Cursor = None, limit: Limit = None
) -> Window:
    return Window(since, until, cursor, limit)


ExecutionWindow = Annotated[Window, Depends(window_of)]


def execution_ref(value: str) -> str:
    """An id that cannot be an execution is simply not found (never a database error)."""
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_EXECUTION_ID:
        raise NotFound("no such execution")
    return value
