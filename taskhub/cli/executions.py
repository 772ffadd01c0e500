"""``taskhub executions`` and ``taskhub dlq``: executions, and the dead letters among
them, listed and sent again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from taskhub.cli.common import (
    call,
    call_on_engine,
    json_option,
    print_json,
    request_tick,
    service_error,
    show_page,
    show_queued,
    tenant_option,
)
from taskhub.core.clock import utcnow
from taskhub.core.errors import TaskhubError
from taskhub.service import executions, task_views

EXECUTION_COLUMNS = [
    "id",
    "task_id",
    "scheduled_for",
    "status",
    "attempts",
    "http_status",
    "error",
    "callback",
]
DEAD_LETTER_COLUMNS = ["id", "task_id", "scheduled_for", "attempts", "http_status", "error"]

F = TypeVar("F", bound=Callable[..., Any])

_since = click.option("--since", help="Scheduled at or after (ISO 8601 with offset).")
_until = click.option("--until", help="Scheduled before (ISO 8601 with offset).")


def _page_options(command: F) -> F:
    """``--since``, ``--until``, ``--limit``, ``--cursor``, ``--tenant`` and ``--json``, in
    this order: the options both listings end with."""
    limit = click.option("--limit", type=int)
    cursor = click.option("--cursor")
    for option in reversed((_since, _until, limit, cursor, tenant_option, json_option)):
        command = option(command)
    return command


@click.command("executions")
@click.option("--task", "task_id", help="Only this task's.")
@click.option("--status", type=click.Choice(sorted(executions.STATUSES)))
@_page_options
def executions_list(tenant: str, as_json: bool, **filters: Any) -> None:
    """Executions, newest first; the callback column: the task's callback of the
    execution's ending, its status, attempts and last HTTP status or error."""
    page = call(executions.list_executions, tenant, **filters)
    if not as_json:
        page["items"] = [{**item, "callback": callback_cell(item)} for item in page["items"]]
    show_page(page, EXECUTION_COLUMNS, as_json)


def callback_cell(execution: dict[str, Any]) -> str:
    """``delivered (1 attempt, HTTP 200)``, ``failed (3 attempts, HTTP 404)``, or ``-``
    for an execution without a callback."""
    callback = execution.get("callback")
    if not callback:
        return "-"
    count = callback["attempts"]
    last = (
        f"HTTP {callback['http_status']}"
        if callback["http_status"] is not None
        else callback["error"] or "not sent yet"
    )
    return f"{callback['status']} ({count} attempt{'' if count == 1 else 's'}, {last})"


@click.group("dlq")
def dlq_group() -> None:
    """Dead letters: executions that exhausted their attempts."""


@dlq_group.command("list")
@click.option("--task", "task_id", help="Only this task's.")
@click.option("--tag", "tags", multiple=True, help="key:value of the task; repeatable.")
@_page_options
def dlq_list(tenant: str, as_json: bool, tags: tuple[str, ...], **filters: Any) -> None:
    """Dead letters, newest first, with their last HTTP status and error."""
    page = call(executions.list_dead_letters, tenant, tags=list(tags), **filters)
    show_page(page, DEAD_LETTER_COLUMNS, as_json)


@dlq_group.command("redrive")
@click.argument("execution_id", required=False)
@click.option("--task", "task_id", help="Every dead letter of this task.")
@click.option("--tag", "tags", multiple=True, help="key:value of the task; repeatable.")
@_since
@_until
@click.option("--all", "everything", is_flag=True, help="Every dead letter of the tenant.")
@tenant_option
@json_option
def dlq_redrive(
    execution_id: str | None,
    task_id: str | None,
    tags: tuple[str, ...],
    since: str | None,
    until: str | None,
    everything: bool,
    tenant: str,
    as_json: bool,
) -> None:
    """Send a dead letter (ID), or every one matching the filters (or --all), again: same
    idempotency key, a fresh budget of attempts."""
    bulk = bool(task_id or tags or since or until or everything)
    if (execution_id is None) == (not bulk):
        raise click.UsageError(
            "give an execution ID, or filters (--task/--tag/--since/--until) or --all"
        )
    if execution_id is not None:
        show_queued(call(executions.redrive, tenant, execution_id, utcnow()), as_json)
        return
    data: dict[str, Any] = {"all": True} if everything else {}
    if task_id is not None:
        data["task_id"] = task_id
    if tags:
        data["tags"] = dict(_tag_pairs(tags))
    if since is not None:
        data["since"] = since
    if until is not None:
        data["until"] = until
    result = call_on_engine(executions.redrive_matching, tenant, data, utcnow())
    if result["redriven"]:
        request_tick()
    print_json(result) if as_json else click.echo(f"{result['redriven']} dead letters redriven")


def _tag_pairs(tags: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    try:
        return task_views.tag_filters(list(tags))
    except TaskhubError as error:
        raise service_error(error) from None
