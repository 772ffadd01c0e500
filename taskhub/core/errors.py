"""The errors that the API and the CLI turn into one shape:
``{"error": {"code", "message", "field"}}`` and an exit code."""

from __future__ import annotations


class TaskhubError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        # A refusal of the request as a whole names no field: null, never "".
        return {"error": {"code": self.code, "message": self.message, "field": self.field or None}}


class ValidationError(TaskhubError):
    """Bad input: ``field`` is the dotted path of the offending field."""

    code = "invalid"
    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)
        self.field: str = field


class NotFound(TaskhubError):
    """Absent, or another tenant's: the two are never told apart."""

    code = "not_found"
    http_status = 404


class Conflict(TaskhubError):
    code = "conflict"
    http_status = 409


class QuotaExceeded(TaskhubError):
    """A count limit of the tenant (its tasks) is reached; the message names it and its
    value."""

    code = "quota_exceeded"
    http_status = 409


class RateLimited(TaskhubError):
    """A rate limit of the tenant is reached: the API answers 429 with ``Retry-After``."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ScheduleError(ValueError):
    """Bad schedule input. `field` is the dotted path of the offending field as the API names it."""

    field: str
    message: str

    def __init__(self, field: str, message: str) -> None:
        # Both go to args so the error survives pickling (Celery serialises exceptions).
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"
