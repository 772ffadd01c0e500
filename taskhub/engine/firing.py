"""Fire a batch of trigger attempts: :func:`fire`, and the per-process loop that runs them.

It knows nothing of cron or databases (the database's say comes in through
``clear``), and it decides nothing about retries: every request ends as a
:class:`TriggerOutcome` value, whatever the target or the network did. :func:`fire`
never raises for anything a request can do. One attempt over HTTP is
``taskhub.engine.exchange``'s business, one to a Celery target (sending the Celery task
to the user's broker) ``taskhub.engine.celery_publishing``'s; the slots both run in are
``taskhub.engine.lanes``'s. A Celery target's "host", for its lane shares and its flow
control, is its broker: ``celery:<broker name>``.

Concurrency model. One asyncio event loop per process runs in a daemon thread, created
lazily on first use and re-created after ``fork`` (the pid is compared on every call).
One connection pool (``http_client.Pool``) per address policy lives on that loop and is
only ever touched from the loop thread; :func:`fire` is synchronous and may be called from many
threads at once (Celery's ``threads`` pool) or from prefork children. Attempts in flight
are bounded per process in two lanes (``lanes.Lanes``), shared out per host and tenant.

Flow control (``flow_control``): a request to a host with a limit (``TASKHUB_HOST_LIMITS``
or the task's ``rate_limit``) first awaits a slot of that host's budget, shared by the
fleet through Redis. Only that request's coroutine waits; the other requests of its
batch, to other hosts, go on. One that gets no slot within
``flow_control_max_wait_s`` is not sent: its outcome is ``throttled`` (not an attempt;
the database sends it again later). A 429 from a limited host pauses that host's budget
for ``Retry-After`` (1 s without one); unlimited hosts cost no flow-control call at all.

Batches published ahead are held on the loop until their send time (``not_before``) and
cleared then (``clearances``); meanwhile their requests are made ready
(``exchange.prepare``), so that the send time pays only the sends.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

from yarl import URL

from taskhub.core import host_limits
from taskhub.core.addresses import AddressPolicy
from taskhub.core.clock import utcnow
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings
from taskhub.engine import celery_publishing, exchange, flow_control, http_client
from taskhub.engine.clearances import Clear, Clearances
from taskhub.engine.lanes import InFlight, Lanes

__all__ = ["fire", "in_flight", "shutdown"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: The longest a request published ahead is held (the lead is at most 30 s).
MAX_HOLD_S: Final = 30.0
#: The longest a request refused for its host's or tenant's lane share waits in the
#: database before it is sent again (its own timeout when shorter).
SHARE_FULL_RETRY_MAX_S: Final = 10.0
#: How long a host's budget pauses after a 429 without a usable ``Retry-After``.
DEFAULT_429_PAUSE_S: Final = 1.0
#: A batch whose first send time is at least this far away prepares its requests
#: (``exchange.prepare``) while it waits: about 45 µs of the loop's time each, spent
#: before a burst's send time instead of in it.
PREPARE_AHEAD_MIN_S: Final = 0.1
#: Requests prepared between two yields to the loop (about 2 ms of work).
PREPARED_PER_TURN: Final = 50


@dataclass
class _Client:
    """One address policy's session and the lanes its attempts run in, and this
    process's Celery publisher (one for every client)."""

    pool: http_client.Pool
    lanes: Lanes
    publisher: celery_publishing.Publisher


def _host_of(request: TriggerRequest) -> str | None:
    if request.celery is not None:
        return celery_publishing.host_key(request.celery.broker)
    try:
        host = URL(request.url).host
    except (ValueError, TypeError, UnicodeError):
        return None
    return host.lower() if host else None


def _due_by(requests: Sequence[TriggerRequest], order: Sequence[int], start: int) -> int:
    """The end of the run of ``order`` from ``start`` (at least one) whose send time has
    come: they are cleared together."""
    now = utcnow()
    end = start + 1
    while end < len(order):
        not_before = requests[order[end]].not_before
        if not_before is not None and not_before > now:
            break
        end += 1
    return end


def _attempt_s(request: TriggerRequest) -> float:
    """The longest an attempt holds its slot: its timeout, or for a Celery target the
    send alone (a tracked one's timeout is the wait for its result, slot-free)."""
    if request.celery is not None:
        return celery_publishing.SEND_TIMEOUT_S
    return request.timeout_s


