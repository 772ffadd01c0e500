"""Send a Celery target's task: one attempt as an ordinary Celery task message.

The message is Celery's protocol 2, built here from the request alone (no Celery app,
no user code): any Celery 5 worker of the user's app consumes it unchanged. Its
Celery task id is the occurrence's idempotency key, so a repeat has the same id, and
it carries the headers ``taskhub_task_id``, ``taskhub_scheduled_for`` and
``taskhub_attempt``, which a bound task reads as ``self.request.taskhub_task_id`` etc.
It goes where Celery's default routing sends a task to a named queue: the default
exchange with the queue's name as routing key, the queue declared as a Celery worker
started with ``-Q <queue>`` declares it.

Like ``exchange`` for HTTP, this module decides nothing about retries: a send ends as
a :class:`TriggerOutcome` whatever the broker did (:func:`send` never raises for
anything a request or a broker can do). The broker accepting the message is the
attempt's success (``accepted``): written to Redis, confirmed by AMQP (publisher
confirms), accepted by SQS. Anything else is a ``connection`` error that names the
broker by its name, never by its URL, within about :data:`SEND_TIMEOUT_S`.

kombu's calls block, so they run on a few threads per broker
(:data:`THREADS_PER_BROKER`), each with its own connection from the broker's pool (a
kombu connection and producer are not safe to share between threads); the asyncio
loop only awaits them. A broker that is down holds only its own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as errno_codes
import os
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import amqp.exceptions
import kombu
from celery.utils.saferepr import saferepr

from taskhub.core import limits
from taskhub.core.clock import utcnow
from taskhub.core.messages import TriggerOutcome, TriggerRequest, as_utc
from taskhub.core.settings import Settings

__all__ = [
    "ATTEMPT_HEADER",
    "SCHEDULED_FOR_HEADER",
    "TASK_ID_HEADER",
    "Publisher",
    "configured_brokers",
    "host_key",
    "send",
    "task_message",
]

TASK_ID_HEADER: Final = "taskhub_task_id"
SCHEDULED_FOR_HEADER: Final = "taskhub_scheduled_for"
ATTEMPT_HEADER: Final = "taskhub_attempt"
#: Who sent it, as Celery's ``origin`` header names the sending node.
ORIGIN: Final = f"taskhub@{socket.gethostname()}"
#: Celery's own bound for ``argsrepr`` and ``kwargsrepr`` (``Celery.amqp.argsrepr_maxsize``).
REPR_MAX_CHARS: Final = 1024

#: The longest a send may take, connecting included; past it the attempt is a
#: ``connection`` error (the broker may still take the message: a repeat has its id).
SEND_TIMEOUT_S: Final = 5.0
#: Connecting to a broker, per try (a refused connection is tried twice).
CONNECT_TIMEOUT_S: Final = 2.0
#: A broker's answer to one operation (a write, a publisher confirm).
ANSWER_TIMEOUT_S: Final = 3.0
#: Threads (and so connections) per broker and process.
THREADS_PER_BROKER: Final = 4
#: kombu's reconnect policy, for the connect and for a connection lost under a send:
#: one more try, soon; taskhub's retry policy does the rest.
_RETRY_POLICY: Final = {
    "max_retries": 1,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
_AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})


def configured_brokers(settings: Settings) -> Mapping[str, str]:
    """The operator's Celery brokers' URLs by name (``TASKHUB_CELERY_BROKERS``): by
    default one, ``default``, taskhub's own broker."""
    return {limits.DEFAULT_CELERY_BROKER: settings.broker_url}


def host_key(broker: str) -> str:
    """The "host" a Celery request goes to, for flow control and lane shares:
    ``celery:<broker name>`` (``TASKHUB_HOST_LIMITS`` may name it)."""
    return f"celery:{broker}"


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class TaskMessage:
    """A protocol 2 task message: what kombu publishes."""

    headers: dict[str, Any]
    properties: dict[str, Any]
    #: ``(args, kwargs, embed)``, serialized as JSON.
    body: tuple[list[Any], dict[str, Any], dict[str, Any]]
    queue: str


def _iso_z(request: TriggerRequest) -> str:
    """The same text as the HTTP header ``X-Taskhub-Scheduled-For``."""
    return as_utc(request.scheduled_for).replace(tzinfo=None).isoformat() + "Z"


