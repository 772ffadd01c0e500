"""``taskhub apply -f tasks.yaml``: make a tenant's tasks match a file, by name, through
the API's batch endpoint (``POST /v1/tasks:batch``).

Unlike the other commands, which work on the database directly, apply is a client of
the API (``--api``, and a key of the tenant): a file of tasks is what a team keeps in a
repository and applies from CI, where an API key is what it holds, not the database.
The plan is the batch itself sent as a dry run (so it is exactly what the API would do:
the same validation, quotas and upserts), printed as a table; then, unless
``--dry-run`` or an item is refused, the same batch is sent for real, atomic: all of it
changes, or none of it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import httpx
import yaml

from taskhub.cli.common import print_json, table
from taskhub.client import API_KEY_ENV, API_URL_ENV, ApiError, BatchResult, Client
from taskhub.core import limits

#: The exit code when the file or an item of it is refused: bad input, as elsewhere.
REFUSED_EXIT = 2
#: A batch's status for an item, as the plan names the action.
_ACTIONS = {
    "created": "create",
    "updated": "update",
    "unchanged": "unchanged",
    "deleted": "delete",
    "error": "refused",
}
_DONE = {"create": "created", "update": "updated", "delete": "deleted", "unchanged": "unchanged"}
_PLANNED = {
    "create": "to create",
    "update": "to update",
    "delete": "to delete",
    "unchanged": "unchanged",
}


def _plain(value: Any) -> Any:
    """YAML reads an unquoted time as a datetime: the API takes ISO 8601 text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_tasks(path: str) -> list[dict[str, Any]]:
    """The task definitions of a YAML or JSON file: a list of them, or a mapping whose
    ``tasks`` is that list. Each must at least have a ``name`` (the API reads the rest)."""
    try:
        text = click.open_file(path, "r", encoding="utf-8").read()
    except OSError as error:
        raise click.BadParameter(str(error), param_hint="-f") from None
    try:
        data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise click.BadParameter(f"not valid YAML or JSON: {error}", param_hint="-f") from None
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k != "tasks")
        if unknown:
            raise click.BadParameter(f"unknown key {unknown[0]!r}: give `tasks:`", param_hint="-f")
        data = data.get("tasks")
    if data is None:
        data = []
    if not isinstance(data, list):
        raise click.BadParameter("give a list of tasks, or `tasks:` and a list", param_hint="-f")
    tasks = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise click.BadParameter(
                f"task {i} has no name: tasks are matched by name", param_hint="-f"
            )
        if name in seen:
            raise click.BadParameter(f"the name {name!r} is given twice", param_hint="-f")
        seen.add(name)
        tasks.append(_plain(item))
    return tasks


def batches(
    tasks: Sequence[dict[str, Any]], delete: Sequence[str]
) -> list[tuple[list[dict[str, Any]], list[str]]]:
    """The file's work in batches of at most the API's maximum: the deletes first (the
    places they free count for the creates), then the tasks."""
    items: list[tuple[str, Any]] = [("delete", n) for n in delete] + [("task", t) for t in tasks]
    size = limits.MAX_BATCH_ITEMS
    found = []
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        found.append(([v for k, v in chunk if k == "task"], [v for k, v in chunk if k == "delete"]))
    return found


