"""The two clients, :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), on
httpx. Each method is one call of the REST API; lists are iterators that fetch the next
page when the last one is used up; refusals raise :mod:`taskhub.client.errors`.

What a request sends and how an answer is read is said once (:class:`_Calls`); the two
clients differ only in how they wait for the answer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypedDict, cast
from urllib.parse import quote

import httpx

from taskhub.client.errors import error_of

#: A task, an execution: JSON objects as the API returns them (see the API reference).
Task = dict[str, Any]
Execution = dict[str, Any]

#: Where the clients look for their settings when none are given.
API_URL_ENV = "TASKHUB_API_URL"
API_KEY_ENV = "TASKHUB_API_KEY"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0


class ErrorDetail(TypedDict):
    code: str
    message: str
    field: str | None


class BatchItemResult(TypedDict):
    index: int
    name: str | None
    status: str  # created | updated | unchanged | error
    task: Task | None
    changes: list[str]
    error: ErrorDetail | None


class BatchDeletion(TypedDict):
    index: int
    name: str
    status: str  # deleted | error
    error: ErrorDetail | None


class BatchResult(TypedDict):
    tenant: str
    atomic: bool
    dry_run: bool
    stored: bool
    counts: dict[str, int]
    results: list[BatchItemResult]
    deletions: list[BatchDeletion]


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None


def _tid(task_id: str) -> str:
    return quote(str(task_id), safe="")


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _tag_params(tags: Mapping[str, str] | None) -> list[str] | None:
    return None if not tags else [f"{k}:{v}" for k, v in tags.items()]


class _Calls:
    """Every call as a request, and the reading of its answer: shared by both clients."""

    @staticmethod
    def read(response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_of(response.status_code, body, response.headers.get("retry-after"))
        return body

    @staticmethod
    def create(definition: Mapping[str, Any]) -> _Request:
        return _Request("POST", "/v1/tasks", json=dict(definition))

    @staticmethod
    def get(task_id: str) -> _Request:
        return _Request("GET", f"/v1/tasks/{_tid(task_id)}")

    @staticmethod
    def list_page(filters: Mapping[str, Any], cursor: str | None) -> _Request:
        return _Request("GET", "/v1/tasks", params=_clean({**filters, "cursor": cursor}))

    @staticmethod
    def update(task_id: str, patch: Mapping[str, Any]) -> _Request:
        return _Request("PATCH", f"/v1/tasks/{_tid(task_id)}", json=dict(patch))

    @staticmethod
    def delete(task_id: str) -> _Request:
        return _Request("DELETE", f"/v1/tasks/{_tid(task_id)}")

    @staticmethod
    def pause(task_id: str, reason: str | None) -> _Request:
        body = {} if reason is None else {"reason": reason}
        return _Request("POST", f"/v1/tasks/{_tid(task_id)}/pause", json=body)

    @staticmethod
    def resume(task_id: str) -> _Request:
        return _Request("POST", f"/v1/tasks/{_tid(task_id)}/resume")

    @staticmethod
    def run(task_id: str) -> _Request:
        return _Request("POST", f"/v1/tasks/{_tid(task_id)}/run")

    @staticmethod
    def executions_page(task_id: str, filters: Mapping[str, Any], cursor: str | None) -> _Request:
        return _Request(
            "GET",
            f"/v1/tasks/{_tid(task_id)}/executions",
            params=_clean({**filters, "cursor": cursor}),
        )

    @staticmethod
    def batch(
        tasks: Iterable[Mapping[str, Any]],
        delete: Iterable[str],
        atomic: bool,
        dry_run: bool,
    ) -> _Request:
        body = {
            "tasks": [dict(t) for t in tasks],
            "delete": list(delete),
            "atomic": atomic,
            "dry_run": dry_run,
        }
        return _Request("POST", "/v1/tasks:batch", json=body)


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    url = base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise ValueError(f"give api_key, or set {API_KEY_ENV}")
    return url.rstrip("/"), key


def _task_filters(
    status: str | None,
    tags: Mapping[str, str] | None,
    name: str | None,
    name_prefix: str | None,
    last_status: str | None,
    page_size: int | None,
) -> dict[str, Any]:
    return {
        "status": status,
        "tag": _tag_params(tags),
        "name": name,
        "name_prefix": name_prefix,
        "last_status": last_status,
        "limit": page_size,
    }


class Client:
    """The REST API of one tenant (the one its API key belongs to), blocking.

    ``base_url`` defaults to ``TASKHUB_API_URL`` (else ``http://127.0.0.1:8000``),
    ``api_key`` to ``TASKHUB_API_KEY``. Use it as a context manager, or call
    :meth:`close`; one client keeps its connections open between calls."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, key = _settings(base_url, api_key)
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, request: _Request) -> Any:
        response = self._http.request(
            request.method, request.path, params=request.params, json=request.json
        )
        return _Calls.read(response)

    def create(self, definition: Mapping[str, Any]) -> Task:
        """Create a task (``name``, ``schedule`` and ``target`` at least)."""
        return cast(Task, self._call(_Calls.create(definition)))

    def get(self, task_id: str) -> Task:
        return cast(Task, self._call(_Calls.get(task_id)))

    def list(
        self,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        name_prefix: str | None = None,
        last_status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Task]:
        """Every task that matches, oldest first, a page fetched at a time."""
        filters = _task_filters(status, tags, name, name_prefix, last_status, page_size)
        cursor: str | None = None
        while True:
            page = self._call(_Calls.list_page(filters, cursor))
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def update(self, task_id: str, patch: Mapping[str, Any]) -> Task:
        """Change fields (``target`` and ``retry`` merge field by field)."""
        return cast(Task, self._call(_Calls.update(task_id, patch)))

    def delete(self, task_id: str) -> None:
        self._call(_Calls.delete(task_id))

    def pause(self, task_id: str, reason: str | None = None) -> Task:
        return cast(Task, self._call(_Calls.pause(task_id, reason)))

    def resume(self, task_id: str) -> Task:
        return cast(Task, self._call(_Calls.resume(task_id)))

    def run(self, task_id: str) -> Execution:
        """Fire now: an extra occurrence; the execution, queued."""
        return cast(Execution, self._call(_Calls.run(task_id)))

    def executions(
        self, task_id: str, *, status: str | None = None, page_size: int | None = None
    ) -> Iterator[Execution]:
        """The task's executions, newest first, a page fetched at a time."""
        filters = {"status": status, "limit": page_size}
        cursor: str | None = None
        while True:
            page = self._call(_Calls.executions_page(task_id, filters, cursor))
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def batch(
        self,
        tasks: Iterable[Mapping[str, Any]] = (),
        *,
        delete: Iterable[str] = (),
        atomic: bool = False,
        dry_run: bool = False,
    ) -> BatchResult:
        """Create, update (by name) and delete many tasks in one call
        (``POST /v1/tasks:batch``); a result per item. A refused item is in the result,
        not raised: check ``result["counts"]["error"]`` (and ``stored``)."""
        return cast(BatchResult, self._call(_Calls.batch(tasks, delete, atomic, dry_run)))


