"""The API's own refusals and the one shape every error is answered in:
``{"error": {"code", "message", "field"}}`` (see :meth:`TaskhubError.to_dict`)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from taskhub.core.errors import TaskhubError


class Unauthorized(TaskhubError):
    code = "unauthorized"
    http_status = 401


class TooLarge(TaskhubError):
    code = "too_large"
    http_status = 413


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """An error the framework or a probe raises, in the shape of our own."""
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}}, status_code=status
    )
