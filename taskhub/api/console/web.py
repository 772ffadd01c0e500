"""What every console page shares: its templates, who is viewing, and their forms.

A page is HTML rendered on the server (Jinja2, autoescaped: a task's name or a target's
answer is always shown as text). A viewer is a signed-in tenant
(:mod:`taskhub.service.console_sessions`); a request without a live session is sent to
the sign-in page. Every change is a POST that carries the session's anti-forgery token
(the form's ``csrf_token`` field or the ``X-CSRF-Token`` header) and is answered with a
redirect to a page that says what happened (post/redirect/get), so a reload never
repeats it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskhub.api.deps import AppContext, Caller
from taskhub.api.errors import TooLarge
from taskhub.core.errors import TaskhubError
from taskhub.service import console_sessions, quotas

#: Where the console lives in the API process.
PREFIX: Final = "/ui"
STATIC_DIR: Final = Path(__file__).parent / "static"
TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
#: The largest form read: a task at every documented limit fits.
MAX_FORM_BYTES: Final = 1024 * 1024

#: What a page may say after a change, by the code its redirect carries: the page never
#: shows text taken from the address.
NOTICES: Final = {
    "created": "Task created.",
    "saved": "Task saved.",
    "paused": "Task paused.",
    "resumed": "Task resumed.",
    "run": "Task fired: an extra occurrence is on its way.",
    "backfilled": "Backfill queued: each occurrence in the range not yet executed is on its way.",
    "backfilled-none": "Nothing to backfill: every occurrence in the range was already executed.",
    "deleted": "Task deleted.",
    "redriven": "Dead letter redriven.",
    "redriven-all": "Matching dead letters redriven.",
    "secret-revoked": "Signing secret revoked.",
    "signed-out": "Signed out.",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class NotSignedIn(Exception):
    """A page asked for without a live session: answered with the sign-in page."""


class Forbidden(Exception):
    """A change without this session's anti-forgery token: answered 403."""


@dataclass(frozen=True)
class Viewer(Caller):
    """A signed-in tenant: a :class:`Caller` (the service calls read the same) with the
    session's anti-forgery token for the forms it is shown."""

    csrf_token: str = ""


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(console_sessions.COOKIE_NAME)


def viewer_of(request: Request, context: AppContext) -> Viewer:
    now = context.clock()
    with context.engine.begin() as conn:
        session = console_sessions.session_of(conn, session_cookie(request), now, context.settings)
        if session is not None:
            # A page is a call of the tenant's, as an API request is: the same limit.
            quotas.count_call(conn, session.tenant, quotas.REQUESTS, now, context.settings)
    if session is None:
        raise NotSignedIn()
    return Viewer(session.tenant, now, context, csrf_token=session.csrf_token)


SignedIn = Annotated[Viewer, Depends(viewer_of)]


async def form_of(request: Request) -> dict[str, list[str]]:
    """The posted form (``application/x-www-form-urlencoded``), every value of each name."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise TooLarge(f"the form is over {MAX_FORM_BYTES} bytes")
    form: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


Form = Annotated[dict[str, list[str]], Depends(form_of)]


def changer_of(request: Request, viewer: SignedIn, form: Form) -> Viewer:
    """A signed-in viewer whose change carries the session's anti-forgery token."""
    presented = request.headers.get("X-CSRF-Token") or first(form, "csrf_token")
    session = console_sessions.Session(viewer.tenant, viewer.csrf_token, viewer.now)
    if not console_sessions.csrf_matches(session, presented):
        raise Forbidden()
    return viewer


Changing = Annotated[Viewer, Depends(changer_of)]


def first(form: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """``template`` with what every page shows: the tenant, the anti-forgery token, the
    notice the address names, the navigation's current page."""
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = templates.get_template(template).render(
        prefix=PREFIX,
        tenant=viewer.tenant if viewer else None,
        csrf_token=viewer.csrf_token if viewer else "",
        notice=notice,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(path: str, notice: str | None = None, **query: str) -> RedirectResponse:
    """303 to a console page (``path`` under :data:`PREFIX`), saying ``notice``."""
    if notice is not None:
        assert notice in NOTICES, notice
        query = {**query, "notice": notice}
    location = f"{PREFIX}{path}" + (f"?{urlencode(query)}" if query else "")
    return RedirectResponse(location, status_code=303)


#: Sent with every page: nothing loads from elsewhere, no page is framed, nothing cached.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def error_page(request: Request, error: Exception) -> Response:
    """A console request's error as a page (the API answers the same errors in JSON)."""
    if isinstance(error, NotSignedIn):
        return redirect("/sign-in", next=request.url.path)
    if isinstance(error, Forbidden):
        return render(
            request,
            "error.html",
            None,
            403,
            title="Refused",
            message="The change was refused: the page was out of date or not the console's "
            "own. Reload the page and try again.",
        )
    if isinstance(error, StarletteHTTPException):  # no such page, or not that method
        missing = error.status_code == 404
        return render(
            request,
            "error.html",
            None,
            error.status_code,
            title="Not found" if missing else "Error",
            message="There is no such page." if missing else str(error.detail),
        )
    assert isinstance(error, TaskhubError)
    return render(
        request, "error.html", None, error.http_status, title="Error", message=error.message
    )
