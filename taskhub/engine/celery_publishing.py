"""Send a Celery target's task: one attempt as an ordinary Celery task message
(``celery_messages``) published to one of the operator's brokers, by name.

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
loop only awaits them. Requests waiting for one broker are published in chunks (one
Redis round trip each). A broker that is down holds only its own threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno as errno_codes
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import amqp.exceptions
import kombu
import kombu.common

from taskhub.core.clock import utcnow
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.engine.celery_messages import TaskMessage, task_message

__all__ = ["Publisher", "host_key", "send"]

#: The longest a send may take, waiting and connecting included; past it the attempt
#: is a ``connection`` error (the broker may still take the message: a repeat has its id).
SEND_TIMEOUT_S: Final = 5.0
#: Connecting to a broker, per try (a refused connection is tried twice).
CONNECT_TIMEOUT_S: Final = 2.0
#: A broker's answer to one operation (a write, a publisher confirm).
ANSWER_TIMEOUT_S: Final = 3.0
#: Threads (and so connections) per broker and process.
THREADS_PER_BROKER: Final = 4
#: Requests a thread takes at once: one round trip on Redis.
CHUNK: Final = 100
#: Another thread starts for each this many requests waiting (AMQP confirms one
#: message at a time: its connections work side by side).
_WAITING_PER_THREAD: Final = 10
#: Connecting: one more try, soon; taskhub's retry policy does the rest.
_CONNECT_RETRIES: Final = {
    "max_retries": 1,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
_AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})


def host_key(broker: str) -> str:
    """The "host" a Celery request goes to, for flow control and lane shares:
    ``celery:<broker name>`` (``TASKHUB_HOST_LIMITS`` may name it)."""
    return f"celery:{broker}"


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
        **_CONNECT_RETRIES,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,  # Redis
        "socket_timeout": ANSWER_TIMEOUT_S,  # Redis
    }
    if scheme in _AMQP_SCHEMES:
        options = {
            **_CONNECT_RETRIES,
            "confirm_publish": True,
            "read_timeout": ANSWER_TIMEOUT_S,
            "write_timeout": ANSWER_TIMEOUT_S,
        }
    return kombu.Connection(url, connect_timeout=CONNECT_TIMEOUT_S, transport_options=options)


@dataclass
class _Send:
    """One request waiting for its broker's publisher; ``done`` is settled on the loop."""

    request: TriggerRequest
    done: asyncio.Future[None]


class _Broker:
    """One broker's publisher: requests wait in one line and are published in chunks
    of up to :data:`CHUNK` by at most :data:`THREADS_PER_BROKER` threads at once, each
    on a pooled connection it alone uses meanwhile. A chunk goes in one round trip where
    kombu can batch (Redis: a pipeline) and is built on its thread, not on the loop."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.executor = ThreadPoolExecutor(
            max_workers=THREADS_PER_BROKER, thread_name_prefix=f"taskhub-celery-{name}"
        )
        #: Appended on the loop, taken by the threads (a deque's ends are thread-safe).
        self._waiting: collections.deque[_Send] = collections.deque()
        self._threads = 0  # publishing now; read and written on the loop only
        self._closed = False
        self._lock = threading.Lock()
        self._idle: list[tuple[kombu.Connection, kombu.Producer]] = []
        self._queues: dict[str, kombu.Queue] = {}
        #: Queues that exist with arguments of their own (e.g. quorum): not declared.
        self._declared_elsewhere: set[str] = set()

    async def publish(self, request: TriggerRequest) -> None:
        """Until the broker has taken the message; raises why it has not."""
        loop = asyncio.get_running_loop()
        send = _Send(request, loop.create_future())
        self._waiting.append(send)
        self._start(loop)
        await send.done

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """A thread when none runs, more while many requests wait."""
        wanted = min(THREADS_PER_BROKER, 1 + len(self._waiting) // _WAITING_PER_THREAD)
        while self._waiting and self._threads < wanted and not self._closed:
            self._threads += 1
            running = loop.run_in_executor(self.executor, self._drain, loop)
            running.add_done_callback(lambda _: self._ended(loop))

    def _ended(self, loop: asyncio.AbstractEventLoop) -> None:
        self._threads -= 1
        if self._waiting:  # came after that thread last looked
            self._start(loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On a thread: publish chunks until no request waits."""
        while True:
            chunk: list[_Send] = []
            while len(chunk) < CHUNK and self._waiting:
                try:
                    send = self._waiting.popleft()
                except IndexError:  # another thread took the last one
                    break
                if not send.done.done():  # its sender gave up waiting: not sent at all
                    chunk.append(send)
            if not chunk:
                return
            errors = self._publish_chunk([send.request for send in chunk])
            try:
                loop.call_soon_threadsafe(_settle, chunk, errors)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                return

    def _publish_chunk(self, requests: list[TriggerRequest]) -> list[BaseException | None]:
        """Each request's error, None for each the broker took. A pooled connection that
        fails is dropped and what was not sent tried again on a new one (the broker may
        have closed it while it was idle), as after a queue's declaration was refused;
        a new one that fails fails the rest."""
        errors: list[BaseException | None] = [None] * len(requests)
        try:
            messages = [task_message(request) for request in requests]
        except Exception as error:  # reported per request, never raised
            return [error] * len(requests)
        sent = 0  # taken by the broker for sure
        failure: BaseException | None = None
        for _ in range(3):
            connection, producer, pooled = self._take()
            try:
                sent += self._publish_all(producer, messages[sent:])
            except _Partly as partly:
                sent += partly.sent
                _close(connection)
                failure = partly.__cause__ or partly
                if pooled:  # the others idle as long are as likely gone
                    self._drop_idle()
                    continue
                if isinstance(failure, amqp.exceptions.PreconditionFailed):
                    continue  # now not declared: it exists, with arguments of its own
                break
            else:
                self._give_back(connection, producer)
                return errors
        errors[sent:] = [failure] * (len(messages) - sent)
        return errors

    def _publish_all(self, producer: kombu.Producer, messages: list[TaskMessage]) -> int:
        """Publish ``messages`` in order, in one batch where the transport batches;
        :class:`_Partly` says how many went before an error (none of a failed batch)."""
        sent = 0
        try:
            self._declare(producer, {message.queue for message in messages})
            batching = _batches(producer)
            batch: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
            if batching:  # kombu 5.7's, which its type stubs do not know yet
                batch = producer.batch(max_size=len(messages))  # type: ignore[attr-defined]
            with batch:
                for message in messages:
                    _publish_one(producer, message)
                    sent += 0 if batching else 1
        except Exception as error:
            raise _Partly(sent) from error
        return len(messages)

    def _declare(self, producer: kombu.Producer, queues: set[str]) -> None:
        """Each queue as a Celery worker started with ``-Q <queue>`` declares it (once per
        connection), so a message sent before any worker started waits in it. A queue
        that exists with other arguments (quorum, a TTL) is there to receive it as it is."""
        for name in sorted(queues - self._declared_elsewhere):
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = kombu.Queue(
                    name, kombu.Exchange(name), routing_key=name
                )
            try:
                kombu.common.maybe_declare(queue, _channel(producer))
            except amqp.exceptions.PreconditionFailed:
                self._declared_elsewhere.add(name)
                raise  # the channel is closed: the chunk goes again, on a new connection

    def _take(self) -> tuple[kombu.Connection, kombu.Producer, bool]:
        """A connection no other thread uses, and whether it came from the pool."""
        with self._lock:
            if self._idle:
                return (*self._idle.pop(), True)
        connection = _connection(self.url)
        return connection, kombu.Producer(connection, auto_declare=False), False

    def _give_back(self, connection: kombu.Connection, producer: kombu.Producer) -> None:
        with self._lock:
            self._idle.append((connection, producer))

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _producer in idle:
            _close(connection)

    def close(self) -> None:
        self._closed = True  # what still waits times out: the loop is going away
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._drop_idle()


