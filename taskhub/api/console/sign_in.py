"""Signing in and out: an API key exchanged for a session cookie, and the session ended."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taskhub.api.console.web import (
    PREFIX,
    Changing,
    Form,
    first,
    redirect,
    render,
    session_cookie,
)
from taskhub.api.deps import AppContext
from taskhub.service import console_sessions

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _next_page(value: str) -> str:
    """Where to go after signing in: a console page only (never another site)."""
    if value.startswith(f"{PREFIX}/") and not value.startswith(f"{PREFIX}//"):
        return value[len(PREFIX) :]
    return "/"


@router.get("/sign-in")
def sign_in_page(request: Request) -> Response:
    return render(
        request, "sign_in.html", None, next=request.query_params.get("next", ""), error=None
    )


@router.post("/sign-in")
def sign_in(request: Request, context: AppContext, form: Form) -> Response:
    now = context.clock()
    with context.engine.begin() as conn:
        signed = console_sessions.sign_in(conn, first(form, "api_key"), now, context.settings)
    if signed is None:
        return render(
            request,
            "sign_in.html",
            None,
            401,
            next=first(form, "next"),
            error="That API key is not valid (unknown, mistyped or revoked).",
        )
    cookie, session = signed
    response = redirect(_next_page(first(form, "next")))
    response.set_cookie(
        console_sessions.COOKIE_NAME,
        cookie,
        max_age=int((session.expires_at - now).total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request, viewer: Changing) -> Response:
    context = viewer.context
    viewer.run(
        lambda conn: console_sessions.sign_out(
            conn, session_cookie(request), viewer.now, context.settings
        )
    )
    response = redirect("/sign-in", "signed-out")
    response.delete_cookie(console_sessions.COOKIE_NAME, path=PREFIX)
    return response
