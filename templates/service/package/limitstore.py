"""Where rate-limit counts live: in this process (default) or in Valkey/Redis, shared by every
gateway node (``HAPTA_REDIS_URL``).

The algorithm is a moving window (a sliding log): a key keeps the times of its last ``max``
allowed requests; a request is allowed when fewer than ``max`` of them are younger than the
window. That is exact ("never more than Max in any Duration", Hapta's promise), not an
approximation as a fixed or weighted window is, and costs O(Max) memory per active key. Several
rules are checked in one step, atomically: a request refused by one rule uses up no other
rule's budget.

* ``MemoryWindows``: a deque per key. One event loop, no ``await`` between check and update,
  so it is exact under any concurrency within the process.
* ``RedisWindows``: one Lua script per request (every key of every rule in one round trip),
  using the server's clock (``TIME``), so nodes with skewed clocks still agree. A sorted set
  per key (request times), pruned to the window on each hit and expiring after it.

Measured before choosing (``bench/ratelimit.py --store-only``: Valkey 9 on 127.0.0.1, one
asyncio redis-py client, 5000 sequential hits of one key, 2 shared cores; Max 1000 / Max 10):

* this script: 200 / 165 µs a hit, with the remaining count and reset time in the answer; three
  rules in one call: 269 / 221 µs;
* the ``limits`` library's async moving window (``MovingWindowRateLimiter`` on its redis-py
  storage): ``hit`` alone 178 / 161 µs, but ``hit`` + ``get_window_stats`` (needed for the
  ``RateLimit-Remaining`` / ``-Reset`` headers) 433 / 373 µs, per rule (three rules: six round
  trips, and not atomic together: a request refused by the third rule has used up the first
  two), with the time taken from each node's own clock.

So the few lines of Lua are used, and ``limits`` is not a dependency. In memory a hit costs
2-4 µs.

What the layer costs a gateway serving a record view from its cache (``bench/ratelimit.py``, one
rule that matches every request, wrk with 64 connections, requests per CPU-second of the gateway
process, medians of 3 interleaved rounds on a busy 2-core machine): in process 0.81-0.84 of the
gateway without limits (the layer itself is ~3 µs of a ~40 µs hit); with Valkey 0.68, was 0.52
when the hits went through redis-py (a pipeline per batch) before ``resp.FastRedis``.

``TokenBook`` remembers which identity PocketBase vouched for behind a token (see
``layers/ratelimit``), in the same place as the counts.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import NamedTuple

from .resp import Arg, FastRedis, ReplyError, encode

#: One check: (key, max, window in ms).
Check = tuple[str, int, int]


class StoreDown(Exception):
    """The shared store did not answer (Valkey/Redis down, refused, timed out)."""


class Decision(NamedTuple):
    allowed: bool
    #: Requests still allowed in the window after this one.
    remaining: int
    #: Milliseconds until a slot frees up: when refused, the wait before a retry can pass.
    reset_ms: int


class MemoryWindows:
    """Moving windows in this process."""

    #: Past this many keys, keys whose window is over are dropped (an O(keys) sweep, rare).
    SWEEP_AT = 100_000

    def __init__(self, sweep_at: int = SWEEP_AT) -> None:
        self._logs: dict[str, deque[float]] = {}
        self._windows: dict[str, int] = {}
        self._sweep_base = self._sweep_at = sweep_at

    async def hit(self, checks: Sequence[Check]) -> list[Decision]:
        return self.hit_now(checks, time.monotonic() * 1000)

    def hit_one(self, key: str, limit: int, window: int, now: float) -> tuple[int, int]:
        """``hit_now`` of a single check (most routes have one rule), without the lists and the
        ``Decision``: (remaining, reset_ms), remaining ``-1`` when refused."""
        log = self._logs.get(key)
        if log is None:
            if len(self._logs) >= self._sweep_at:  # before the new key: the sweep drops empty logs
                self._sweep(now)
            log = self._logs[key] = deque()
            self._windows[key] = window
        start = now - window
        while log and log[0] <= start:
            log.popleft()
        count = len(log)
        if count >= limit:
            return -1, max(1, math.ceil(log[-limit] + window - now))
        oldest = log[0] if count else now
        log.append(now)
        return limit - count - 1, math.ceil(oldest + window - now)

    def hit_now(self, checks: Sequence[Check], now: float) -> list[Decision]:
        logs = []
        decisions = []
        allowed = True
        for key, limit, window in checks:
            log = self._logs.get(key)
            if log is None:
                log = self._logs[key] = deque()
                self._windows[key] = window
            start = now - window
            while log and log[0] <= start:
                log.popleft()
            logs.append(log)
            if len(log) >= limit:
                allowed = False
                wait = log[-limit] + window - now
                decisions.append(Decision(False, 0, max(1, math.ceil(wait))))
            else:
                oldest = log[0] if log else now
                decisions.append(
                    Decision(True, limit - len(log) - 1, math.ceil(oldest + window - now))
                )
        if allowed:
            for log in logs:
                log.append(now)
        if len(self._logs) > self._sweep_at:
            self._sweep(now)
        return decisions

    def _sweep(self, now: float) -> None:
        for key in [
            k for k, log in self._logs.items() if not log or log[-1] <= now - self._windows[k]
        ]:
            del self._logs[key]
            del self._windows[key]
        self._sweep_at = max(self._sweep_base, 2 * len(self._logs))

    async def aclose(self) -> None:
        return None


#: KEYS: one sorted set per check (members scored by time); ARGV: max, window (ms) per check.
#: Returns, per check: allowed (1/0), remaining, ms until a slot frees. Nothing is recorded
#: unless every check allows. Each step is O(log n): the cost does not grow with ``Max``.
HIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local counts = {}
local ok = true
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  counts[i] = count
  if count >= limit then
    ok = false
    local frees = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local wait = tonumber(frees[2]) + window - now
    if wait < 1 then wait = 1 end
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = wait
  else
    local oldest = now
    if count > 0 then oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) end
    out[#out + 1] = 1
    out[#out + 1] = limit - count - 1
    out[#out + 1] = oldest + window - now
  end
end
if ok then
  for i, key in ipairs(KEYS) do
    -- unique within a millisecond: the count only grows while ``now`` stays the same
    redis.call('ZADD', key, now, now .. '-' .. counts[i])
    redis.call('PEXPIRE', key, tonumber(ARGV[2 * i]))
  end
end
return out
"""

