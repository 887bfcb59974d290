"""The cache shared by several gateway processes through Valkey/Redis (``HAPTA_REDIS_URL``), behind
each process's in-process store (the L1, ``cachestore``).

* Entries: one Redis string per key (headers, body, expiry, and the versions of its tags at the
  moment its fetch began), expiring with the entry.
* Invalidation by versions: each tag has a counter (``INCR`` on every write that may make it
  stale); a lookup reads the entry and the current counters of its tags in one round trip and
  takes the entry only if they are unchanged, so an answer fetched before a write and stored
  after it is never served. ``flush`` bumps a counter every entry carries.
* L1 coherence: every invalidation is published on one channel; each process drops the same
  tags from its L1 when the message arrives (its own excepted: already done).
* Outage: any Redis error marks the tier down; the cache is then bypassed (pass-through to
  PocketBase: no errors, nothing stale) and the L1 emptied, while a background task
  reconnects (backoff 0.2 s doubling to 5 s). Invalidations may have been missed meanwhile,
  so on reconnecting it bumps the common counter (every shared entry is dropped) and publishes a
  flush before the cache serves again.

Writes through one process reach the others' L2 lookups before the write's answer is sent;
their L1 drops when the published message arrives (pub/sub delivery, typically well under a
millisecond on a local network).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from redis.exceptions import RedisError

from . import logs
from .cachestore import Entry, Key
from .metrics import Metrics
from .resp import redis_py

_PREFIX = "hapta:cache:"
_CHANNEL = _PREFIX + "invalidate"
_ALL = _PREFIX + "v:*all*"
_TIMEOUT = 1.0
_BACKOFF_MIN = 0.2
_BACKOFF_MAX = 5.0

LocalInvalidate = Callable[[frozenset[str] | None], None]


class Found:
    """A lookup's result: the entry, or the tag versions a fill must carry (``None``: do not
    store, the tier is down)."""

    __slots__ = ("entry", "versions")

    def __init__(self, entry: Entry | None, versions: list[bytes] | None) -> None:
        self.entry = entry
        self.versions = versions


_DOWN = Found(None, None)


class SharedTier:
    def __init__(self, url: str, metrics: Metrics) -> None:
        self._client: Any = redis_py(url, _TIMEOUT)
        self._metrics = metrics
        self._node = os.urandom(8).hex()
        self._local: LocalInvalidate = _nothing
        self._broken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: Redis answers and this process hears every invalidation: the cache may serve.
        self.up = False

    def attach(self, local: LocalInvalidate) -> None:
        """``local(tags)`` drops tags (``None``: everything) from this process's L1."""
        self._local = local

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cache-shared")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in list(self._pending):
            pending.cancel()
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()

    # ----------------------------------------------------------------------------- entries

    async def get(self, key: Key, tags: frozenset[str]) -> Found:
        names = _version_names(tags)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(_entry_name(key))
                pipe.mget(names)
                raw, versions = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._down(exc)
            return _DOWN
        versions = [v or b"0" for v in versions]
        if raw is None:
            return Found(None, versions)
        entry = _decode(raw, tags, versions)
        return Found(entry, versions)

    async def put(self, key: Key, entry: Entry, versions: list[bytes]) -> None:
        ttl_ms = int((entry.expires - time.monotonic()) * 1000)
        if ttl_ms <= 0 or not self.up:
            return
        try:
            await self._client.set(_entry_name(key), _encode(entry, versions), px=ttl_ms)
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def invalidate(self, tags: frozenset[str] | None) -> None:
        """Make ``tags`` (``None``: everything) stale in Redis and tell the other processes."""
        message = orjson.dumps({"n": self._node, "t": None if tags is None else sorted(tags)})
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for name in [_ALL] if tags is None else _version_names(tags)[:-1]:
                    pipe.incr(name)
                pipe.publish(_CHANNEL, message)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._down(exc)

    def invalidate_soon(self, tags: frozenset[str] | None) -> None:
        """``invalidate`` from code that cannot wait (the realtime listener)."""
        task = asyncio.get_running_loop().create_task(self.invalidate(tags))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # ---------------------------------------------------------------------- the subscriber

    def _down(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            self._metrics.cache_shared_up.set(0)
            self._local(None)
            msg = "shared cache: Valkey/Redis failed; serving without the cache until it is back"
            logs.log.warning(msg, extra={"fields": {"msg": msg, "error": str(exc)}})
        self._broken.set()

    async def _run(self) -> None:
        delay = _BACKOFF_MIN
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(_CHANNEL)
                self._broken.clear()
                # Invalidations may have been missed while not subscribed: start afresh.
                await self.invalidate(None)
                if self._broken.is_set():
                    raise ConnectionError("Redis is failing")
                self._local(None)
                self.up = True
                self._metrics.cache_shared_up.set(1)
                delay = _BACKOFF_MIN
                msg = "shared cache: subscribed to Valkey/Redis invalidations"
                logs.log.info(msg, extra={"fields": {"msg": msg}})
                while not self._broken.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._heard(message["data"])
                raise ConnectionError("a Redis command failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (any failure: down, then retried)
                self._down(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _heard(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            node, tags = message["n"], message["t"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._local(None)
            return
        if node == self._node:
            return
        self._local(None if tags is None else frozenset(tags))


def _nothing(tags: frozenset[str] | None) -> None:
    return None


def _entry_name(key: Key) -> str:
    return _PREFIX + "e:" + hashlib.blake2b(repr(key).encode(), digest_size=20).hexdigest()


def _version_names(tags: Iterable[str]) -> list[str]:
    """The counters an entry with ``tags`` depends on, in a fixed order (the common one last)."""
    return [_PREFIX + "v:" + tag for tag in sorted(tags)] + [_ALL]


def _encode(entry: Entry, versions: list[bytes]) -> bytes:
    head = orjson.dumps(
        {
            "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in entry.headers],
            "v": [v.decode("latin-1") for v in versions],
            "x": time.time() + (entry.expires - time.monotonic()),
        }
    )
    return head + b"\n" + entry.body


def _decode(raw: bytes, tags: frozenset[str], versions: list[bytes]) -> Entry | None:
    """The entry stored in ``raw`` if its tags' versions are still ``versions``."""
    head, _, body = raw.partition(b"\n")
    try:
        meta = orjson.loads(head)
        stored = [v.encode("latin-1") for v in meta["v"]]
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"]]
        remaining = float(meta["x"]) - time.time()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    if stored != versions or remaining <= 0:
        return None
    etag = dict(headers).get(b"etag")
    if etag is None:
        return None
    return Entry(headers, body, etag, tags, time.monotonic() + remaining)
