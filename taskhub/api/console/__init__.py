"""The web console under ``/ui``: server-rendered pages over the same service functions
as the REST API, for one signed-in tenant at a time (see ``docs/console.md``)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from taskhub.api.console import dead_letters, overview, sign_in, signing_secrets, tasks
from taskhub.api.console.web import PREFIX, STATIC_DIR

__all__ = ["PREFIX", "install"]


def install(app: FastAPI) -> None:
    """Serve the console's pages and its own static files (nothing from a CDN)."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    for module in (sign_in, overview, tasks, dead_letters, signing_secrets):
        app.include_router(module.router)
