"""Answers GET record lists and views from the cache (``cachestore``), under the keys, scopes and
tags ``cachepolicy`` gives; invalidates before a write's answer goes out.

A hit is the stored bytes and headers (with a strong ``ETag``), or a ``304`` when the client's
``If-None-Match`` names it; nothing after this layer runs. A miss goes on down the chain with
``send`` wrapped to keep a copy of a complete ``200`` answer; concurrent misses for one key wait
for the first one's answer (single-flight) instead of asking PocketBase again. Writes (record
writes, batch, auth actions) drop the tags they may have made stale as their answer starts, so
whoever wrote reads the new value next. Writes made elsewhere arrive through ``invalidate``
(called by ``cachelisten``); ``ttl(wanted)`` says how long a new entry may live that its
collections want kept ``wanted`` seconds (``None``: the cache's default). With ``shared``
(``cacheshared``, several processes through Valkey/Redis) the in-process store is its L1: a
miss asks Redis before PocketBase, writes invalidate there too before their answer, and while
Redis is down the cache is bypassed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..asgi import ASGIApp, Headers, Message, Receive, Scope, Send, header, respond, state
from ..cachepolicy import (
    READ_ONLY_AUTH,
    READS,
    RECORD_WRITES,
    ReadPlan,
    key_size,
    read_plan,
    write_tags,
)
from ..cachestore import CacheStore, Entry
from ..metrics import Metrics
from ..routing import BATCH

if TYPE_CHECKING:  # imported when HAPTA_REDIS_URL is set (app.py): redis is loaded only then
    from ..cacheshared import SharedTier

_READ_METHODS = frozenset({"GET"})
_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class _Flight:
    """One miss being fetched; its answer, for the requests that waited on it."""

    __slots__ = ("done", "entry")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.entry: Entry | None = None


class Cache:
    def __init__(
        self,
        app: ASGIApp,
        store: CacheStore,
        metrics: Metrics,
        ttl: Callable[[float | None], float],
        shared: SharedTier | None = None,
    ) -> None:
        self.app = app
        self.shared = shared
        self.store = store
        self.metrics = metrics
        self.ttl = ttl
        self._flights: dict[object, _Flight] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = state(scope).route
        assert route is not None
        method = scope["method"]
        if route.name in READS and method in _READ_METHODS:
            plan = read_plan(route, scope)
            if plan is not None:
                await self._read(plan, scope, receive, send)
                return
        elif method in _WRITE_METHODS and (
            route.name in RECORD_WRITES
            or route is BATCH
            or (route.name.startswith("auth.") and route.name not in READ_ONLY_AUTH)
        ):
            await self._write(write_tags(route), scope, receive, send)
            return
        await self.app(scope, receive, send)

    # ------------------------------------------------------------------------------- reads

    async def _read(self, plan: ReadPlan, scope: Scope, receive: Receive, send: Send) -> None:
        shared = self.shared
        if shared is not None and not shared.up:
            await self.app(scope, receive, send)  # Redis is down: pass-through, nothing stale
            return
        store = self.store
        entry = store.get(plan.key)
        if entry is None and plan.shared is not None:
            entry = store.peek(plan.shared)
        if entry is not None:
            self.metrics.cache_hits.inc()
            await _serve(scope, send, entry)
            return
        flight = self._flights.get(plan.key)
        if flight is not None:
            await flight.done.wait()
            if flight.entry is not None:
                self.metrics.cache_hits.inc()
                await _serve(scope, send, flight.entry)
                return
            await self.app(scope, receive, send)  # the first one got no answer to share
            return
        flight = self._flights[plan.key] = _Flight()
        started = store.epoch
        try:
            versions: list[bytes] | None = None
            if shared is not None:
                found = await shared.get(plan.key, plan.tags)
                if found.entry is not None:
                    store.put(plan.key, found.entry, started)
                    flight.entry = found.entry
                    self.metrics.cache_hits.inc()
                    await _serve(scope, send, found.entry)
                    return
                versions = found.versions
            self.metrics.cache_misses.inc()
            capture = _Capture(send, store.max_entry)
            await self.app(scope, receive, capture)
            lifetime = time.monotonic() + self.ttl(plan.ttl)
            entry = capture.entry(plan.tags, lifetime, key_size(plan))
            if entry is not None:
                store.put(plan.key, entry, started)
                if versions:  # Redis checks the versions: a stale fill is never served there
                    assert shared is not None
                    await shared.put(plan.key, entry, versions)
                flight.entry = entry
        finally:
            if self._flights.get(plan.key) is flight:
                del self._flights[plan.key]
            flight.done.set()

    # ------------------------------------------------------------------------------ writes

    async def _write(
        self, tags: frozenset[str] | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        st = state(scope)
        done = False

        async def before_answer(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start" and not done:
                done = True
                if message["status"] < 400:  # a refused write changed nothing
                    self.invalidate(tags)
                    if self.shared is not None:
                        await self.shared.invalidate(tags)
            await send(message)

        try:
            await self.app(scope, receive, before_answer)
        finally:
            # No answer from PocketBase (gone, timed out): the write may have happened.
            if not done and st.upstream_ms is not None:
                self.invalidate(tags)
                if self.shared is not None:
                    self.shared.invalidate_soon(tags)

    def invalidate(self, tags: frozenset[str] | None) -> None:
        """Drop the entries carrying one of ``tags`` (``None``: all of them)."""
        dropped = self.store.flush() if tags is None else self.store.invalidate(tags)
        # Fetches under way may hold the old value: later misses must not wait on them.
        self._flights.clear()
        if dropped:
            self.metrics.cache_invalidations.inc(dropped)


async def _serve(scope: Scope, send: Send, entry: Entry) -> None:
    match = header(scope, b"if-none-match")
    if match is not None and _matches(match, entry.etag):
        await respond(scope, send, 304, [(b"etag", entry.etag)], b"")
        return
    await respond(scope, send, 200, entry.headers, entry.body)


def _matches(value: bytes, etag: bytes) -> bool:
    """``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    for item in value.split(b","):
        item = item.strip()
        if item == b"*" or item.removeprefix(b"W/") == etag:
            return True
    return False


