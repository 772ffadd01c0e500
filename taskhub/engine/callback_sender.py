"""The callback sender: posts the deliveries the write-back wrote down.

A thread of every process that runs the staging loop. Each pass (every
:data:`~taskhub.core.callbacks.POLL_INTERVAL_S`) takes up to
:data:`~taskhub.core.callbacks.BATCH_SIZE` due deliveries with a lease
(``callback_queries.take_due``), posts each (at once, one thread each) through
``exchange.make_attempt_blocking`` (the SSRF guard, the tenant's signing secrets of
both schemes, the excerpt scrubbed of them), and records what each attempt did
(``core.callbacks.judge``): delivered, pending again after its backoff, or failed.

Two senders never post one delivery twice within a lease. A sender that dies between
posting and recording leaves its delivery pending with its lease: it is posted again
once the lease has ended, so a callback receiver sees at most one repeat per lease,
each with the same ``Idempotency-Key``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine, RowMapping

from taskhub.core import callbacks
from taskhub.core.messages import TriggerOutcome, TriggerRequest
from taskhub.core.settings import Settings
from taskhub.core.statuses import CallbackStatus
from taskhub.db import callback_queries, key_queries
from taskhub.db.rows import CallbackAttempt
from taskhub.engine import exchange
from taskhub.engine.once_threads import OnceThread

log = logging.getLogger(__name__)

#: One attempt: (request, settings) to its outcome. ``exchange.make_attempt_blocking``.
Send = Callable[[TriggerRequest, Settings], TriggerOutcome]


def request_for(
    delivery: RowMapping | Mapping[str, Any], secrets: Mapping[str, Sequence[str]]
) -> TriggerRequest:
    """The POST of one taken delivery (``attempts`` its attempt's number), signed with
    ``secrets`` (its tenant's sealed secrets by scheme)."""
    document = delivery["document"]
    return TriggerRequest(
        execution_id=delivery["execution_id"],
        attempt=delivery["attempts"],
        task_id=str(delivery["task_id"]),
        scheduled_for=datetime.fromisoformat(document["scheduled_for"]),
        idempotency_key=callbacks.idempotency_key(delivery["id"]),
        url=delivery["url"],
        method="POST",
        headers={"Content-Type": "application/json"},
        # In the documented order (PostgreSQL's JSONB keeps no order of its own).
        body=json.dumps({key: document[key] for key in callbacks.DOCUMENT_KEYS}),
        timeout_s=callbacks.TIMEOUT_S,
        sealed_signing_secrets=tuple(secrets.get("taskhub", ())),
        sealed_webhook_secrets=tuple(secrets.get("standard-webhooks", ())),
        tenant=delivery["tenant"],
    )


def attempt_result(
    delivery: RowMapping | Mapping[str, Any], outcome: TriggerOutcome, now: datetime
) -> CallbackAttempt:
    """What ``outcome`` leaves the delivery as, for a pass that took it at ``now`` (the
    sender's clock: its backoff counts from the attempt's end)."""
    verdict = callbacks.judge(delivery["attempts"], outcome.http_status, outcome.error_kind)
    error = outcome.error
    if error is None and verdict.status is not CallbackStatus.DELIVERED:
        error = f"HTTP {outcome.http_status}"
    at = now
    return CallbackAttempt(
        id=delivery["id"],
        attempt=delivery["attempts"],
        status=verdict.status.value,
        next_attempt_at=None
        if verdict.retry_in_s is None
        else at + timedelta(milliseconds=outcome.duration_ms, seconds=verdict.retry_in_s),
        http_status=outcome.http_status,
        error=error,
        at=at,
    )


def send_due(
    engine: Engine,
    settings: Settings,
    now: datetime,
    send: Send = exchange.make_attempt_blocking,
    pool: ThreadPoolExecutor | None = None,
) -> int:
    """One pass: take what is due, post it, record it. Returns how many were posted."""
    with engine.begin() as conn:
        taken = callback_queries.take_due(conn, now, callbacks.LEASE_S, callbacks.BATCH_SIZE)
        secrets = key_queries.active_sealed_signing_secrets(conn, (d["tenant"] for d in taken))
    if not taken:
        return 0

    def post(delivery: RowMapping) -> CallbackAttempt:
        outcome = send(request_for(delivery, secrets.get(delivery["tenant"], {})), settings)
        return attempt_result(delivery, outcome, now)

    results = list(pool.map(post, taken)) if pool is not None else [post(d) for d in taken]
    with engine.begin() as conn:
        for delivery, result in zip(taken, results, strict=True):
            recorded = callback_queries.record_attempt(conn, result)
            _log(delivery, result, recorded)
    return len(taken)


def _log(delivery: RowMapping | Mapping[str, Any], result: CallbackAttempt, recorded: bool) -> None:
    level = logging.INFO if result.status == CallbackStatus.DELIVERED.value else logging.WARNING
    log.log(
        level,
        "callback of execution %s (task %s), attempt %d: %s (%s)%s",
        delivery["execution_id"],
        delivery["task_id"],
        result.attempt,
        result.status,
        result.error or f"HTTP {result.http_status}",
        "" if recorded else "; not recorded: taken again after its lease",
        extra={
            "task_id": str(delivery["task_id"]),
            "execution_id": delivery["execution_id"],
            "callback_status": result.status,
            "http_status": result.http_status,
        },
    )


def run(
    engine: Engine,
    settings: Settings,
    now: Callable[[], datetime],
    stop: threading.Event,
    send: Send = exchange.make_attempt_blocking,
) -> None:
    """Until ``stop`` is set: a pass every poll interval, at once again after a full batch."""
    with ThreadPoolExecutor(callbacks.BATCH_SIZE, thread_name_prefix="taskhub-callback") as pool:
        wait_s = 0.0
        while not stop.wait(wait_s):
            try:
                sent = send_due(engine, settings, now(), send, pool)
            except Exception:  # the database is away: the next pass tries again
                log.warning("callback pass failed; retrying", exc_info=True)
                sent = 0
            wait_s = 0.0 if sent >= callbacks.BATCH_SIZE else callbacks.POLL_INTERVAL_S


_thread = OnceThread("taskhub-callbacks")


def start(engine: Engine, settings: Settings, now: Callable[[], datetime]) -> threading.Event:
    """Start this process's sender (once); returns the event that stops it."""
    return _thread.start(lambda stop: run(engine, settings, now, stop))
