"""The Celery app (``celery -A taskhub ...``) and its three thin tasks.

Queues: ``taskhub.discovery`` (the tick), ``taskhub.triggers`` (HTTP calls),
``taskhub.state`` (chord callbacks and Celery's own chord bookkeeping). A plain
``celery -A taskhub worker`` consumes all three; production splits them (README).
"""

from __future__ import annotations

import gc
import logging
import random
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Final

from celery import Celery, signals, states
from celery import _state as celery_state
from celery.schedules import crontab
from kombu import Queue
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from taskhub.core.clock import utcnow
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings, load
from taskhub.db import engines
from taskhub.engine import (
    callback_sender,
    celery_results,
    discovery,
    firing,
    holders,
    notifier,
    retention,
    staging,
    withdrawal,
    writeback,
)
from taskhub.engine.fanout import build_chords
from taskhub.observability import heartbeat, logs
from taskhub.worker import embedded_broker
from taskhub.worker.queues import (
    ALL_QUEUES,
    DISCOVERY_QUEUE,
    FIRE_TRIGGERS_TASK,
    PRUNE_TASK,
    RECORD_CHUNK_TASK,
    STATE_QUEUE,
    TICK_TASK,
    TRIGGER_QUEUE,
)

log = logging.getLogger(__name__)


settings = load()


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Aligned to the minute by default; a stale tick expires instead of piling up."""
    schedule: Any = (
        crontab(minute="*")
        if settings.tick_seconds == 60
        else timedelta(seconds=settings.tick_seconds)
    )
    return {
        "taskhub-tick": {
            "task": TICK_TASK,
            "schedule": schedule,
            "options": {"expires": max(1.0, settings.tick_seconds * 0.9)},
        },
        # History retention: one prune pass per interval, on the state queue; a pass
        # that finds the lease held returns at once, and a stale message expires.
        "taskhub-prune-history": {
            "task": PRUNE_TASK,
            "schedule": timedelta(seconds=settings.retention.interval_s),
            "options": {"expires": max(1.0, settings.retention.interval_s * 0.9)},
        },
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_queues": [Queue(name) for name in ALL_QUEUES],
        "task_default_queue": STATE_QUEUE,
        "task_routes": {
            TICK_TASK: {"queue": DISCOVERY_QUEUE},
            FIRE_TRIGGERS_TASK: {"queue": TRIGGER_QUEUE},
            RECORD_CHUNK_TASK: {"queue": STATE_QUEUE},
            PRUNE_TASK: {"queue": STATE_QUEUE},
            "celery.chord_unlock": {"queue": STATE_QUEUE},
            "celery.backend_cleanup": {"queue": STATE_QUEUE},
        },
        # At-least-once, never held: a message is acknowledged after its task ran, and a
        # worker reserves one at a time so nothing waits in a prefetch buffer long enough
        # for a visibility timeout to hand it out twice.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "result_expires": settings.result_expires_s,
        "beat_schedule": beat_schedule(settings),
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": True,
        "worker_send_task_events": not settings.is_sqs_broker,
        # No "task-sent" event per published message: it doubles the broker writes of a
        # fan-out (one event publish per trigger message) and Flower needs none of it:
        # it lists tasks from the workers' received/started/succeeded events.
        "task_send_sent_event": False,
    }
    if settings.is_sqs_broker:
        # SQS has no broadcast: remote control and events cannot work there (Flower is
        # blind on SQS; taskhub's own /metrics is the monitoring).
        config["worker_enable_remote_control"] = False
        config["broker_transport_options"] = sqs_transport_options(settings)
    if settings.is_embedded_broker:
        folder = (settings.data_dir / "broker").resolve()
        control = (settings.data_dir / "broker-control").resolve()
        for path in (folder, control, settings.data_dir / "results"):
            path.mkdir(parents=True, exist_ok=True)
        # kombu's filesystem transport, with a message that appears only once whole.
        config["broker_transport"] = embedded_broker.TRANSPORT
        config["broker_transport_options"] = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(control),
            "polling_interval": 0.1,
        }
        config["worker_enable_remote_control"] = False
    return config


def sqs_queue_name(queue: str) -> str:
    """The SQS name of a Celery queue (SQS names allow no dots), as kombu derives it."""
    return queue.replace(".", "-")


def sqs_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's SQS transport, as the README's AWS section explains.

    The visibility timeout must outlast the longest time a worker holds an unacknowledged
    message (``task_acks_late`` with a prefetch of one: one trigger message's run, at most
    the longest ``timeout_seconds`` plus its queueing in the process), or SQS hands it to a
    second worker. The database's dispatch lease, not SQS, is what re-sends lost work:
    it runs out first, and a send that another message took meanwhile is not fired.
    Long polls are short because one worker polls its queues in turn and a long wait on
    an empty queue would delay the others.
    """
    options: dict[str, Any] = {
        "visibility_timeout": settings.sqs_visibility_timeout_s,
        "wait_time_seconds": settings.sqs_wait_time_s,
        "polling_interval": 0.2 if settings.sqs_wait_time_s == 0 else 0,
    }
    if settings.sqs_region:
        options["region"] = settings.sqs_region
    if settings.sqs_queue_url_prefix:
        # Queues made by infrastructure as code (deploy/aws): kombu never creates or
        # lists queues, and needs no permission to.
        options["predefined_queues"] = {
            sqs_queue_name(queue): {"url": settings.sqs_queue_url_prefix + sqs_queue_name(queue)}
            for queue in ALL_QUEUES
        }
    return options