def etag_of(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'


class _Capture:
    """Wraps ``send``: passes the answer through and keeps a copy of a complete ``200`` of at
    most ``limit`` bytes. A one-piece answer gets its ``ETag`` on the way out."""

    __slots__ = ("complete", "headers", "keep", "limit", "parts", "send", "size", "start")

    def __init__(self, send: Send, limit: int) -> None:
        self.send = send
        self.limit = limit
        self.start: Message | None = None
        self.headers: Headers = []
        self.parts: list[bytes] = []
        self.size = 0
        self.keep = True
        self.complete = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] == 200:
                self.start = message  # held until the first piece of body shows its length
                return
            self.keep = False
            await self.send(message)
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        start, self.start = self.start, None
        if start is not None:
            headers = [(k, v) for k, v in start["headers"] if k != b"etag"]
            if not more:
                headers.append((b"etag", etag_of(body)))
            self.headers = headers
            await self.send({**start, "headers": headers})
        if self.keep:
            self.size += len(body)
            if self.size > self.limit:
                self.keep = False
                self.parts.clear()
            else:
                self.parts.append(body)
        await self.send(message)
        if not more:
            self.complete = True

    def entry(self, tags: frozenset[str], expires: float, key_size: int) -> Entry | None:
        if not (self.keep and self.complete and self.headers) or _private(self.headers):
            return None
        body = b"".join(self.parts)
        headers = self.headers
        if not any(k == b"etag" for k, _ in headers):
            headers = [*headers, (b"etag", etag_of(body))]
        return Entry(headers, body, dict(headers)[b"etag"], tags, expires, key_size)


def _private(headers: Headers) -> bool:
    """PocketBase (or a hook of its) said the answer is not for keeping, set a cookie, encoded
    it, or made it depend on a request header the key does not hold."""
    for key, value in headers:
        if key in (b"set-cookie", b"content-encoding"):
            return True
        if key == b"vary" and any(
            v.strip().lower() not in (b"origin", b"") for v in value.split(b",")
        ):
            return True  # keyed by Origin only
        if key == b"cache-control" and (b"no-store" in value or b"private" in value):
            return True
    return False