def task_message(request: TriggerRequest) -> TaskMessage:
    """The Celery task message of a request with ``celery`` set: the fields Celery's
    ``app.amqp.as_task_v2`` writes, with the Celery task id = the idempotency key and
    taskhub's three headers beside Celery's (a worker copies every header onto
    ``self.request``)."""
    call = request.celery
    if call is None:
        raise ValueError("not a Celery target")
    task_id = request.idempotency_key
    args, kwargs = list(call.args), dict(call.kwargs)
    expires = None
    if call.expires_seconds is not None:
        due = as_utc(request.scheduled_for) + timedelta(seconds=call.expires_seconds)
        expires = due.isoformat()
    headers: dict[str, Any] = {
        "lang": "py",
        "task": call.task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": expires,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": saferepr(tuple(args), REPR_MAX_CHARS),
        "kwargsrepr": saferepr(kwargs, REPR_MAX_CHARS),
        "origin": ORIGIN,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        TASK_ID_HEADER: request.task_id,
        SCHEDULED_FOR_HEADER: _iso_z(request),
        ATTEMPT_HEADER: request.attempt,
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return TaskMessage(
        headers=headers,
        properties={"correlation_id": task_id, "reply_to": ""},
        body=(args, kwargs, embed),
        queue=call.queue,
    )


# --------------------------------------------------------------------------- errors


class _Failed(Exception):
    """A send that did not happen: (error_kind, message naming the broker by name)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _reason(exc: BaseException) -> str:
    """Why a send failed, in words that hold no URL, host or password: the operating
    system's words for a socket error, the AMQP reply text, else the error's type.
    (A driver's own message often quotes the address it tried.)"""
    chain = _chain(exc)
    for cause in chain:
        if isinstance(cause, TimeoutError):
            return "the broker did not answer in time"
        if isinstance(cause, OSError) and isinstance(cause.errno, int) and cause.errno > 0:
            if cause.errno in (errno_codes.ETIMEDOUT, errno_codes.EAGAIN):
                return "the broker did not answer in time"
            return os.strerror(cause.errno)
    for cause in chain:
        if isinstance(cause, amqp.exceptions.MessageNacked):
            return "the broker refused the message (nack)"
        if isinstance(cause, amqp.exceptions.AMQPError) and cause.reply_text:
            return str(cause.reply_text)
    names = {type(cause).__name__ for cause in chain}
    if "TimeoutError" in names:  # redis-py's and kombu's own timeout classes
        return "the broker did not answer in time"
    return type(chain[-1]).__name__


# --------------------------------------------------------------------------- one broker


def _connection(url: str) -> kombu.Connection:
    """A connection that fails within seconds: bounded connects, reads and confirms."""
    scheme = url.partition("://")[0].lower()
    options: dict[str, Any] = {
        **_RETRY_POLICY,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,  # Redis
        "socket_timeout": ANSWER_TIMEOUT_S,  # Redis
    }
    if scheme in _AMQP_SCHEMES:
        options = {
            **_RETRY_POLICY,
            "confirm_publish": True,
            "read_timeout": ANSWER_TIMEOUT_S,
            "write_timeout": ANSWER_TIMEOUT_S,
        }
    return kombu.Connection(url, connect_timeout=CONNECT_TIMEOUT_S, transport_options=options)


class _Broker:
    """One broker's threads and pooled connections (each used by one thread at a time)."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.executor = ThreadPoolExecutor(
            max_workers=THREADS_PER_BROKER, thread_name_prefix=f"taskhub-celery-{name}"
        )
        self._lock = threading.Lock()
        self._idle: list[tuple[kombu.Connection, kombu.Producer]] = []
        self._queues: dict[str, kombu.Queue] = {}
        #: Queues that exist with arguments of their own (e.g. quorum): not declared.
        self._declared_elsewhere: set[str] = set()

    def _queue(self, name: str) -> kombu.Queue:
        """The queue as Celery declares a queue named on its own (``-Q name``)."""
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = kombu.Queue(name, kombu.Exchange(name), routing_key=name)
        return queue

    def _take(self) -> tuple[kombu.Connection, kombu.Producer]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = _connection(self.url)
        return connection, kombu.Producer(connection, auto_declare=False)

    def publish(self, message: TaskMessage) -> None:
        """Publish on this thread; raises what kombu raises. A connection that failed is
        dropped, not pooled again."""
        try:
            self._publish(message)
        except amqp.exceptions.PreconditionFailed:
            # The queue exists with other arguments (a quorum queue, a TTL): it is there
            # to receive the message, so publish without declaring it.
            self._declared_elsewhere.add(message.queue)
            self._publish(message)

    def _publish(self, message: TaskMessage) -> None:
        connection, producer = self._take()
        declare = [] if message.queue in self._declared_elsewhere else [self._queue(message.queue)]
        try:
            producer.publish(
                message.body,
                exchange="",
                routing_key=message.queue,
                headers=message.headers,
                serializer="json",
                delivery_mode=2,
                declare=declare,
                retry=True,
                retry_policy=dict(_RETRY_POLICY),
                timeout=ANSWER_TIMEOUT_S,
                confirm_timeout=ANSWER_TIMEOUT_S,
                **message.properties,
            )
        except BaseException:
            _close(connection)
            raise
        with self._lock:
            self._idle.append((connection, producer))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _producer in idle:
            _close(connection)


def _close(connection: kombu.Connection) -> None:
    # Drops the sockets without a goodbye that could block; a broken one must not raise.
    with contextlib.suppress(Exception):
        connection.collect()


class Publisher:
    """This process's brokers, by name and URL; created and used on the trigger loop."""

    def __init__(self) -> None:
        self._brokers: dict[tuple[str, str], _Broker] = {}

    def broker(self, name: str, url: str) -> _Broker:
        """The broker's threads and connections; the first time, its transport is loaded
        (raises ImportError, KeyError or ValueError for one kombu cannot use)."""
        broker = self._brokers.get((name, url))
        if broker is None:
            kombu.Connection(url).get_transport_cls()
            broker = self._brokers[(name, url)] = _Broker(name, url)
        return broker

    def close(self) -> None:
        brokers, self._brokers = list(self._brokers.values()), {}
        for broker in brokers:
            broker.close()


# --------------------------------------------------------------------------- one send


async def send(
    publisher: Publisher, request: TriggerRequest, brokers: Mapping[str, str]
) -> TriggerOutcome:
    """One attempt of a Celery target, from the moment it has a slot: its clock starts
    here. ``brokers``: the operator's broker URLs by name."""
    started_at = utcnow()
    t0 = time.monotonic()

    def outcome(kind: str | None = None, error: str | None = None) -> TriggerOutcome:
        call = request.celery
        accepted = kind is None
        due_by = None
        if accepted and call is not None and call.track:
            due_by = started_at + timedelta(seconds=request.timeout_s)
        return TriggerOutcome(
            execution_id=request.execution_id,
            attempt=request.attempt,
            started_at=started_at,
            duration_ms=max(0, round((time.monotonic() - t0) * 1000)),
            error_kind=kind,
            error=error,
            accepted=accepted,
            result_due_by=due_by,
        )

    try:
        await _send(publisher, request, brokers)
    except _Failed as failed:
        return outcome(failed.kind, failed.message)
    return outcome()


async def _send(publisher: Publisher, request: TriggerRequest, brokers: Mapping[str, str]) -> None:
    call = request.celery
    if call is None:
        raise _Failed("invalid_request", "not a Celery target")
    name = call.broker
    url = brokers.get(name)
    if url is None:
        raise _Failed(
            "configuration",
            f"the Celery broker {name!r} is not configured (TASKHUB_CELERY_BROKERS)",
        )
    message = task_message(request)
    try:
        broker = publisher.broker(name, url)
    except (ImportError, KeyError, ValueError) as error:  # a URL kombu cannot use
        raise _Failed(
            "configuration",
            f"the Celery broker {name!r} has a URL whose transport cannot be used "
            f"({type(error).__name__})",
        ) from None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await loop.run_in_executor(broker.executor, broker.publish, message)
    except TimeoutError:
        raise _Failed(
            "connection",
            f"the Celery broker {name!r} did not take the message within {SEND_TIMEOUT_S:g} s",
        ) from None
    except Exception as error:  # whatever the broker did is an outcome
        raise _Failed(
            "connection", f"cannot send to the Celery broker {name!r}: {_reason(error)}"
        ) from None
