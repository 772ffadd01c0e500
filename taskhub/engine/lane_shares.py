"""Each host's and each tenant's share of one trigger process's in-flight slots.

Why: the two lanes (``lanes.Lanes``: fast slots for young attempts, slow slots for
those past ``slow_after_s``) are shared by every task a process fires. Without shares,
one tenant's thousands of requests to a target that never answers fill the slow lane,
then sit in the fast lane waiting for a slow slot, and every other tenant's requests
wait behind them for the hung ones' timeouts.

The rules, per host and per tenant (a request is counted under both, and must pass
both):

- the slow lane: at most ``slow_cap`` slots (``slow_share_percent`` of the lane). An
  attempt whose host or tenant holds its slow share stays in the fast lane (*stuck*)
  until one of theirs ends;
- the fast lane: at most ``fast_cap`` slots (``fast_share_percent``) once it cannot
  move on. A request is admitted while its host and tenant hold fewer fast slots than
  ``fast_cap`` plus the slow slots they could still move to (their slow share left,
  and no more than the lane has free): a young attempt that will move on uses the fast
  lane like any other, so one host alone can still use the whole fast lane for quick
  requests, while the attempts that can move nowhere never hold more than ``fast_cap``;
- a request that cannot be admitted is refused at once (``REFUSE``: its host or tenant
  has stuck attempts, so its slots will not free soon) or waits briefly (``WAIT``: its
  fast slots are held by young attempts, which end or move on within
  ``slow_after_s``). A refused request is not sent: the caller hands it back to the
  database as ``throttled``, so what waits is held there, not in memory.

Pure bookkeeping, no asyncio: ``lanes.Lanes`` owns the slots and the clock and asks
this module whose turn it is. Every call is O(1) (two dictionary look-ups at most).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# Verdicts, worst last (plain ints: one is computed per request sent).
ADMIT: Final = 0
WAIT: Final = 1
REFUSE: Final = 2


def share_of(slots: int, percent: float) -> int:
    """How many of a lane's ``slots`` one host or tenant may hold: ``percent`` of them,
    rounded down, at least one (none when the lane has none)."""
    if slots <= 0:
        return 0
    return max(1, min(slots, math.floor(slots * percent / 100 + 1e-9)))


@dataclass(slots=True, eq=False)
class Holding:
    """What one host or one tenant holds now."""

    key: str
    #: Fast slots held: young attempts and stuck ones.
    fast: int = 0
    #: Of those, attempts past ``slow_after_s`` that found no slow slot.
    stuck: int = 0
    slow: int = 0


@dataclass(slots=True, eq=False)
class Place:
    """One admitted attempt: the holdings it counts in (none when shares are off), and
    where it is."""

    host: Holding | None
    tenant: Holding | None
    slow: bool = False
    stuck: bool = False
    ended: bool = False


class Shares:
    """The holdings of one process's lanes, by host and by tenant.

    A request without a tenant (a message from before tenants were sent) is counted
    under its host only.
    """

    def __init__(
        self, fast_slots: int, slow_slots: int, fast_percent: float, slow_percent: float
    ) -> None:
        self.fast_cap = share_of(fast_slots, fast_percent)
        self.slow_cap = share_of(slow_slots, slow_percent)
        self.hosts: dict[str, Holding] = {}
        self.tenants: dict[str, Holding] = {}

    def _full(self, holding: Holding, slow_free: int) -> bool:
        """Whether ``holding`` may take no more fast slots: past its fast share, and no
        slow slot left for it to move on to."""
        room = min(self.slow_cap - holding.slow, slow_free)
        return holding.fast >= self.fast_cap + (room if room > 0 else 0)

    def verdict(self, host: str, tenant: str | None, slow_free: int) -> int:
        """Whether a request to ``host`` of ``tenant`` may take a fast slot now
        (``ADMIT``, ``WAIT`` or ``REFUSE``), given the slow slots free in the lane.
        Below its fast share a holding admits without further arithmetic (most do)."""
        verdict = ADMIT
        cap = self.fast_cap
        holding = self.hosts.get(host)
        if holding is not None and holding.fast >= cap and self._full(holding, slow_free):
            if holding.stuck:
                return REFUSE
            verdict = WAIT
        if tenant is not None:
            holding = self.tenants.get(tenant)
            if holding is not None and holding.fast >= cap and self._full(holding, slow_free):
                return REFUSE if holding.stuck else WAIT
        return verdict

    def take(self, host: str, tenant: str | None) -> Place:
        """Count an admitted attempt (it holds a fast slot)."""
        by_host = self.hosts.get(host)
        if by_host is None:
            by_host = self.hosts[host] = Holding(host)
        by_host.fast += 1
        by_tenant = None
        if tenant is not None:
            by_tenant = self.tenants.get(tenant)
            if by_tenant is None:
                by_tenant = self.tenants[tenant] = Holding(tenant)
            by_tenant.fast += 1
        return Place(by_host, by_tenant)

    def may_move(self, place: Place) -> bool:
        """Whether the attempt's host and tenant may take one more slow slot."""
        host, tenant = place.host, place.tenant
        return (host is None or host.slow < self.slow_cap) and (
            tenant is None or tenant.slow < self.slow_cap
        )

    def moved(self, place: Place) -> None:
        """The attempt took a slow slot and handed its fast one on."""
        for holding in (place.host, place.tenant):
            if holding is not None:
                holding.fast -= 1
                holding.slow += 1
                if place.stuck:
                    holding.stuck -= 1
        place.slow = True
        place.stuck = False

    def stuck(self, place: Place) -> None:
        """The attempt is past ``slow_after_s`` and found no slow slot: it keeps its
        fast one, and its host and tenant admit no more until theirs free."""
        if place.stuck or place.slow:
            return
        place.stuck = True
        for holding in (place.host, place.tenant):
            if holding is not None:
                holding.stuck += 1

    def ended(self, place: Place) -> None:
        """The attempt ended; a holding that holds nothing more is forgotten."""
        if place.host is not None:
            self._release(place.host, place, self.hosts)
        if place.tenant is not None:
            self._release(place.tenant, place, self.tenants)

    @staticmethod
    def _release(holding: Holding, place: Place, where: dict[str, Holding]) -> None:
        if place.slow:
            holding.slow -= 1
        else:
            holding.fast -= 1
            if place.stuck:
                holding.stuck -= 1
        if holding.fast == 0 and holding.slow == 0 and where.get(holding.key) is holding:
            del where[holding.key]
