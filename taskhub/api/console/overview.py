"""The overview: how the tenant's tasks have fared lately."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taskhub.api.console.web import PREFIX, SignedIn, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/")
def overview(request: Request, viewer: SignedIn) -> Response:
    return render(request, "overview.html", viewer)