class AsyncClient:
    """:class:`Client`, for asyncio: the same methods, awaited; the lists are async
    iterators (``async for task in client.list()``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url, key = _settings(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout_s,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, request: _Request) -> Any:
        response = await self._http.request(
            request.method, request.path, params=request.params, json=request.json
        )
        return _Calls.read(response)

    async def create(self, definition: Mapping[str, Any]) -> Task:
        return cast(Task, await self._call(_Calls.create(definition)))

    async def get(self, task_id: str) -> Task:
        return cast(Task, await self._call(_Calls.get(task_id)))

    async def list(
        self,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        name_prefix: str | None = None,
        last_status: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Task]:
        filters = _task_filters(status, tags, name, name_prefix, last_status, page_size)
        cursor: str | None = None
        while True:
            page = await self._call(_Calls.list_page(filters, cursor))
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if not cursor:
                return

    async def update(self, task_id: str, patch: Mapping[str, Any]) -> Task:
        return cast(Task, await self._call(_Calls.update(task_id, patch)))

    async def delete(self, task_id: str) -> None:
        await self._call(_Calls.delete(task_id))

    async def pause(self, task_id: str, reason: str | None = None) -> Task:
        return cast(Task, await self._call(_Calls.pause(task_id, reason)))

    async def resume(self, task_id: str) -> Task:
        return cast(Task, await self._call(_Calls.resume(task_id)))

    async def run(self, task_id: str) -> Execution:
        return cast(Execution, await self._call(_Calls.run(task_id)))

    async def executions(
        self, task_id: str, *, status: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Execution]:
        filters = {"status": status, "limit": page_size}
        cursor: str | None = None
        while True:
            page = await self._call(_Calls.executions_page(task_id, filters, cursor))
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if not cursor:
                return

    async def batch(
        self,
        tasks: Iterable[Mapping[str, Any]] = (),
        *,
        delete: Iterable[str] = (),
        atomic: bool = False,
        dry_run: bool = False,
    ) -> BatchResult:
        return cast(BatchResult, await self._call(_Calls.batch(tasks, delete, atomic, dry_run)))
