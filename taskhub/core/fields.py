"""One field of a request body read and refused alike wherever it sits: a task
definition (:mod:`taskhub.core.definitions`) and its Celery target
(:mod:`taskhub.core.celery_calls`) say "must be an object", "unknown field" and
"must be between" in the same words, naming the field by its dotted path.

Pure: no database, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskhub.core.errors import ValidationError


def object_of(value: Any, name: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """``value`` as an object whose keys are all ``allowed`` (``name`` empty: the body)."""
    if not isinstance(value, Mapping):
        raise ValidationError(name, "must be an object")
    for key in value:
        if key not in allowed:
            prefix = f"{name}." if name else ""
            raise ValidationError(f"{prefix}{key}", "unknown field")
    return value


def number(value: Any, name: str, low: float, high: float) -> float:
    """A JSON number (not a boolean, not NaN) from ``low`` to ``high``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ValidationError(name, "must be a number")
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low:g} and {high:g}")
    return float(value)


def integer(value: Any, name: str, low: int, high: int) -> int:
    """A JSON integer (not a boolean) from ``low`` to ``high``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(name, "must be an integer")
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value
