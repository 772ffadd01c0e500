"""The API keys an API process remembers: for the time set only, valid keys only (by
what the caller puts), never with 0, and at most ``MAX_KEYS`` of them."""

from __future__ import annotations

import pytest

from taskhub.api import key_cache
from taskhub.api.key_cache import KeyCache, KnownKey

ACME = KnownKey("acme", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_trusted_for_the_time_set_then_read_again() -> None:
    clock = Clock()
    cache = KeyCache(5, clock)
    assert cache.get("th_key") is None
    cache.put("th_key", ACME)
    assert cache.get("th_key") == ACME
    assert cache.get("th_other") is None
    clock.now += 4.9
    assert cache.get("th_key") == ACME
    clock.now += 0.1
    assert cache.get("th_key") is None  # a revocation is seen from here on
    cache.put("th_key", KnownKey("acme", 50))  # read again: its tenant's new rate
    assert cache.get("th_key") == KnownKey("acme", 50)


def test_zero_remembers_nothing() -> None:
    cache = KeyCache(0, Clock())
    cache.put("th_key", ACME)
    assert cache.get("th_key") is None


def test_the_oldest_key_is_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_cache, "MAX_KEYS", 2)
    cache = KeyCache(60, Clock())
    for name in ("a", "b", "c"):
        cache.put(name, KnownKey(name, 0))
    assert [cache.get(n) for n in ("a", "b", "c")] == [None, KnownKey("b", 0), KnownKey("c", 0)]


def test_keys_are_held_by_digest_only() -> None:
    cache = KeyCache(60, Clock())
    cache.put("th_abcdefgh_secret", ACME)
    assert all("secret" not in digest for digest in cache._known)
