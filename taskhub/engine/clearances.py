"""Clearance: a request published ahead is fired only if the database still wants it.

With a ``clear`` function (``withdrawal.clear_to_fire``), a request is fired only if the
database clears it when its fire time has come: one call for every request of a batch
due by then, run off the loop, and shared with the other batches of the process that ask
meanwhile (:class:`Clearances`). A request not cleared (its task was paused, changed or
deleted since it was published, or the database could not be asked) is dropped and has
no outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Final

from taskhub.core.messages import TriggerRequest

log = logging.getLogger(__name__)

#: The longest a batch waits for its clearance before it drops what it asked about.
CLEAR_TIMEOUT_S: Final = 10.0
#: The most requests one call clears. A burst's 10,000 in one statement kept every one
#: of them waiting half a second; in calls of this many, the first go out after ~50 ms
#: while the next call runs, and the database still clears faster than the loop sends.
CLEAR_MAX_REQUESTS: Final = 1000

#: Which execution ids of these requests may be fired now (``withdrawal.clear_to_fire``).
Clear = Callable[[Sequence[TriggerRequest]], Collection[int]]
#: One batch's question: its requests, and where its answer goes.
_Asked = tuple[list[TriggerRequest], "asyncio.Future[set[int]]"]


class Clearances:
    """The clearances this process's batches ask for, asked of ``clear`` together.

    Every message held for one fire time wakes at that instant; asked one by one, a
    burst of 10,000 in 40 messages costs 40 statements at the moment the targets should
    be called, queued on the loop's few executor threads. Here the batches that ask
    while a call is running wait for it to end and are asked about together, in calls of
    at most ``CLEAR_MAX_REQUESTS``, one after the other: a fire time of 10,000 costs ten
    statements per process, and the first requests go out after the first. Lives on the
    loop thread.
    """

    def __init__(self, clear: Clear) -> None:
        self.clear = clear
        self.waiting: list[_Asked] = []
        # The running call's task, kept referenced (the loop holds tasks only weakly).
        self.asking: asyncio.Task[None] | None = None

    async def ask(self, requests: Sequence[TriggerRequest]) -> set[int]:
        """What ``clear`` lets go of ``requests``; nothing if it fails or does not answer
        within ``CLEAR_TIMEOUT_S``."""
        answer: asyncio.Future[set[int]] = asyncio.get_running_loop().create_future()
        self.waiting.append((list(requests), answer))
        if self.asking is None:
            self.asking = asyncio.get_running_loop().create_task(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(answer), CLEAR_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "no clearance for %d requests within %.0f s; not firing them (their leases"
                " publish them again)",
                len(requests),
                CLEAR_TIMEOUT_S,
            )
            return set()

    async def _run(self) -> None:
        try:
            # A turn later, not now: the batches that wake in this same loop turn (their
            # steps are queued behind this task's first one) join this call.
            await asyncio.sleep(0)
            while self.waiting:
                await self._ask_once()
        finally:
            self.asking = None

    async def _ask_once(self) -> None:
        """One call for what waits, up to ``CLEAR_MAX_REQUESTS`` (in the order asked), but
        never two requests of one execution expecting different attempts (the call
        answers per execution): those wait for the next."""
        expected: dict[int, int] = {}
        taken: list[_Asked] = []
        later: list[_Asked] = []
        for requests, answer in self.waiting:
            full = bool(taken) and len(expected) + len(requests) > CLEAR_MAX_REQUESTS
            if full or any(expected.get(r.execution_id, r.attempt) != r.attempt for r in requests):
                later.append((requests, answer))
                continue
            expected.update((r.execution_id, r.attempt) for r in requests)
            taken.append((requests, answer))
        self.waiting = later
        asked = {r.execution_id: r for requests, _ in taken for r in requests}
        loop = asyncio.get_running_loop()
        try:
            cleared = set(await loop.run_in_executor(None, self.clear, list(asked.values())))
        except Exception:
            log.warning(
                "could not clear %d requests to fire; not firing them (their leases publish"
                " them again)",
                len(asked),
                exc_info=True,
            )
            cleared = set()
        for requests, answer in taken:
            if not answer.done():
                answer.set_result({r.execution_id for r in requests} & cleared)
