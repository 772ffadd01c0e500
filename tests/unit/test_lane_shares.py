"""taskhub.lane_shares: each host's and tenant's share of a trigger process's lanes.

The lanes themselves (slots, timers) live in ``lanes.Lanes``; here a small model of
them drives :class:`Shares` through random sequences of requests, moves to the slow
lane and ends, and checks the bounds after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.engine.lane_shares import ADMIT, REFUSE, WAIT, Place, Shares, share_of


@given(st.integers(0, 10_000), st.floats(1, 100))
def test_a_share_is_at_least_one_slot_and_at_most_the_lane(slots: int, percent: float) -> None:
    share = share_of(slots, percent)
    if slots == 0:
        assert share == 0
    else:
        assert 1 <= share <= slots
        assert share <= max(1, slots * percent / 100 + 1e-6)


@given(st.integers(1, 10_000), st.floats(1, 100), st.floats(1, 100))
def test_a_larger_percent_never_gives_fewer_slots(slots: int, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert share_of(slots, low) <= share_of(slots, high)


@pytest.mark.parametrize(("slots", "percent", "share"), [(200, 10, 20), (2000, 50, 1000)])
def test_the_shipped_shares(slots: int, percent: float, share: int) -> None:
    assert share_of(slots, percent) == share
    assert share_of(slots, 100) == slots


@dataclass
class Lanes:
    """The lanes as ``lanes.Lanes`` keeps them, without the clock: an attempt is
    admitted while the verdict is ADMIT and a fast slot is free, moves on (or gets
    stuck) when the test says it is overdue, and a slow slot freed moves the oldest
    stuck attempt that may move."""

    shares: Shares
    fast_free: int
    slow_free: int
    live: list[tuple[str, str | None, Place]] = field(default_factory=list)
    stuck: list[Place] = field(default_factory=list)

    def request(self, host: str, tenant: str | None) -> int:
        verdict = self.shares.verdict(host, tenant, self.slow_free)
        if verdict == ADMIT and self.fast_free > 0:
            self.fast_free -= 1
            self.live.append((host, tenant, self.shares.take(host, tenant)))
        return verdict

    def overdue(self, index: int) -> None:
        place = self.live[index][2]
        if place.slow or place.stuck:
            return
        if self.slow_free > 0 and self.shares.may_move(place):
            self._move(place)
        else:
            self.shares.stuck(place)
            self.stuck.append(place)

    def _move(self, place: Place) -> None:
        self.slow_free -= 1
        self.fast_free += 1
        self.shares.moved(place)

    def end(self, index: int) -> None:
        _, _, place = self.live.pop(index)
        self.shares.ended(place)
        if place in self.stuck:
            self.stuck.remove(place)
        if place.slow:
            self.slow_free += 1
            for waiting in list(self.stuck):
                if self.slow_free > 0 and self.shares.may_move(waiting):
                    self.stuck.remove(waiting)
                    self._move(waiting)
        else:
            self.fast_free += 1

    def check(self) -> None:
        """The holdings are exactly the live attempts', and no share is exceeded."""
        for where, key_of in ((self.shares.hosts, 0), (self.shares.tenants, 1)):
            expected: dict[str, list[int]] = {}
            for host, tenant, place in self.live:
                key = host if key_of == 0 else tenant
                if key is None:
                    continue
                counts = expected.setdefault(key, [0, 0, 0])
                counts[0] += not place.slow
                counts[1] += place.stuck
                counts[2] += place.slow
            assert {k: [h.fast, h.stuck, h.slow] for k, h in where.items()} == expected
        for holding in [*self.shares.hosts.values(), *self.shares.tenants.values()]:
            assert holding.slow <= self.shares.slow_cap
            assert 0 <= holding.stuck <= holding.fast
        assert self.fast_free >= 0 and self.slow_free >= 0


lane_sizes = st.tuples(st.integers(1, 12), st.integers(0, 24), st.floats(1, 100), st.floats(1, 100))
steps = st.lists(
    st.tuples(
        st.sampled_from(["request", "overdue", "end"]), st.integers(0, 3), st.integers(0, 50)
    ),
    max_size=120,
)


