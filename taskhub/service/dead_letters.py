"""Dead letters as the console shows them: the API's list with each one's task name, and
a filter given as a form gives it (task, ``key:value`` tags, since, until) turned into a
bulk redrive's filter, with how many dead letters it matches.

Reading and redriving are :mod:`taskhub.service.executions`' own functions; this module
only adds what a page needs around them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from taskhub.core.errors import ValidationError
from taskhub.core.statuses import ExecutionStatus
from taskhub.db import console_queries, execution_queries
from taskhub.service import executions
from taskhub.service.task_views import tag_filters


@dataclass(frozen=True)
class DeadLetterFilter:
    """What a page filters dead letters by; an empty text is no filter."""

    task_id: str = ""
    tags: tuple[str, ...] = ()
    since: str = ""
    until: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.task_id or self.tags or self.since or self.until)

    def list_filters(self) -> dict[str, Any]:
        """As :func:`executions.list_dead_letters` takes them."""
        return {
            "task_id": self.task_id or None,
            "tags": list(self.tags) or None,
            "since": self.since or None,
            "until": self.until or None,
        }

    def redrive_body(self) -> dict[str, Any]:
        """As :func:`executions.redrive_matching` takes it (the API's body): with no
        filter at all, explicitly every dead letter (``{"all": true}``). A tag key given
        twice with two values matches nothing in the list, so it is refused here rather
        than redriving what the list did not show."""
        if self.is_empty:
            return {"all": True}
        tags: dict[str, str] = {}
        for key, value in tag_filters(list(self.tags)):
            if tags.get(key, value) != value:
                raise ValidationError("tag", f"the tag {key[:40]!r} is given twice")
            tags[key] = value
        body: dict[str, Any] = {"tags": tags} if tags else {}
        for name in ("task_id", "since", "until"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        return body


def list_page(
    conn: Connection,
    tenant: str,
    where: DeadLetterFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """A page of the tenant's dead letters, newest first, each with ``task_name``."""
    page = executions.list_dead_letters(
        conn, tenant, cursor=cursor, limit=limit, **where.list_filters()
    )
    ids = list({uuid.UUID(item["task_id"]) for item in page["items"]})
    names = console_queries.task_names(conn, tenant, ids)
    for item in page["items"]:
        item["task_name"] = names.get(uuid.UUID(item["task_id"]), "")
    return page


def count_matching(conn: Connection, tenant: str, where: DeadLetterFilter) -> int:
    """How many of the tenant's dead letters a redrive of ``where`` would take now (its
    filter checked as the redrive checks it: a bad one is refused before the count)."""
    filters = executions.parse_redrive_filter(conn, tenant, where.redrive_body())
    dead = execution_queries.ExecutionFilters(
        task_id=filters.task_id,
        status=ExecutionStatus.DEAD.value,
        since=filters.since,
        until=filters.until,
        tags=filters.tags,
    )
    return execution_queries.count_executions(conn, tenant, dead)