PREFIX = "hapta:rl:"
_OPEN: list[FastRedis] = []


def redis_client(url: str, timeout: float) -> FastRedis:
    """A Valkey/Redis client for the per-request commands (``resp.FastRedis``: one pipelined
    connection) that fails fast: ``timeout`` seconds to connect and for each reply."""
    client = FastRedis(url, timeout)
    _OPEN.append(client)
    return client


async def close_all() -> None:
    """Close every client ``redis_client`` opened (at the gateway's shutdown)."""
    while _OPEN:
        await _OPEN.pop().aclose()


def redis_errors() -> tuple[type[BaseException], ...]:
    return (ReplyError, OSError, TimeoutError)


class RedisWindows:
    """Moving windows in Valkey/Redis, shared by every node that uses the same server.

    One ``EVALSHA`` per request. Hits made during one turn of the event loop (concurrent
    requests) go out in one socket write and their replies come back in one read
    (``resp.FastRedis`` pipelines them); each script still runs atomically on its own, in order.
    """

    #: Encoded commands kept (a command depends on the checks alone: keys, limits, windows).
    COMMANDS = 4096

    def __init__(self, client: FastRedis) -> None:
        self.client = client
        self._sha = hashlib.sha1(HIT_SCRIPT.encode()).hexdigest()
        self._errors = redis_errors()
        self._commands: dict[tuple[Check, ...], bytes] = {}

    async def hit(self, checks: Sequence[Check]) -> list[Decision]:
        memo = tuple(checks)
        command = self._commands.get(memo)
        try:
            if command is None:
                keys, args = self._arguments(checks)
                command = encode((b"EVALSHA", self._sha, len(keys), *keys, *args))
                if len(self._commands) >= self.COMMANDS:
                    self._commands.clear()
                self._commands[memo] = command
            try:
                raw = await self.client.send_encoded(command)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                keys, args = self._arguments(checks)
                raw = await self.client.evalsha(self._sha, HIT_SCRIPT, keys, args)
        except self._errors as exc:
            raise StoreDown(str(exc) or type(exc).__name__) from None
        return [
            Decision(bool(raw[i]), int(raw[i + 1]), int(raw[i + 2])) for i in range(0, len(raw), 3)
        ]

    @staticmethod
    def _arguments(checks: Sequence[Check]) -> tuple[list[str], list[Arg]]:
        keys = [PREFIX + key for key, _, _ in checks]
        args: list[Arg] = []
        for _, limit, window in checks:
            args += (limit, window)
        return keys, args

    async def aclose(self) -> None:
        await self.client.aclose()


class TokenBook:
    """Token hash → the identity PocketBase answered it with, until the token expires; in this
    process and, with a client, in Valkey/Redis too (so every node knows it)."""

    LIMIT = 100_000
    #: Seconds an identity read from Valkey/Redis is kept here too.
    REMOTE_CACHE = 60

    def __init__(self, client: FastRedis | None = None) -> None:
        self.client = client
        self._known: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._errors = redis_errors() if client is not None else ()

    def _keep(self, token_hash: str, identity: str, seconds: float) -> None:
        """Hold ``identity`` here for ``seconds`` (at most ``LIMIT`` entries, oldest dropped)."""
        self._known[token_hash] = (identity, time.monotonic() + seconds)
        self._known.move_to_end(token_hash)
        while len(self._known) > self.LIMIT:
            self._known.popitem(last=False)

    async def remember(self, token_hash: str, identity: str, ttl: int) -> None:
        self._keep(token_hash, identity, ttl)
        if self.client is not None:
            try:
                await self.client.call(b"SET", PREFIX + "tok:" + token_hash, identity, b"EX", ttl)
            except self._errors as exc:
                raise StoreDown(str(exc) or type(exc).__name__) from None

    async def identity(self, token_hash: str) -> str | None:
        known = self._known.get(token_hash)
        if known is not None:
            if known[1] > time.monotonic():
                return known[0]
            del self._known[token_hash]
        if self.client is None:
            return None
        try:
            value = await self.client.call(b"GET", PREFIX + "tok:" + token_hash)
        except self._errors as exc:
            raise StoreDown(str(exc) or type(exc).__name__) from None
        if value is None:
            return None
        identity = str(value.decode())
        self._keep(token_hash, identity, self.REMOTE_CACHE)
        return identity