app = Celery("taskhub")
app.conf.update(celery_config(settings))
# "Task … succeeded in …s: <result>": results hold what targets answered; never logged.
logs.hide_results(logging.getLogger("celery.app.trace"))


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    engines.dispose_after_fork()
    heartbeat.reset_after_fork()
    _start_heartbeat()
    exempt_startup_objects_from_gc()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _setup_logs(logger: logging.Logger, **_: Any) -> None:
    logs.configure(logger, settings.log_format)


@signals.worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    heartbeat.set_node(str(getattr(sender, "hostname", None) or "worker"))


@signals.worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    # The worker's main process: it runs the tasks with the threads pool, and with
    # prefork its memory is part of the worker's all the same.
    _start_heartbeat()
    if consumes_discovery():
        engine = engines.get_engine(settings.database_url)
        staging.start(engine, settings, publish, utcnow, stored_outcomes)
        # Tracked Celery tasks' results: read here, never on a trigger thread.
        celery_results.start(engine, settings.celery_result_backends, utcnow)
        # Tasks' callbacks, from the outbox the write-back fills.
        callback_sender.start(engine, settings, utcnow)
        notifier.start(engine, settings, utcnow)  # grouped notifications, beside staging
    exempt_startup_objects_from_gc()


#: The cyclic garbage collector's thresholds in a worker (Python's are 700, 10, 10): a
#: young collection every 50,000 allocations, not every 700. A trigger worker holding a
#: burst keeps its requests, their prepared sends and their futures alive until they are
#: sent, so young collections scanned and promoted them over and over to free almost
#: nothing: with 50,000 requests held, the fire path spent a quarter less CPU per request
#: with these (measured with the fire path alone, 153 against 116 µs).
GC_THRESHOLDS: Final = (50_000, 20, 100)


def exempt_startup_objects_from_gc() -> None:
    """Take what is alive once a worker is ready (Celery, kombu, SQLAlchemy and the app:
    over 100,000 objects that live as long as the process) out of the cyclic garbage
    collector's reach, and collect less often (``GC_THRESHOLDS``). Every full collection
    walked them: ~90 ms, at least one per 10,000-occurrence tick, a sixth of discovery's
    CPU; ~4 ms after (measured)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def consumes_discovery() -> bool:
    """Whether this worker consumes the tick's queue (no ``-Q``: every queue)."""
    consumed = getattr(app.amqp.queues, "consume_from", None)
    return not consumed or DISCOVERY_QUEUE in consumed


@signals.beat_init.connect
def _on_beat_init(**_: Any) -> None:
    heartbeat.set_node("beat@" + socket.gethostname())
    _start_heartbeat()
    # Beat is the clock (the staging loop claims only while ticks are recent): tick once
    # at start, so scheduling starts now, not at the next minute. Repeating is harmless.
    request_tick()


def _start_heartbeat() -> None:
    engine = engines.get_engine(settings.database_url)
    heartbeat.start(engine, heartbeat.role(), firing.in_flight)


_publishing = 0  # threads inside _joins_denied
_restore = False  # the flag's value before the first of them
_publishing_lock = threading.Lock()


@contextmanager
def _joins_denied() -> Iterator[None]:
    """Celery's ``denied_join_result`` for every thread publishing at once: it sets and
    restores one process-wide flag, so a thread ending its publish would clear it under
    another (the staging loop and a tick in one worker). The first in sets it, the last
    out restores it."""
    global _publishing, _restore
    with _publishing_lock:
        if _publishing == 0:
            _restore = celery_state.task_join_will_block()  # type: ignore[attr-defined]
            celery_state._set_task_join_will_block(True)  # type: ignore[attr-defined]
        _publishing += 1
    try:
        yield
    finally:
        with _publishing_lock:
            _publishing -= 1
            if _publishing == 0:
                celery_state._set_task_join_will_block(_restore)  # type: ignore[attr-defined]


def publish(requests: Sequence[TriggerRequest]) -> None:
    """Nothing here joins a header's result (the chord's counter does): outside a threads
    or prefork worker (gevent, the benchmark) Celery's Redis backend would otherwise
    subscribe to every message's result to let it be joined, and unsubscribe again."""
    with _joins_denied():
        for canvas in build_chords(requests, settings, fire_triggers, record_chunk):
            canvas.apply_async()


