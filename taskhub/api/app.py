"""The REST API: a thin FastAPI layer over the service functions.

This module builds the app: one router per resource (``taskhub.api.routes``), the
dependencies every route shares (``taskhub.api.deps``), the OpenAPI document from
``taskhub.api.schemas``, request metrics, and ``/docs`` served offline. Every error, ours
or the framework's, has one shape: ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskhub.api import console
from taskhub.api.console import web as console_web
from taskhub.api.deps import Context
from taskhub.api.errors import error_response
from taskhub.api.key_cache import KeyCache
from taskhub.api.routes import (
    calendars,
    dead_letters,
    executions,
    notifications,
    operations,
    signing_secrets,
    tasks,
)
from taskhub.api.schemas import REQUEST_MODELS
from taskhub.core.clock import utcnow
from taskhub.core.errors import RateLimited, TaskhubError
from taskhub.core.sealing import SealingError
from taskhub.core.settings import Settings, load
from taskhub.observability.metrics import Metrics
from taskhub.service import database

log = logging.getLogger(__name__)

#: Database errors that mean "not reachable or too busy now", not "bad request": a 503.
UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)

#: PostgreSQL's deadlock and serialization failure: a concurrent change, a 409 like a
#: unique violation, not a database outage.
CONCURRENT_CHANGE = frozenset({"40P01", "40001"})


# --- the OpenAPI document -------------------------------------------------------------


class TaskhubApp(FastAPI):
    """FastAPI, plus the request-body schemas in the OpenAPI document's components."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = get_openapi(
            title=self.title,
            version=self.version,
            description=self.description,
            routes=self.routes,
        )
        _, extra = models_json_schema(
            [(model, "validation") for model in REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in extra.get("$defs", {}).items():
            if components.get(name, definition) != definition:
                raise RuntimeError(f"two different OpenAPI schemas are named {name}")
            # pydantic's own: FastAPI's copy of a model a response also uses states its
            # integer bounds as floats (``"minimum": 1.0``).
            components[name] = definition
        self.openapi_schema = schema
        return schema


# --- request metrics ------------------------------------------------------------------


class RequestMetrics:
    """Counts and times every request by method, route template (never the raw path,
    which would put ids in labels) and status."""

    METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def template(self, scope: Scope) -> str:
        """The matched route's path template. FastAPI notes its own routes in the scope;
        the rest (``/docs``, ``/openapi.json``) are matched again here."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in self.METHODS else "other"
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(method, self.template(scope), status, elapsed)


# --- errors ---------------------------------------------------------------------------


def _in_console(request: Request) -> bool:
    """A console page's error is a page, not JSON."""
    return request.url.path == console.PREFIX or request.url.path.startswith(f"{console.PREFIX}/")


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, ours or the framework's, answered in the one shape; nothing of a
    request's body, key or bound parameters goes into a log or an answer."""

    async def taskhub_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, TaskhubError)
        if _in_console(request):
            return console_web.error_page(request, error)
        response = JSONResponse(error.to_dict(), status_code=error.http_status)
        if error.http_status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response

    async def request_invalid(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": ("body",), "msg": "is invalid"}
        loc = [str(part) for part in first.get("loc", ())]
        field = ".".join(loc[1:] if loc and loc[0] in ("query", "path", "header") else loc)
        return error_response(422, "invalid", str(first.get("msg", "is invalid")), field or "body")

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if _in_console(request):
            return console_web.error_page(request, error)
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "no such route" if error.status_code == 404 else str(error.detail)
        response = error_response(error.status_code, codes.get(error.status_code, "error"), message)
        if error.headers:
            response.headers.update(error.headers)
        return response

    async def database_error(_request: Request, error: Exception) -> Response:
        # Logged by class only: a statement's parameters may hold a task's headers or body.
        if getattr(getattr(error, "orig", None), "sqlstate", None) in CONCURRENT_CHANGE:
            # Two writes that waited on each other (a create and a batch of the same
            # name): PostgreSQL ended one of them, which changed nothing.
            return error_response(409, "conflict", "conflicts with a concurrent change; try again")
        if isinstance(error, sqlalchemy.exc.IntegrityError):
            # A race the service's own checks could not see (e.g. two creates of one name).
            return error_response(409, "conflict", "conflicts with a concurrent change; try again")
        if isinstance(error, sqlalchemy.exc.DataError):
            # What the service let through but the database cannot hold or compare, such
            # as a NUL character on PostgreSQL: still the caller's input, so a 422.
            return error_response(
                422, "invalid", "holds a value the database cannot store (a NUL character?)"
            )
        if isinstance(error, UNAVAILABLE):
            log.warning("database unavailable: %s", error.__class__.__name__)
            return error_response(503, "unavailable", "the database is unavailable; try again")
        cause = getattr(error, "orig", None)
        log.error("database error: %s (%s)", type(error).__name__, type(cause).__name__)
        return error_response(500, "internal", "internal error")

    async def sealing_error(_request: Request, error: Exception) -> Response:
        # The message names the setting to fix; it never holds key or token bytes.
        log.error("cannot unseal a stored secret: %s", error)
        return error_response(500, "internal", str(error))

    async def overflow(_request: Request, _exc: Exception) -> Response:
        return error_response(422, "invalid", "a time or number is out of range")

    async def unexpected(_request: Request, error: Exception) -> Response:
        log.error("unexpected error", exc_info=error)
        return error_response(500, "internal", "internal error")

    async def console_refusal(request: Request, error: Exception) -> Response:
        return console_web.error_page(request, error)

    app.add_exception_handler(console_web.NotSignedIn, console_refusal)
    app.add_exception_handler(console_web.Forbidden, console_refusal)
    app.add_exception_handler(TaskhubError, taskhub_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sqlalchemy.exc.SQLAlchemyError, database_error)
    app.add_exception_handler(SealingError, sealing_error)
    app.add_exception_handler(OverflowError, overflow)
    app.add_exception_handler(Exception, unexpected)


# --- the app --------------------------------------------------------------------------

DESCRIPTION = """\
taskhub fires HTTP triggers on cron, interval and one-time schedules.

Every `/v1` call needs `Authorization: Bearer <api key>` (`taskhub apikey create --tenant
NAME`). Errors always have the shape `{"error": {"code", "message", "field"}}`, where
`field` is the dotted path of the offending input. Lists are cursor-paged: pass a page's
`next_cursor` as `cursor` for the next one.
"""


def celery_tick() -> None:
    """Ask Celery for a tick; Celery is imported only when first needed."""
    from taskhub.worker.celery_app import request_tick

    request_tick()


#: Swagger UI's files, shipped in the package (see its SOURCE): /docs needs no network.
SWAGGER_UI_DIR = Path(__file__).parent / "static" / "swagger-ui"
DOCS_STATIC = "/docs/static"


def _serve_docs(app: FastAPI) -> None:
    """``/docs`` from the package's own copy of Swagger UI rather than FastAPI's default
    CDN, which leaves the page blank on a machine without Internet access. The online
    validator badge is off for the same reason."""
    app.mount(DOCS_STATIC, StaticFiles(directory=SWAGGER_UI_DIR), name="docs-static")

    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API reference",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def create_app(
    database_url: str | None = None,
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    request_tick: Callable[[], object] = celery_tick,
) -> FastAPI:
    """The API over ``database_url`` (default: the settings'), or over ``engine``.

    ``settings`` are read from the environment once, here, unless given: every request
    uses these, none reads the environment again.

    ``request_tick`` runs after a run-now or a redrive has committed (after the response
    is sent), so the work goes out without waiting for beat.
    """
    settings = load() if settings is None else settings
    if engine is None:
        engine = database.engine_for(database_url or settings.database_url)
    metrics = Metrics(engine, clock)
    app = TaskhubApp(
        title="taskhub",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # served by _serve_docs, from the package
        redoc_url=None,
        openapi_tags=[
            {"name": "tasks", "description": "Registered HTTP triggers and their schedules"},
            {"name": "executions", "description": "The history of fired occurrences"},
            {"name": "dead letters", "description": "Executions that exhausted their attempts"},
            {
                "name": "signing secrets",
                "description": "Keys of X-Taskhub-Signature or of the Standard Webhooks headers",
            },
            {
                "name": "calendars",
                "description": "Exclusion calendars: dates on which the tasks naming them"
                " do not fire",
            },
            {"name": "operations", "description": "Liveness and Prometheus metrics"},
            {
                "name": "notifications",
                "description": "Channels (webhook, email, Slack) that hear of dead letters, "
                "auto-pauses, lateness and recoveries, grouped; and what was sent",
            },
        ],
    )
    keys = KeyCache(settings.api_key_cache_s)
    app.state.taskhub = Context(engine, clock, request_tick, metrics, settings, keys)
    _install_error_handlers(app)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app.routes)
    for router in (
        tasks.router,
        executions.router,
        dead_letters.router,
        signing_secrets.router,
        calendars.router,
        operations.router,
        notifications.router,
    ):
        app.include_router(router)
    _serve_docs(app)
    console.install(app)
    return app
