"""The signing secrets: the keys of X-Taskhub-Signature, shown once, listed by hint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from taskhub.api.deps import Authed
from taskhub.api.schemas import SigningSecretCreated, SigningSecretPage, error_responses
from taskhub.service import signing_secrets

router = APIRouter(tags=["signing secrets"])


@router.post(
    "/v1/signing-secrets",
    status_code=201,
    response_model=SigningSecretCreated,
    responses=error_responses(409),
    summary="Create a signing secret (shown once); at most two active at once",
)
def create_signing_secret(caller: Authed) -> dict[str, Any]:
    secret, stored = caller.run(
        lambda conn: signing_secrets.create_secret(conn, caller.tenant, caller.now, caller.settings)
    )
    return {**stored.to_dict(), "secret": secret}


@router.get(
    "/v1/signing-secrets",
    response_model=SigningSecretPage,
    responses=error_responses(),
    summary="The tenant's signing secrets, newest first (hints only)",
)
def list_signing_secrets(caller: Authed) -> dict[str, Any]:
    found = caller.run(lambda conn: signing_secrets.list_secrets(conn, caller.tenant))
    return {"items": [secret.to_dict() for secret in found]}


@router.delete(
    "/v1/signing-secrets/{secret_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
    summary="Revoke a signing secret: attempts from now on no longer carry its signature",
)
def revoke_signing_secret(caller: Authed, secret_id: str) -> Response:
    caller.run(
        lambda conn: signing_secrets.revoke_secret(conn, secret_id, caller.now, caller.tenant)
    )
    return Response(status_code=204)
