"""The API keys an API process has checked, remembered for a short while.

Every ``/v1`` request authenticates its key and counts itself against its tenant's
``requests_per_second``. Looking both up in the database cost a transaction per request;
a key this process checked less than ``TASKHUB_API_KEY_CACHE_SECONDS`` ago is trusted
again without one, and a tenant without a request rate (``0``) then costs no round trip
at all. So a revoked key is refused, and a tenant's changed rate applies, within that
long in every API process (0: at once, every request reading both). Only keys that were
valid are remembered, by their SHA-256 digest (never the key itself); a process holds
at most :data:`MAX_KEYS`, the oldest forgotten first.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: The most keys remembered by one process.
MAX_KEYS = 10_000


@dataclass(frozen=True)
class KnownKey:
    """A valid key's tenant and that tenant's ``requests_per_second`` (0: no limit)."""

    tenant: str
    requests_per_second: int


class KeyCache:
    """Valid keys by digest, each for ``ttl_s`` seconds of ``clock`` (monotonic)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._known: OrderedDict[str, tuple[float, KnownKey]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _digest(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str) -> KnownKey | None:
        """The key's tenant and rate if it was found valid less than ``ttl_s`` ago."""
        if self.ttl_s <= 0:
            return None
        digest = self._digest(key)
        with self._lock:
            found = self._known.get(digest)
            if found is None:
                return None
            until, known = found
            if self.clock() >= until:
                del self._known[digest]
                return None
            return known

    def put(self, key: str, known: KnownKey) -> None:
        """Remember a key just found valid."""
        if self.ttl_s <= 0:
            return
        digest = self._digest(key)
        with self._lock:
            self._known.pop(digest, None)
            self._known[digest] = (self.clock() + self.ttl_s, known)
            while len(self._known) > MAX_KEYS:
                self._known.popitem(last=False)