def _share_full(request: TriggerRequest) -> TriggerOutcome:
    """Not sent: its host or tenant holds its share of this process's slots. Sent again
    by the database once some of those may have ended: after its own timeout (what the
    slots it waits for are held at most, for a target like its own), at most
    ``SHARE_FULL_RETRY_MAX_S``; never sooner than 1 s."""
    retry_in_s = min(max(_attempt_s(request), 1.0), SHARE_FULL_RETRY_MAX_S)
    return TriggerOutcome.throttled(
        request,
        utcnow(),
        "not sent: its host or tenant held its share of the worker's in-flight slots",
        retry_in_s if math.isfinite(retry_in_s) else SHARE_FULL_RETRY_MAX_S,
    )


def _lane_key(request: TriggerRequest) -> str:
    """The host whose share of the lanes a request takes (a Celery target's broker)."""
    if request.celery is not None:
        return celery_publishing.host_key(request.celery.broker)
    return _host_key(request.url)


def _host_key(url: str) -> str:
    """The host a request goes to, for its share of the lanes, without parsing the URL
    (~0.3 µs, a twelfth of a URL parse): the name between ``//`` and the path, without
    credentials or port, in lower case. A URL too odd for this only lands in a share of
    its own, and its tenant's share still holds it."""
    netloc = url.partition("//")[2]
    for end in "/?#":
        netloc = netloc.partition(end)[0]
    netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc.partition("]")[0][1:].lower()
    return netloc.partition(":")[0].lower()


async def _prepare_ahead(
    client: _Client, requests: Sequence[TriggerRequest], settings: Settings
) -> dict[int, exchange.Prepared | exchange.Refused]:
    """Each HTTP request of a batch held ahead made ready, by index, yielding to the loop
    now and then so that what is due meanwhile is not held up."""
    first = min((r.not_before for r in requests if r.not_before is not None), default=None)
    if first is None or (first - utcnow()).total_seconds() < PREPARE_AHEAD_MIN_S:
        return {}
    prepared: dict[int, exchange.Prepared | exchange.Refused] = {}
    for i, request in enumerate(requests):
        if request.celery is None:
            prepared[i] = exchange.prepare(client.pool, request, settings)
            if len(prepared) % PREPARED_PER_TURN == 0:
                await asyncio.sleep(0)
    return prepared


async def _hold(request: TriggerRequest) -> None:
    """Until a request published ahead may be sent (at most ``MAX_HOLD_S``)."""
    if request.not_before is not None:
        hold_s = (request.not_before - utcnow()).total_seconds()
        if hold_s > 0:
            await asyncio.sleep(min(hold_s, MAX_HOLD_S))


def _flow_limit(
    request: TriggerRequest, settings: Settings
) -> tuple[str, host_limits.HostLimit] | None:
    """The host and budget this request must wait for; None when it has none (most)."""
    if request.rate_limit is None and not settings.host_limit_map:
        return None  # nothing is limited anywhere: no URL to parse for it
    host = _host_of(request)
    if host is None:  # exchange.make_attempt refuses it with the reason
        return None
    limit = host_limits.limit_for(host, settings.host_limit_map, request.rate_limit)
    return None if limit.unlimited else (host, limit)


async def _attempt(
    client: _Client,
    request: TriggerRequest,
    settings: Settings,
    limiter: flow_control.Limiter,
    host: str,
    limit: host_limits.HostLimit,
    prepared: exchange.Prepared | exchange.Refused | None = None,
) -> TriggerOutcome:
    """Flow control around an attempt to a limited host: wait for the host's slot (this
    coroutine only), send, hand the slot back, and pause the budget after a 429."""
    max_wait_s = settings.flow_control_max_wait_s
    if request.send_by is not None:
        max_wait_s = min(max_wait_s, (request.send_by - utcnow()).total_seconds())
    lease_s = _attempt_s(request) + flow_control.LEASE_MARGIN_S
    slot, waited_s, retry_in_s = await flow_control.acquire(
        limiter, host, limit, lease_s, max(0.0, max_wait_s)
    )
    if slot is None:
        return TriggerOutcome.throttled(
            request,
            utcnow(),
            f"not sent: its host's flow-control budget had no slot for {waited_s:.1f} s",
            retry_in_s,
            waited_s,
        )
    try:
        outcome = await _fire_one(client, request, settings, prepared=prepared)
    finally:
        await limiter.release(slot)
    if outcome.http_status == 429:
        await limiter.pause(host, outcome.retry_after_s or DEFAULT_429_PAUSE_S)
    if waited_s > 0:
        outcome = dataclasses.replace(outcome, flow_wait_s=waited_s)
    return outcome


