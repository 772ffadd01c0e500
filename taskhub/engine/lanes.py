"""This process's slots for attempts in flight: the fast and slow lanes.

Attempts in flight are bounded per process in two lanes (:class:`Lanes`):
``max_in_flight_per_process`` young ones, and ``max_slow_in_flight_per_process`` more
that have run longer than ``slow_after_s``, so hanging targets never hold the slots a
burst needs. Each target host and each tenant holds at most a share of either lane
(``lane_shares``); a request past its share is not sent, its outcome is ``throttled``
(the database sends it again later), so one tenant's hung targets never delay
another's. An attempt's clock (``started_at``, ``duration_ms``, the ``timeout_s``
deadline) starts when it gets a slot, so waiting behind other targets is never blamed
on this target.

Lives on the trigger loop's thread (``taskhub.engine.firing``): no locks.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskhub.engine import lane_shares

_T = TypeVar("_T")

#: An attempt in the lanes: its lane, and its host's and tenant's holdings.
InFlight = lane_shares.Place


class Lanes:
    """This process's slots for attempts in flight, in two lanes.

    An attempt starts in the fast lane (``max_in_flight`` slots). One still running
    after ``slow_after_s`` moves to the slow lane (``max_slow_in_flight`` slots) and
    hands its fast slot to the next request. Why two: a burst to fast targets wants few
    connections at once (each costs more than a request), while slow and hanging
    targets want many slots that cost nothing but memory (~25 KB each). One limit
    cannot serve both; with two, hung targets wait out their timeouts in the slow lane
    and never hold the slots a burst needs. A full slow lane keeps an attempt in the
    fast lane, so the total stays bounded.

    Each host and each tenant holds at most its share of either lane
    (``lane_shares``): a request whose host or tenant has no room is refused at once
    (:meth:`admit` returns None, the caller ends it ``throttled``), so one tenant's hung
    targets never hold the slots another tenant's requests need. Shares of 100 % switch
    this off: then every request waits for a slot, whoever holds the others.
    """

    def __init__(
        self,
        fast: int,
        slow: int,
        slow_after_s: float,
        fast_share_percent: float = 100.0,
        slow_share_percent: float = 100.0,
    ) -> None:
        self.fast = asyncio.Semaphore(fast)
        self.slow_free = slow
        self.slow_allowed = slow > 0
        self.slow_after_s = slow_after_s
        self.shares = (
            lane_shares.Shares(fast, slow, fast_share_percent, slow_share_percent)
            if min(fast_share_percent, slow_share_percent) < 100
            else None
        )
        #: Attempts past ``slow_after_s`` waiting for a slow slot, oldest first.
        self.to_promote: collections.deque[InFlight] = collections.deque()
        #: Set when a fast slot frees or an attempt moves on or gets stuck (for WAIT).
        self._changed: asyncio.Future[None] | None = None

    async def admit(self, host: str, tenant: str | None) -> InFlight | None:
        """Take a fast slot and a place in the host's and tenant's shares, to hand to
        :meth:`run`; None if the host or tenant has no room (not sent: ``throttled``).

        Waits for a fast slot, as every request does when the lane is full, and at most
        ``slow_after_s`` more while the host's or tenant's own fast slots are held by
        young attempts (they end or move on by then)."""
        shares = self.shares
        if shares is None:
            await self.fast.acquire()
            return InFlight(None, None)
        deadline: float | None = None
        while True:
            verdict = shares.verdict(host, tenant, self.slow_free)
            if verdict == lane_shares.ADMIT:
                if not self.fast.locked():  # returns at once: nothing runs in between
                    await self.fast.acquire()
                    return shares.take(host, tenant)
                await self.fast.acquire()
                verdict = shares.verdict(host, tenant, self.slow_free)
                if verdict == lane_shares.ADMIT:
                    return shares.take(host, tenant)
                self._release_fast()
            if verdict == lane_shares.REFUSE:
                return None
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.slow_after_s
            elif loop.time() >= deadline:
                return None
            await self._wait_for_change(deadline)

    async def _wait_for_change(self, deadline: float) -> None:
        changed = self._changed
        if changed is None or changed.done():
            changed = self._changed = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(changed)
        except TimeoutError:
            pass

    def _wake(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            if not changed.done():
                changed.set_result(None)

    def _release_fast(self) -> None:
        self.fast.release()
        self._wake()

    async def run(self, work: Callable[[], Awaitable[_T]], attempt: InFlight) -> _T:
        """Run ``work`` for an attempt :meth:`admit` gave a fast slot.

        The move to the slow lane is a timer callback on the loop, not a second task:
        this runs once per request, on the one thread that fires them all.
        """
        timer = None
        if self.slow_allowed or self.shares is not None:  # shares count stuck attempts
            timer = asyncio.get_running_loop().call_later(self.slow_after_s, self._promote, attempt)
        try:
            return await work()
        finally:
            if timer is not None:
                timer.cancel()
            attempt.ended = True
            if self.shares is not None:
                self.shares.ended(attempt)
            if attempt.slow:
                self.slow_free += 1
                self._promote_waiting()
            else:
                self._release_fast()

    def _promote(self, attempt: InFlight) -> None:
        if attempt.ended:
            return
        if self.slow_free > 0 and self._may_move(attempt):
            self._move(attempt)
        else:  # no room in the slow lane: it keeps its fast slot until one frees
            if self.shares is not None:
                self.shares.stuck(attempt)
                self._wake()
            if self.slow_allowed:
                self.to_promote.append(attempt)

    def _may_move(self, attempt: InFlight) -> bool:
        return self.shares is None or self.shares.may_move(attempt)

    def _move(self, attempt: InFlight) -> None:
        self.slow_free -= 1
        if self.shares is not None:
            self.shares.moved(attempt)
        else:
            attempt.slow = True
        self._release_fast()

    def _promote_waiting(self) -> None:
        """Move the oldest stuck attempts whose host and tenant have room again."""
        if not self.to_promote:
            return
        kept: collections.deque[InFlight] = collections.deque()
        while self.to_promote and self.slow_free > 0:
            attempt = self.to_promote.popleft()
            if attempt.ended:
                continue
            if self._may_move(attempt):
                self._move(attempt)
            else:
                kept.append(attempt)
        if kept:
            kept.extend(self.to_promote)
            self.to_promote = kept
