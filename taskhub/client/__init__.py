"""A Python client of taskhub's REST API: :class:`Client` (blocking) and
:class:`AsyncClient` (asyncio), on httpx. It needs only the API's address and a key of
the tenant; nothing of the server's own modules is imported.

>>> from taskhub.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="...") as taskhub:
...     task = taskhub.create({"name": "hook", "schedule": {"interval_seconds": 60},
...                            "target": {"url": "https://example.com/hook"}})
...     for execution in taskhub.executions(task["id"]):
...         print(execution["status"])
"""

from taskhub.client._client import (
    API_KEY_ENV,
    API_URL_ENV,
    AsyncClient,
    BatchDeletion,
    BatchItemResult,
    BatchResult,
    Client,
    ErrorDetail,
    Execution,
    Task,
)
from taskhub.client.errors import (
    ApiError,
    Conflict,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
)

__all__ = [
    "API_KEY_ENV",
    "API_URL_ENV",
    "ApiError",
    "AsyncClient",
    "BatchDeletion",
    "BatchItemResult",
    "BatchResult",
    "Client",
    "Conflict",
    "ErrorDetail",
    "Execution",
    "InvalidInput",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "Task",
    "TooLarge",
    "Unauthorized",
]
