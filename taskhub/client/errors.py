"""The API's refusals as exceptions: each carries the answer's ``code``, ``message`` and
``field`` (the API's one error shape, ``{"error": {"code", "message", "field"}}``) and
its HTTP status. Catch :class:`ApiError` for all of them, or one kind by its class."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal by the API (or an answer that is not the API's: code ``http_error``)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class Unauthorized(ApiError):
    """401: no API key, or one that is unknown or revoked."""


class NotFound(ApiError):
    """404: no such task (or execution) for this key's tenant."""


class Conflict(ApiError):
    """409: the request conflicts with what is stored (a name taken, a finished task)."""


class QuotaExceeded(Conflict):
    """409: a count limit of the tenant (its tasks) is reached."""


class InvalidInput(ApiError):
    """422: bad input; ``field`` is the dotted path of the offending field."""


class TooLarge(ApiError):
    """413: the request body is over the API's cap."""


class RateLimited(ApiError):
    """429: a rate limit of the tenant; ``retry_after_s`` says when to try again."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None, retry_after_s: int | None
    ) -> None:
        super().__init__(status, code, message, field)
        self.retry_after_s = retry_after_s


class ServerError(ApiError):
    """5xx: the API could not answer (503: its database is unavailable)."""


_BY_CODE: dict[str, type[ApiError]] = {
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "conflict": Conflict,
    "quota_exceeded": QuotaExceeded,
    "invalid": InvalidInput,
    "too_large": TooLarge,
}


def error_of(status: int, body: Any, retry_after: str | None = None) -> ApiError:
    """The exception for an answer with ``status`` (4xx or 5xx) and JSON ``body``."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"code": "http_error", "message": f"HTTP {status}", "field": None}
    code = str(detail.get("code") or "http_error")
    message = str(detail.get("message") or f"HTTP {status}")
    field = detail.get("field")
    field = field if isinstance(field, str) else None
    if status == 429:
        after = int(retry_after) if retry_after and retry_after.isdigit() else None
        return RateLimited(status, code, message, field, after)
    if status >= 500:
        return ServerError(status, code, message, field)
    return _BY_CODE.get(code, ApiError)(status, code, message, field)