class _Partly(Exception):
    """A chunk that failed after ``sent`` of its messages were taken."""

    def __init__(self, sent: int) -> None:
        super().__init__(f"failed after {sent} sent")
        self.sent = sent


def _channel(producer: kombu.Producer) -> Any:
    return producer.channel  # connects if need be


def _batches(producer: kombu.Producer) -> bool:
    """Whether kombu batches publishes on this transport (5.7 and later: Redis's
    pipeline); elsewhere each publish is its own (AMQP: confirmed one by one)."""
    channel = _channel(producer)
    return (
        hasattr(producer, "batch")
        and callable(getattr(channel, "create_publish_batch", None))
        and bool(getattr(channel, "supports_batch_publish", True))
    )


def _publish_one(producer: kombu.Producer, message: TaskMessage) -> None:
    producer.publish(
        message.body,
        exchange="",  # Celery's default routing to a named queue: the default exchange
        routing_key=message.queue,
        headers=message.headers,
        serializer="json",
        delivery_mode=2,  # persistent
        timeout=ANSWER_TIMEOUT_S,
        confirm_timeout=ANSWER_TIMEOUT_S,
        **message.properties,
    )


def _settle(chunk: list[_Send], errors: list[BaseException | None]) -> None:
    """On the loop: each waiting sender learns its message's fate."""
    for send, error in zip(chunk, errors, strict=True):
        if send.done.done():  # gave up waiting meanwhile
            continue
        if error is None:
            send.done.set_result(None)
        else:
            send.done.set_exception(error)


def _close(connection: kombu.Connection) -> None:
    # Drops the sockets without a goodbye that could block; a broken one must not raise.
    with contextlib.suppress(Exception):
        connection.collect()


class Publisher:
    """This process's brokers, by name and URL; created and used on the trigger loop."""

    def __init__(self) -> None:
        self._brokers: dict[tuple[str, str], _Broker] = {}

    def broker(self, name: str, url: str) -> _Broker:
        """The broker's publisher; the first time, its transport is loaded (raises
        ImportError, KeyError or ValueError for one kombu cannot use)."""
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
    kind = error = due_by = None
    try:
        await _send(publisher, request, brokers)
    except _Failed as failed:
        kind, error = failed.kind, failed.message
    else:
        if request.celery is not None and request.celery.track:
            due_by = started_at + timedelta(seconds=request.timeout_s)
    duration_ms = max(0, round((time.monotonic() - t0) * 1000))
    identity = (request.execution_id, request.attempt, started_at, duration_ms)
    accepted = kind is None
    return TriggerOutcome(
        *identity, error_kind=kind, error=error, accepted=accepted, result_due_by=due_by
    )


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
    try:
        broker = publisher.broker(name, url)
    except (ImportError, KeyError, ValueError) as error:  # a URL kombu cannot use
        raise _Failed(
            "configuration",
            f"the Celery broker {name!r} has a URL whose transport cannot be used "
            f"({type(error).__name__})",
        ) from None
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await broker.publish(request)
    except TimeoutError:
        raise _Failed(
            "connection",
            f"the Celery broker {name!r} did not take the message within {SEND_TIMEOUT_S:g} s",
        ) from None
    except Exception as error:  # whatever the broker did is an outcome
        raise _Failed(
            "connection", f"cannot send to the Celery broker {name!r}: {_reason(error)}"
        ) from None