async def _fire_batch(
    client: _Client,
    requests: Sequence[TriggerRequest],
    settings: Settings,
    limiter: flow_control.Limiter,
    clearances: Clearances | None = None,
) -> list[TriggerOutcome]:
    """Every request of one message, started in send-time order as slots free up; with
    ``clearances``, only those cleared (the others have no outcome).

    A request gets a task only once it holds a fast slot (or, to a limited host, to wait
    for that host's budget, so other hosts go on): a burst of 10,000 requests held in
    a worker costs a hundred waiting batches, not 10,000 waiting tasks (~2 KB each).
    """
    far_past = datetime.min.replace(tzinfo=UTC)
    order = sorted(range(len(requests)), key=lambda i: requests[i].not_before or far_past)
    prepared = await _prepare_ahead(client, requests, settings)
    tasks: list[asyncio.Future[TriggerOutcome] | TriggerOutcome] = []
    started: list[int] = []  # the index of each task's request
    cleared: set[int] = set()
    cleared_until = 0  # the positions of ``order`` before this one were asked about
    try:
        for position, i in enumerate(order):
            request = requests[i]
            await _hold(request)
            if clearances is not None:
                if position >= cleared_until:
                    cleared_until = _due_by(requests, order, position)
                    due = [requests[j] for j in order[position:cleared_until]]
                    cleared |= await clearances.ask(due)
                if request.execution_id not in cleared:
                    continue
            started.append(i)
            limited = _flow_limit(request, settings)
            ready = prepared.pop(i, None)
            if limited is not None:
                attempt = _attempt(client, request, settings, limiter, *limited, ready)
                tasks.append(asyncio.ensure_future(attempt))
                continue
            admitted = await client.lanes.admit(_lane_key(request), request.tenant)
            if admitted is None:  # its host or tenant holds its share: not sent
                tasks.append(_share_full(request))
                continue
            # The task owns the slot from here: it is scheduled before this batch's
            # next step, so it has started (and will release) by any cancellation.
            firing = _fire_one(client, request, settings, admitted, ready)
            tasks.append(asyncio.ensure_future(firing))

        outcomes = [task if isinstance(task, TriggerOutcome) else await task for task in tasks]
    finally:  # what is left when the batch itself is cancelled (the loop is going away)
        for task in tasks:
            if not isinstance(task, TriggerOutcome):
                task.cancel()
    by_index = dict(zip(started, outcomes, strict=True))
    return [by_index[i] for i in range(len(requests)) if i in by_index]


async def _fire_one(
    client: _Client,
    request: TriggerRequest,
    settings: Settings,
    admitted: InFlight | None = None,
    prepared: exchange.Prepared | exchange.Refused | None = None,
) -> TriggerOutcome:
    """The attempt in the lanes; ``admitted``: the fast slot the caller already holds;
    ``prepared``: its request made ready ahead."""
    if admitted is None:
        admitted = await client.lanes.admit(_lane_key(request), request.tenant)
        if admitted is None:
            return _share_full(request)
    if request.celery is not None:
        return await client.lanes.run(
            lambda: celery_publishing.send(client.publisher, request, settings.celery_brokers),
            admitted,
        )
    return await client.lanes.run(
        lambda: exchange.make_attempt(client.pool, request, settings, prepared), admitted
    )


# --------------------------------------------------------------------------- the loop


