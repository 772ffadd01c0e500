"""Discovery's publishing thread: one per process, kept across passes, new after fork."""

from __future__ import annotations

import multiprocessing
import threading

from taskhub import discovery


def _thread_ident() -> int:
    return threading.get_ident()


def test_passes_share_one_long_lived_publishing_thread() -> None:
    first = discovery._publishing_thread().submit(_thread_ident).result()
    again = discovery._publishing_thread().submit(_thread_ident).result()
    assert first == again != threading.get_ident()


def _child_publishes(queue: multiprocessing.Queue[bool]) -> None:
    fresh = discovery._publishing_pool is None
    works = discovery._publishing_thread().submit(lambda: True).result(timeout=5)
    queue.put(fresh and works)


def test_a_forked_child_starts_its_own_publishing_thread() -> None:
    discovery._publishing_thread().submit(_thread_ident).result()  # the parent has one
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = context.Queue()
    child = context.Process(target=_child_publishes, args=(queue,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True