def request_tick() -> bool:
    """Ask for a tick now (after run-now or a redrive), so the work goes out without
    waiting for beat. Best effort: if the broker is unreachable, beat's tick finds the
    work in the database anyway. Returns whether the request was sent."""
    try:
        tick.apply_async(expires=max(1.0, settings.tick_seconds * 0.9), retry=False)
    except Exception:
        log.warning("could not request a tick; the next scheduled tick will do", exc_info=True)
        return False
    return True


@app.task(name=TICK_TASK, ignore_result=True)
def tick() -> dict[str, Any]:
    engine = engines.get_engine(settings.database_url)
    return asdict(discovery.run_tick(engine, settings, publish, utcnow, stored_outcomes))


def stored_outcomes(message_ids: Sequence[str]) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    """The outcomes the result backend holds for these trigger messages (a chord
    header's result is stored under its message's id), for those that have ended."""
    found: dict[str, Sequence[Mapping[str, Any]]] = {}
    for message_id in message_ids:
        meta = app.backend.get_task_meta(message_id, cache=False)
        result = meta.get("result")
        if meta.get("status") == states.SUCCESS and isinstance(result, list):
            found[message_id] = result
    return found


@app.task(name=FIRE_TRIGGERS_TASK, ignore_result=False)
def fire_triggers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chord header: it must return, never raise, whatever the targets do.

    The message takes its sends as it starts (``holders.start``): one that another
    message took, or that has ended, is not fired and returns no outcome.
    Nor is one the database does not clear at its send time (``withdrawal``): its task
    was paused, changed or deleted meanwhile.
    """
    now = utcnow()
    message_id = fire_triggers.request.id or str(uuid.uuid4())
    requests = [TriggerRequest.from_message(m, message_id) for m in messages]
    engine = engines.get_engine(settings.database_url)
    held = _take(engine, requests, message_id, now)
    fresh = held if held is not None else _within_send_by(requests, now)
    if len(fresh) < len(requests):
        log.info(
            "not firing %d requests: sent by another message, ended, or late",
            len(requests) - len(fresh),
        )
    with holders.renewing(engine, message_id, held or [], settings.dispatch_lease_s, _lease_of):
        outcomes = firing.fire(fresh, settings, clear=clear_to_fire)
    if len(outcomes) < len(fresh):
        log.info("not firing %d requests not cleared to send", len(fresh) - len(outcomes))
    return [outcome.to_message() for outcome in outcomes]


def _lease_of(now: datetime, timeout_s: float) -> datetime:
    return discovery.lease_until(now, timeout_s, settings)


def _take(
    engine: Engine, requests: list[TriggerRequest], message_id: str, now: datetime
) -> list[TriggerRequest] | None:
    """The requests this message may fire, each lease counted again from its start;
    None if the database cannot be reached."""
    leases = [_lease_of(max(now, r.not_before or now), r.timeout_s) for r in requests]
    try:
        return holders.start(engine, requests, leases, message_id, now)
    except SQLAlchemyError as error:
        log.warning("could not take this message's sends (%s)", error.__class__.__name__)
        return None


def _within_send_by(requests: list[TriggerRequest], now: datetime) -> list[TriggerRequest]:
    """Without the database, only what was received before its ``send_by``: after it,
    the lease may have run out and the database may have sent it again."""
    return [r for r in requests if r.send_by is None or r.send_by > now]


def clear_to_fire(requests: Sequence[TriggerRequest]) -> set[int]:
    """``firing.fire``'s clearance: what the database still wants sent. If the database
    cannot be reached, everything is: as when a message cannot take its sends
    (``_take``), a database outage must not stop what is already on the broker. Except a
    request under an overlap policy (``skip``, ``buffer_one``): only the database can
    say whether its task's previous execution still runs, so it waits for its lease to
    publish it again."""
    engine = engines.get_engine(settings.database_url)
    try:
        return withdrawal.clear_to_fire(engine, requests, utcnow())
    except SQLAlchemyError as error:
        log.warning(
            "could not clear %d requests (%s); sending those of tasks without an overlap policy",
            len(requests),
            error.__class__.__name__,
        )
        return {r.execution_id for r in requests if r.overlap is None}


@app.task(name=RECORD_CHUNK_TASK, ignore_result=True)
def record_chunk(results: list[list[dict[str, Any]]], chunk_id: str) -> dict[str, Any]:
    outcomes = [TriggerOutcome.from_message(m) for part in results for m in part]
    engine = engines.get_engine(settings.database_url)
    report = writeback.record_outcomes(engine, outcomes, settings, utcnow(), random.random)
    log.info("chunk %s recorded: %s", chunk_id, report)
    return asdict(report)


@app.task(name=PRUNE_TASK, ignore_result=True)
def prune_history() -> dict[str, Any]:
    """One prune pass, stopped after at most one interval so it never holds a state
    worker's thread for long: what is left goes in the next pass."""
    engine = engines.get_engine(settings.database_url)
    report = retention.run_pass(
        engine, settings.retention, utcnow, time_budget_s=settings.retention.interval_s * 0.9
    )
    return asdict(report)