@given(lane_sizes, steps)
def test_holdings_follow_the_attempts_and_no_slow_share_is_exceeded(
    sizes: tuple[int, int, float, float], events: list[tuple[str, int, int]]
) -> None:
    fast, slow, fast_percent, slow_percent = sizes
    lanes = Lanes(Shares(fast, slow, fast_percent, slow_percent), fast, slow)
    hosts = ["a.example", "b.example", "c.example", "d.example"]
    tenants = ["acme", "globex", None, "acme"]
    for kind, who, pick in events:
        if kind == "request":
            lanes.request(hosts[who], tenants[who])
        elif lanes.live:
            index = pick % len(lanes.live)
            lanes.overdue(index) if kind == "overdue" else lanes.end(index)
        lanes.check()
    for index in reversed(range(len(lanes.live))):
        lanes.end(index)
    assert lanes.shares.hosts == {} and lanes.shares.tenants == {}  # nothing left behind
    assert (lanes.fast_free, lanes.slow_free) == (fast, slow)


@given(lane_sizes, steps)
def test_one_host_and_tenant_alone_never_has_more_stuck_than_its_fast_share(
    sizes: tuple[int, int, float, float], events: list[tuple[str, int, int]]
) -> None:
    fast, slow, fast_percent, slow_percent = sizes
    lanes = Lanes(Shares(fast, slow, fast_percent, slow_percent), fast, slow)
    for kind, _, pick in events:
        if kind == "request":
            lanes.request("hung.example", "acme")
        elif lanes.live:
            index = pick % len(lanes.live)
            lanes.overdue(index) if kind == "overdue" else lanes.end(index)
        lanes.check()
        for holding in (lanes.shares.hosts.get("hung.example"), lanes.shares.tenants.get("acme")):
            if holding is not None:
                assert holding.stuck <= lanes.shares.fast_cap


@given(
    st.integers(2, 300),
    st.integers(0, 3000),
    st.floats(1, 60),
    st.floats(1, 100),
    st.integers(1, 5000),
)
def test_a_flood_to_one_hung_host_leaves_the_rest_of_the_fast_lane_free(
    fast: int, slow: int, fast_percent: float, slow_percent: float, flood: int
) -> None:
    """The issue's scenario: one tenant's requests to a host that never answers, as
    many as it likes, each overdue once admitted; whatever the sizes, another tenant
    then finds every fast slot but the hung tenant's fast share free, and is admitted."""
    lanes = Lanes(Shares(fast, slow, fast_percent, slow_percent), fast, slow)
    refused = 0
    for _ in range(flood):
        verdict = lanes.request("hung.example", "acme")
        if verdict == REFUSE:
            refused += 1
        for index in range(len(lanes.live)):  # every admitted one outlives slow_after_s
            lanes.overdue(index)
    lanes.check()
    assert fast - lanes.fast_free <= lanes.shares.fast_cap
    in_flight = len(lanes.live)
    assert in_flight <= lanes.shares.fast_cap + lanes.shares.slow_cap
    assert refused == flood - in_flight  # refused at once, never left waiting
    assert lanes.request("quick.example", "globex") == ADMIT


def test_young_attempts_make_a_request_wait_and_stuck_ones_refuse_it() -> None:
    shares = Shares(fast_slots=10, slow_slots=0, fast_percent=20, slow_percent=100)
    assert shares.fast_cap == 2 and shares.slow_cap == 0
    first, second = shares.take("a.example", "acme"), shares.take("a.example", "acme")
    # Its two fast slots are held by young attempts: they end or get stuck soon.
    assert shares.verdict("a.example", "acme", slow_free=0) == WAIT
    assert shares.verdict("b.example", "globex", slow_free=0) == ADMIT
    shares.stuck(first)
    assert shares.verdict("a.example", "acme", slow_free=0) == REFUSE
    # The tenant's share binds at another host too.
    assert shares.verdict("b.example", "acme", slow_free=0) == REFUSE
    shares.ended(first)
    assert shares.verdict("a.example", "acme", slow_free=0) == ADMIT
    shares.ended(second)
    assert shares.hosts == {} and shares.tenants == {}


def test_room_in_the_slow_lane_admits_beyond_the_fast_share() -> None:
    shares = Shares(fast_slots=10, slow_slots=10, fast_percent=10, slow_percent=50)
    assert (shares.fast_cap, shares.slow_cap) == (1, 5)
    places = [shares.take("a.example", None) for _ in range(6)]
    # 6 young attempts: 1 may stay in the fast lane and 5 may move on.
    assert shares.verdict("a.example", None, slow_free=10) == WAIT
    for place in places[:5]:
        assert shares.may_move(place)
        shares.moved(place)
    assert not shares.may_move(places[5])
    # The slow lane has no room for more, whatever its own free slots say.
    assert shares.verdict("a.example", None, slow_free=1) == WAIT
    shares.ended(places[0])
    assert shares.verdict("a.example", None, slow_free=1) == ADMIT
    # A full slow lane leaves no room either, whatever the host's own share says.
    assert shares.verdict("a.example", None, slow_free=0) == WAIT
