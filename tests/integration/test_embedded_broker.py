"""The embedded broker (``filesystem://``) as the Celery app is configured for it: a
worker polling its folder never takes a message that is still being written.

The race is a few microseconds wide (a publisher between creating a message's file and
writing it, a worker's poll landing there), so chance alone finds it rarely (twice in
20,000 messages, measured). Here the consumer polls at every file-system step the
publisher takes, seen through Python's audit hooks (``open``, ``fcntl.flock``,
``os.rename``, ...): each moment a real worker's poll could land on is tried, with the
real transport on a real folder.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from celery import Celery
from kombu.transport import virtual

from taskhub.core.settings import load
from taskhub.worker.celery_app import celery_config
from taskhub.worker.queues import TRIGGER_QUEUE

QUEUE = TRIGGER_QUEUE


class _PollEveryStep:
    """An audit hook (they cannot be removed: it stays, disarmed) that, while armed,
    runs ``poll`` at each audited event of the arming thread, never within itself."""

    def __init__(self) -> None:
        self.armed_in: int | None = None
        self.poll: Any = None
        self.polling = False
        self.seen: list[tuple[str, object]] = []
        sys.addaudithook(self)

    def __call__(self, event: str, _args: tuple[Any, ...]) -> None:
        if self.armed_in != threading.get_ident() or self.polling:
            return
        self.polling = True
        try:
            self.seen.append((event, self.poll()))
        except Exception as error:  # what a worker's consumer loop would have raised
            self.seen.append((event, error))
        finally:
            self.polling = False

    @contextmanager
    def armed(self, poll: Any) -> Iterator[list[tuple[str, object]]]:
        self.poll, self.seen, self.armed_in = poll, [], threading.get_ident()
        try:
            yield self.seen
        finally:
            self.armed_in = None


_hook: _PollEveryStep | None = None


def _poll_every_step() -> _PollEveryStep:
    global _hook
    if _hook is None:
        _hook = _PollEveryStep()
    return _hook


def _embedded_app(data_dir: Path) -> Celery:
    settings = load({"TASKHUB_DATA_DIR": str(data_dir)})
    assert settings.is_embedded_broker
    app = Celery("embedded-broker-test")
    app.conf.update(celery_config(settings))
    return app


def test_a_message_is_taken_only_once_it_is_whole(tmp_path: Path) -> None:
    app = _embedded_app(tmp_path)
    body = {"requests": ["x" * 5000] * 20}  # a trigger message's size
    with app.connection_for_write() as publisher, app.connection_for_write() as consumer:
        queue = publisher.SimpleQueue(QUEUE)
        channel = cast(virtual.Channel, consumer.default_channel)
        channel.queue_declare(QUEUE)

        def poll() -> object:
            message = channel.basic_get(QUEUE, no_ack=True)
            return None if message is None else message.decode()

        with _poll_every_step().armed(poll) as seen:
            queue.put(body)

        events = [event for event, _ in seen]
        # The hook saw the publish write its file: the polls ran inside the write.
        assert "open" in events, events
        taken = [(event, got) for event, got in seen if got is not None]
        assert taken == [], f"a poll took the message while it was being written: {taken}"
        message = channel.basic_get(QUEUE, no_ack=True)
        assert message is not None, "the message was lost"
        assert message.decode() == body
        assert channel.basic_get(QUEUE, no_ack=True) is None
        queue.close()
