"""Signing secrets: the tenant's keys of ``X-Taskhub-Signature`` or of the Standard
Webhooks headers (each secret's scheme), listed by hint; a new one, of the scheme chosen,
is shown once, on the page that answers its creation (never stored in a page that can be
reloaded or cached), and a secret can be revoked."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taskhub.api.console.web import (
    PREFIX,
    Changing,
    Form,
    SignedIn,
    Viewer,
    first,
    redirect,
    render,
)
from taskhub.core import signing
from taskhub.core.errors import Conflict, ValidationError
from taskhub.service import signing_secrets

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _list_page(
    request: Request, viewer: Viewer, status_code: int = 200, error: str = ""
) -> Response:
    secrets = viewer.run(lambda conn: signing_secrets.list_secrets(conn, viewer.tenant))
    return render(
        request,
        "signing_secrets.html",
        viewer,
        status_code,
        secrets=secrets,
        error=error,
        schemes=signing.SCHEMES,
    )


@router.get("/signing-secrets")
def signing_secret_list(request: Request, viewer: SignedIn) -> Response:
    return _list_page(request, viewer)


@router.post("/signing-secrets")
def create_signing_secret(request: Request, viewer: Changing, form: Form) -> Response:
    """Answered with the secret itself, once: a page, not a redirect (``render`` sends
    ``Cache-Control: no-store``), so neither a reload nor the history shows it again."""
    scheme = first(form, "scheme", signing.Scheme.TASKHUB.value)
    try:
        secret, stored = viewer.run(
            lambda conn: signing_secrets.create_secret(
                conn, viewer.tenant, viewer.now, viewer.settings, scheme
            )
        )
    except ValidationError as refused:
        return _list_page(request, viewer, refused.http_status, f"Scheme: {refused.message}")
    except Conflict as refused:
        return _list_page(request, viewer, refused.http_status, refused.message)
    return render(request, "signing_secret_created.html", viewer, secret=secret, stored=stored)


@router.post("/signing-secrets/{secret_id}/revoke")
def revoke_signing_secret(secret_id: str, viewer: Changing) -> Response:
    viewer.run(
        lambda conn: signing_secrets.revoke_secret(conn, secret_id, viewer.now, viewer.tenant)
    )
    return redirect("/signing-secrets", "secret-revoked")
