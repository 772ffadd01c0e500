"""Fleet-wide flow control per target host: requests in flight, requests per second, and
a pause after 429 / ``Retry-After``.

Why here and not in ``firing``: the HTTP code asks a :class:`Limiter` for a slot and
hands it back; how slots are counted is this module's business. Two limiters:

- :class:`RedisLimiter`: one budget per host shared by every worker process through
  Redis. Slots in flight are members of a sorted set scored by their lease expiry, so a
  worker that dies holding slots leaks them only until their lease (the attempt's
  timeout plus a margin) runs out; requests per second are a token bucket in a hash;
  a pause is a key with a time to live. One Lua script checks and takes atomically,
  with Redis's own clock, so every process sees the same budget.
- :class:`LocalLimiter`: the same rules inside one process (the embedded broker has
  no Redis; also the fallback while Redis cannot be reached).

The math (token bucket, limit parsing and combining) is pure: ``taskhub.core.host_limits``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from taskhub.core.host_limits import Bucket, HostLimit, take_token

log = logging.getLogger(__name__)

#: How long a slot's lease outlives the attempt's own timeout.
LEASE_MARGIN_S = 30.0
#: How often a request waiting for a slot in flight looks again.
POLL_S = 0.05


@dataclass(frozen=True)
class Slot:
    """A granted slot, handed back with :meth:`Limiter.release`."""

    host: str
    token: str
    counted: bool  # holds a place among the host's requests in flight


class Limiter(Protocol):
    async def try_acquire(self, host: str, limit: HostLimit, lease_s: float) -> Slot | float:
        """A slot now, or the seconds to wait before asking again (pause or rate)."""

    async def release(self, slot: Slot) -> None: ...

    async def pause(self, host: str, seconds: float) -> None:
        """Stop granting slots for ``host`` for ``seconds`` (it answered 429)."""

    async def paused_for(self, host: str) -> float:
        """Seconds left of a pause of ``host`` (0 when none)."""


async def acquire(
    limiter: Limiter, host: str, limit: HostLimit, lease_s: float, max_wait_s: float
) -> tuple[Slot | None, float, float]:
    """Wait (asynchronously: other hosts' requests proceed) up to ``max_wait_s`` for a
    slot. Returns (the slot or None, seconds waited, seconds after which to try again)."""
    started = time.monotonic()
    while True:
        got = await limiter.try_acquire(host, limit, lease_s)
        waited = time.monotonic() - started
        if isinstance(got, Slot):
            return got, waited, 0.0
        retry_in = max(got, POLL_S)
        if waited + retry_in > max_wait_s:
            return None, waited, max(retry_in, 1.0)
        await asyncio.sleep(retry_in)


@dataclass
class LocalLimiter:
    """Per-process budgets (no Redis): the same rules as :class:`RedisLimiter`."""

    in_flight: dict[str, dict[str, float]] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    paused_until: dict[str, float] = field(default_factory=dict)

    async def try_acquire(self, host: str, limit: HostLimit, lease_s: float) -> Slot | float:
        now = time.monotonic()
        pause_left = self.paused_until.get(host, 0.0) - now
        if pause_left > 0:
            return pause_left
        holders = self.in_flight.setdefault(host, {})
        if limit.max_in_flight is not None:
            for token, expires in list(holders.items()):
                if expires <= now:
                    del holders[token]
            if len(holders) >= limit.max_in_flight:
                return 0.0
        if limit.per_second is not None:
            taken, bucket, wait_s = take_token(self.buckets.get(host), now, limit.per_second)
            self.buckets[host] = bucket
            if not taken:
                return wait_s
        token = uuid.uuid4().hex
        counted = limit.max_in_flight is not None
        if counted:
            holders[token] = now + lease_s
        return Slot(host, token, counted)

    async def release(self, slot: Slot) -> None:
        if slot.counted:
            self.in_flight.get(slot.host, {}).pop(slot.token, None)

    async def pause(self, host: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.paused_until[host] = max(self.paused_until.get(host, 0.0), until)

    async def paused_for(self, host: str) -> float:
        return max(0.0, self.paused_until.get(host, 0.0) - time.monotonic())


# Keys: in flight (sorted set: token -> lease expiry), bucket (hash), pause (string, PX).
# Args: max in flight (0: none), per second (0: none), token, lease ms.
# Returns {1, 0} when granted, {0, wait_ms} when not (wait 0: poll for a slot in flight).
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pause_ms = redis.call('PTTL', KEYS[3])
if pause_ms > 0 then return {0, pause_ms} end
local max_in_flight = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
if max_in_flight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[1]) >= max_in_flight then return {0, 0} end
end
if per_second > 0 then
  local capacity = math.max(1, per_second)
  local tokens = tonumber(redis.call('HGET', KEYS[2], 'tokens') or capacity)
  local at = tonumber(redis.call('HGET', KEYS[2], 'at') or now_ms)
  tokens = math.min(capacity, tokens + math.max(0, now_ms - at) * per_second / 1000)
  if tokens < 1 then
    redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'at', now_ms)
    redis.call('PEXPIRE', KEYS[2], 60000)
    return {0, math.ceil((1 - tokens) * 1000 / per_second)}
  end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', now_ms)
  redis.call('PEXPIRE', KEYS[2], 60000)
end
if max_in_flight > 0 then
  local lease_ms = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[1], now_ms + lease_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], lease_ms + 60000)
end
return {1, 0}
"""

_PAUSE_LUA = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1
"""


#: Connections each process's limiter holds to the shared Redis (its scripts take
#: well under a millisecond, so a few serve a burst), and how long a call waits for
#: one, or for an answer, before the request is limited by this process alone.
REDIS_CONNECTIONS: Final = 16
REDIS_TIMEOUT_S: Final = 2.0


class RedisLimiter:
    """Budgets shared by every process through one Redis (its ``TIME`` is the clock).

    If Redis cannot be reached, the request is limited by this process alone (logged),
    rather than not sent at all: taskhub keeps firing, less politely.
    """

    def __init__(self, url: str, prefix: str = "taskhub:flow:") -> None:
        import redis.asyncio as aioredis

        # Blocking: a message's requests (up to 250 at once) wait their turn for one of
        # a few connections. redis-py's default pool refuses past 100 instead, and a
        # refusal would fall back to a per-process budget mid-burst.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        self._client: Any = aioredis.Redis(connection_pool=pool)
        self._prefix = prefix
        self._acquire = self._client.register_script(_ACQUIRE_LUA)
        self._pause = self._client.register_script(_PAUSE_LUA)
        self._fallback = LocalLimiter()

    def _keys(self, host: str) -> list[str]:
        base = f"{self._prefix}{{{host}}}"  # one hash slot per host on Redis Cluster
        return [f"{base}:in_flight", f"{base}:bucket", f"{base}:paused"]

    async def try_acquire(self, host: str, limit: HostLimit, lease_s: float) -> Slot | float:
        token = uuid.uuid4().hex
        args = [
            limit.max_in_flight or 0,
            limit.per_second or 0,
            token,
            max(1, round(lease_s * 1000)),
        ]
        try:
            granted, wait_ms = await self._acquire(keys=self._keys(host), args=args)
        except Exception as error:  # any Redis trouble: limit locally instead
            log.warning("flow control: Redis unavailable (%s); limiting per process", error)
            return await self._fallback.try_acquire(host, limit, lease_s)
        if int(granted):
            return Slot(host, token, limit.max_in_flight is not None)
        return int(wait_ms) / 1000

    async def release(self, slot: Slot) -> None:
        if not slot.counted:
            return
        await self._fallback.release(slot)
        try:
            await self._client.zrem(self._keys(slot.host)[0], slot.token)
        except Exception as error:  # the lease frees it when it runs out
            log.warning("flow control: slot not released (%s); its lease will", error)

    async def pause(self, host: str, seconds: float) -> None:
        await self._fallback.pause(host, seconds)
        try:
            await self._pause(keys=[self._keys(host)[2]], args=[max(1, round(seconds * 1000))])
        except Exception as error:
            log.warning("flow control: pause not shared (%s)", error)

    async def paused_for(self, host: str) -> float:
        return await self._fallback.paused_for(host)

    async def aclose(self) -> None:
        await self._client.aclose()
