"""The smallest Django project that holds django-celery-beat's tables, for the import
tests: its database is the URL in ``TASKHUB_TEST_DJANGO_DATABASE`` (``sqlite:///PATH`` or
``postgresql://USER@HOST:PORT/NAME``). Only the tests' own processes load it."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit


def _database(url: str) -> dict[str, Any]:
    if url.startswith("sqlite:///"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url.removeprefix("sqlite:///")}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


SECRET_KEY = "taskhub-tests"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {"default": _database(os.environ["TASKHUB_TEST_DJANGO_DATABASE"])}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
