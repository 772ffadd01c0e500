"""The API's own refusals and the one shape every error is answered in:
``{"error": {"code", "message", "field"}}`` (see :meth:`TaskhubError.to_dict`)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from taskhub.core.errors import TaskhubError


class Unauthorized(TaskhubError):
    """No API key, or one that is unknown or revoked: the caller learns nothing more (the
    answer carries ``WWW-Authenticate: Bearer``)."""

    code = "unauthorized"
    http_status = 401


class TooLarge(TaskhubError):
    """A request body over :data:`taskhub.api.deps.MAX_REQUEST_BYTES`, refused while it is
    still being read, so a huge body costs nothing."""

    code = "too_large"
    http_status = 413


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """An error the framework or a probe raises, in the shape of our own."""
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}}, status_code=status
    )