class _Runtime:
    """This process's event loop thread and its sessions (touched only on the loop)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.clients: dict[tuple[AddressPolicy, int, int, float, float, float], _Client] = {}
        self.limiters: dict[str | None, flow_control.Limiter] = {}
        self.clearances: dict[Clear, Clearances] = {}
        self.publisher = celery_publishing.Publisher()
        self.thread = threading.Thread(
            target=self._run, name=f"taskhub-trigger-loop-{self.pid}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _client(self, settings: Settings) -> _Client:
        # Runs on the loop thread without awaiting: check-and-create is atomic there.
        fast = settings.max_in_flight_per_process
        slow = settings.max_slow_in_flight_per_process
        fast_share = settings.fast_lane_share_percent
        slow_share = settings.slow_lane_share_percent
        key = (settings.address_policy, fast, slow, settings.slow_after_s, fast_share, slow_share)
        client = self.clients.get(key)
        if client is None:
            pool = exchange.new_pool(settings, fast + slow)
            lanes = Lanes(fast, slow, settings.slow_after_s, fast_share, slow_share)
            client = self.clients[key] = _Client(pool, lanes, self.publisher)
        return client

    def _limiter(self, settings: Settings) -> flow_control.Limiter:
        # On the loop thread, like the sessions: the Redis client is bound to this loop.
        url = settings.flow_control_url
        limiter = self.limiters.get(url)
        if limiter is None:
            limiter = self.limiters[url] = (
                flow_control.RedisLimiter(url) if url else flow_control.LocalLimiter()
            )
        return limiter

    async def run_batch(
        self,
        requests: Sequence[TriggerRequest],
        settings: Settings,
        limiter: flow_control.Limiter | None = None,
        clear: Clear | None = None,
    ) -> list[TriggerOutcome]:
        client = self._client(settings)
        clearances = None
        if clear is not None:
            clearances = self.clearances.get(clear)
            if clearances is None:
                clearances = self.clearances[clear] = Clearances(clear)
        return await _fire_batch(
            client, requests, settings, limiter or self._limiter(settings), clearances
        )

    async def aclose(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.pool.close()
        self.publisher.close()
        limiters, self.limiters = list(self.limiters.values()), {}
        for limiter in limiters:
            if isinstance(limiter, flow_control.RedisLimiter):
                await limiter.aclose()

    def call(self, make: Callable[[], Awaitable[_T]]) -> _T:
        """Run a coroutine on the loop from another thread and wait for its result."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("taskhub.engine.firing.fire() cannot be called from its own loop")

        async def run() -> _T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        while True:
            try:
                return future.result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                if not self.thread.is_alive() or self.loop.is_closed():
                    future.cancel()
                    raise RuntimeError("taskhub's trigger loop thread stopped") from None


_lock = threading.Lock()
_runtime: _Runtime | None = None
# Runtimes inherited through fork: their thread does not exist in this process. They are
# kept referenced (never collected) so no finalizer touches the parent's sockets.
_inherited: list[_Runtime] = []


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the moment of fork


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _get_runtime() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.pid != os.getpid():
            _inherited.append(_runtime)
            _runtime = None
        if _runtime is None:
            _runtime = _Runtime()
        return _runtime


def fire(
    requests: Sequence[TriggerRequest],
    settings: Settings,
    limiter: flow_control.Limiter | None = None,
    clear: Clear | None = None,
) -> list[TriggerOutcome]:
    """Make every attempt concurrently; one outcome per request, in the same order
    (with ``clear``: per request it cleared, see ``taskhub.engine.clearances``).

    Synchronous and thread-safe. Never raises for anything a request or a target can
    do; only programming errors raise. ``limiter`` replaces the process's flow-control
    limiter (tests); by default it is Redis-backed when ``settings.flow_control_url``
    is set, per process otherwise. Celery targets go to ``settings.celery_brokers``.
    """
    global _in_flight
    batch = list(requests)
    if not batch:
        return []
    runtime = _get_runtime()
    with _in_flight_lock:
        _in_flight += len(batch)
    try:
        return runtime.call(lambda: runtime.run_batch(batch, settings, limiter, clear))
    finally:
        with _in_flight_lock:
            _in_flight -= len(batch)


_in_flight = 0
_in_flight_lock = threading.Lock()


def in_flight() -> int:
    """Requests handed to :func:`fire` in this process and not yet ended (the heartbeat
    reports it; waiting for a slot counts as in flight)."""
    return _in_flight


def shutdown(timeout_s: float = 5.0) -> None:
    """Close this process's sessions and stop its loop (a later :func:`fire` restarts them)."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is None or runtime.pid != os.getpid():
        return
    try:
        asyncio.run_coroutine_threadsafe(runtime.aclose(), runtime.loop).result(timeout_s)
    except Exception:
        log.warning("closing the trigger sessions failed", exc_info=True)
    runtime.loop.call_soon_threadsafe(runtime.loop.stop)
    runtime.thread.join(timeout_s)
    if not runtime.thread.is_alive():
        runtime.loop.close()


atexit.register(shutdown)