def steps_of(
    result: BatchResult, current: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The plan's rows from a batch's results: name, action and what changes (with the
    old and new values, when ``current``, the tasks as they are, is given)."""
    rows = []
    for deletion in result["deletions"]:
        rows.append(_step(deletion["name"], deletion["status"], "", deletion["error"]))
    for item in result["results"]:
        old = (current or {}).get(item["name"] or "")
        new = item["task"]
        if old is not None and new is not None:
            detail = "; ".join(
                f"{c}: {_shown(_at(old, c))} -> {_shown(_at(new, c))}" for c in item["changes"]
            )
        else:
            detail = ", ".join(item["changes"])
        rows.append(_step(item["name"], item["status"], detail, item["error"]))
    return rows


def _at(task: Mapping[str, Any], path: str) -> Any:
    value: Any = task
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


#: The longest value a plan's row shows of a field.
MAX_SHOWN_CHARS = 60


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _step(name: str | None, status: str, detail: str, error: Any) -> dict[str, Any]:
    if error:
        detail = f"{error['field']}: {error['message']}" if error.get("field") else error["message"]
    return {"name": name, "action": _ACTIONS[status], "changes": detail}


def _send(
    client: Client, work: list[tuple[list[dict[str, Any]], list[str]]], dry_run: bool
) -> list[BatchResult]:
    return [client.batch(t, delete=d, atomic=True, dry_run=dry_run) for t, d in work]


def _refused(results: Sequence[BatchResult]) -> bool:
    return any(r["counts"]["error"] for r in results)


@click.command("apply")
@click.option(
    "-f", "--file", "path", required=True, help="A YAML or JSON file of tasks; - reads stdin."
)
@click.option(
    "--tenant",
    envvar="TASKHUB_TENANT",
    help="The tenant the key must belong to (else TASKHUB_TENANT); refused if it is another.",
)
@click.option("--prune", is_flag=True, help="Delete the tenant's tasks the file does not name.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--api",
    "api_url",
    envvar=API_URL_ENV,
    default="http://127.0.0.1:8000",
    show_default=True,
    help=f"The API's address (else {API_URL_ENV}).",
)
@click.option("--key", envvar=API_KEY_ENV, help=f"An API key of the tenant (else {API_KEY_ENV}).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def apply_command(
    path: str,
    tenant: str | None,
    prune: bool,
    dry_run: bool,
    api_url: str,
    key: str | None,
    as_json: bool,
) -> None:
    """Make the tenant's tasks match a file, by name: create, update, leave unchanged, and
    with --prune delete. The plan is printed first; the change is atomic (per 1,000
    items)."""
    if not key:
        raise click.UsageError(f"give --key, or set {API_KEY_ENV}: apply works through the API")
    tasks = read_tasks(path)
    try:
        with Client(api_url, key) as client:
            _apply(client, tasks, tenant, prune, dry_run, as_json)
    except ApiError as error:
        raise click.ClickException(f"the API refused: {error}") from None
    except httpx.HTTPError as error:
        raise click.ClickException(f"cannot reach the API at {api_url}: {error}") from None


def _apply(
    client: Client,
    tasks: list[dict[str, Any]],
    tenant: str | None,
    prune: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    current = {t["name"]: t for t in client.list(page_size=500)}
    named = {t["name"] for t in tasks}
    delete = sorted(name for name in current if name not in named) if prune else []
    work = batches(tasks, delete)
    planned = _send(client, work, dry_run=True)
    owner = planned[0]["tenant"] if planned else tenant
    if tenant and owner and owner != tenant:
        raise click.UsageError(
            f"the API key is of tenant {owner!r}, not {tenant!r}: nothing was changed"
        )
    steps = [step for result in planned for step in steps_of(result, current)]
    refused = _refused(planned)
    if not as_json:  # the plan first
        click.echo(f"tenant {owner!r}: {len(tasks)} tasks in the file")
        table(steps, ["name", "action", "changes"])
    applied: list[BatchResult] = []
    if not dry_run and not refused and planned:
        applied = _send(client, work, dry_run=False)
        refused = _refused(applied)  # changed meanwhile: the batch that refused is not stored
        steps = [step for result in applied for step in steps_of(result, current)]
    stored = bool(applied) and all(r["stored"] for r in applied)
    if as_json:
        print_json({"tenant": owner, "dry_run": dry_run, "stored": stored, "steps": steps})
    else:
        counts = Counter(step["action"] for step in steps)
        words = _DONE if stored else _PLANNED
        summary = ", ".join(f"{counts[a]} {words[a]}" for a in words if counts[a])
        if refused and applied:
            table([s for s in steps if s["action"] == "refused"], ["name", "action", "changes"])
            click.echo(
                f"{counts['refused']} refused: the batch holding each was not stored "
                f"(a batch is at most {limits.MAX_BATCH_ITEMS} items)"
            )
        elif refused:
            click.echo(f"{counts['refused']} refused: nothing was changed")
        elif dry_run:
            click.echo(f"{summary or 'nothing to do'} (dry run: nothing was changed)")
        else:
            click.echo(summary or "nothing to do")
    if refused:
        click.get_current_context().exit(REFUSED_EXIT)
