"""The Celery target as the API receives and returns it (``target.celery``), for the
OpenAPI document: its limits are those of :mod:`taskhub.core.limits`, which the
validation (:func:`taskhub.core.celery_calls.parse_celery_call`) applies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from taskhub.core import limits

#: Every model refuses a field it does not name, as the validation does.
STRICT = ConfigDict(extra="forbid")


Kwargs = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "description": "Keyword arguments, named by Python identifiers; at most "
            f"{limits.MAX_CELERY_ARGUMENTS_BYTES} bytes as JSON.",
        }
    ),
]


class CeleryCallCreate(BaseModel):
    """A Celery task to send, by its registered name: an ordinary Celery task message
    (protocol 2) that the app's own workers consume with no taskhub code installed. Its
    Celery task id is the occurrence's Idempotency-Key."""

    model_config = STRICT

    task: str = Field(
        min_length=1,
        max_length=limits.MAX_CELERY_TASK_NAME_CHARS,
        pattern=limits.CELERY_TASK_NAME_PATTERN,
        description="The Celery task's registered name: a dotted name of identifiers.",
        examples=["billing.tasks.nightly_report"],
    )
    args: list[Any] = Field(
        [],
        description="Positional arguments, a JSON array; at most "
        f"{limits.MAX_CELERY_ARGUMENTS_BYTES} bytes as JSON.",
    )
    kwargs: Kwargs = {}
    queue: str = Field(
        limits.DEFAULT_CELERY_QUEUE,
        max_length=limits.MAX_CELERY_QUEUE_CHARS,
        pattern=limits.CELERY_QUEUE_PATTERN,
        description="The queue to send it to (Celery's default queue unless given).",
    )
    broker: str = Field(
        limits.DEFAULT_CELERY_BROKER,
        pattern=limits.CELERY_BROKER_NAME_PATTERN,
        description="One of the installation's brokers, by name (TASKHUB_CELERY_BROKERS).",
    )
    track: bool = Field(
        False,
        description="Wait, up to target.timeout_seconds, for the result in the result "
        "backend named like the broker (TASKHUB_CELERY_RESULT_BACKENDS): SUCCESS succeeds, "
        "FAILURE fails the execution (not retried). Without it the attempt succeeds when "
        "the broker has accepted the message.",
    )
    expires_seconds: float | None = Field(
        None,
        ge=limits.MIN_CELERY_EXPIRES_S,
        le=limits.MAX_CELERY_EXPIRES_S,
        allow_inf_nan=False,
        description="The message expires this long after the occurrence's due time: a "
        "worker that receives it later does not run it.",
    )


class CeleryCall(BaseModel):
    """A Celery target's Celery task as returned: every field, defaults filled in."""

    model_config = STRICT

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    broker: str
    track: bool
    expires_seconds: float | None


class CeleryTarget(BaseModel):
    """A Celery target as returned: the Celery task to send, and its timeout."""

    model_config = STRICT

    celery: CeleryCall
    timeout_seconds: float
