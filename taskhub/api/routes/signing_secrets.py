"""The signing secrets: the keys of X-Taskhub-Signature or of the Standard Webhooks
headers (their ``scheme``), shown once, listed by hint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from taskhub.api.deps import Authed, OptionalJsonBody
from taskhub.api.schemas import (
    SigningSecretCreate,
    SigningSecretCreated,
    SigningSecretPage,
    answers,
    body_doc,
)
from taskhub.service import signing_secrets

router = APIRouter(tags=["signing secrets"])


@router.post(
    "/v1/signing-secrets",
    status_code=201,
    **answers(
        SigningSecretCreated,
        409,
        summary="Create a signing secret (shown once); at most two active per scheme",
    ),
    openapi_extra=body_doc(SigningSecretCreate, required=False),
)
def create_signing_secret(caller: Authed, body: OptionalJsonBody) -> dict[str, Any]:
    scheme = signing_secrets.parse_create_request(body)
    secret, stored = caller.run(
        lambda conn: signing_secrets.create_secret(
            conn, caller.tenant, caller.now, caller.settings, scheme
        )
    )
    return {**stored.to_dict(), "secret": secret}


@router.get(
    "/v1/signing-secrets",
    **answers(SigningSecretPage, summary="The tenant's signing secrets, newest first (hints only)"),
)
def list_signing_secrets(caller: Authed) -> dict[str, Any]:
    found = caller.run(lambda conn: signing_secrets.list_secrets(conn, caller.tenant))
    return {"items": [secret.to_dict() for secret in found]}


@router.delete(
    "/v1/signing-secrets/{secret_id}",
    **answers(
        None,
        404,
        summary="Revoke a signing secret: attempts from now on no longer carry its signature",
    ),
)
def revoke_signing_secret(caller: Authed, secret_id: str) -> None:
    caller.run(
        lambda conn: signing_secrets.revoke_secret(conn, secret_id, caller.now, caller.tenant)
    )
