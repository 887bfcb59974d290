"""Realtime fan-out: one upstream subscription per process for public topics, shared by every
client; a client's own upstream stream for the rest.

The gateway answers PocketBase's realtime protocol itself (``realtime``): each client gets the
gateway's own ``PB_CONNECT`` client id, and its subscriptions are split here.

* A **shared** topic (``shared_topic``) is one every caller receives the same events for: its
  collection's rule is ``""`` (``listRule`` for ``name/*`` and ``name``, ``viewRule`` for
  ``name/<id>``), it has no ``?options=`` (expand, fields, filter or headers could make the
  payload the caller's), and it is not an auth collection unless the caller is a guest
  (PocketBase shows an auth record its own ``email``), nor one with hidden fields when the
  caller is a superuser (who sees them). Such topics are served from **one** guest subscription per process
  (``Feed``), whose events are fanned out to every client subscribed: PocketBase's stream count
  does not grow with clients.
* Every other topic keeps exactly PocketBase's delivery: the client gets an upstream stream of
  its own, opened with its own credential and client IP when it first subscribes to such a
  topic, whose events are merged into its one downstream stream (closed when it no longer has
  such a topic). The alternative, one shared superuser stream and a check of each event with
  each client's credential (a ``GET`` of the record as that client), was rejected by
  measurement: PocketBase answers about 3,500 record views a second on this project's bench
  machine (``bench/proxy.py``, README), so 1,000 owners of a collection would cost it some
  0.3 s of its whole capacity per write, where 1,000 idle private streams cost it memory
  (about 58 KiB each, ``bench/realtime.py``) and no CPU until an event; a ``delete`` could not
  be checked at all (the record is gone), and a rule reading ``@request.*`` would be judged
  on a request the client never made.

Streams that stay up: every client stream gets a heartbeat (an SSE comment line) after
``heartbeat`` idle seconds; upstream rotation and reconnection are the feed's (``feed``). After
a gap (the upstream stream broke and was remade, so events may have been missed) each client of
that feed is sent ``PB_CONNECT`` again, with its same client id: both SDKs then resubmit their
subscriptions (harmless: they are already in place) and call the application's ``PB_CONNECT``
listeners, which is where PocketBase's own documentation re-reads data after a reconnect; an API
subscription (``Hub.subscribe``) yields ``(GAP, b"")``. A client that has not subscribed
``REMIND`` seconds after connecting is sent its ``PB_CONNECT`` once more: the Python SDK starts
reading the stream before it listens for ``PB_CONNECT``, and misses one that comes quickly
(the gateway sends it at once, with no upstream call before it).

A client is sent what it has been given as fast as it reads; what it has not taken yet is held
up to ``buffer`` bytes, past which it is dropped (``hapta_sse_dropped_total``) instead of
holding memory or anyone else: fan-out only appends to each client's buffer, never waits.
A disconnect or drop releases the client's shared topics, its own upstream stream and its
buffer at once. With rolling sessions, a client whose subscriptions were made with a session
key is ended when that key's family is revoked (``watch_sessions``): at once when this process
revoked it, else within ``HAPTA_SSE_SESSION_CHECK`` seconds.

Other code subscribes with ``Hub.subscribe(topic, authorization, client_ip)``: an async
iterator of ``(event name, data bytes)``, shared or private by the same rule, ``close()`` to
leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import string
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from . import logs
from .asgi import Headers
from .catalog import BY_NAME
from .errors import ApiError
from .feed import Feed
from .metrics import Metrics
from .relay import Relay
from .sessions import SessionStore, StoreUnavailable, bare_key, token_claims
from .streams import TOO_MANY_IN_TOTAL
from .upstream import Upstream

#: The event an API subscription yields after a gap (events may have been missed).
GAP = "PB_CONNECT"
HEARTBEAT = b":\n\n"
#: Seconds after which a client that has not subscribed is sent ``PB_CONNECT`` again.
REMIND = 2.0
#: Record topics (``posts/<id>``) the shared subscription holds at most (PocketBase takes 1,000
#: topics per subscription; a collection's own topics are always shared): a client's shareable
#: record topics beyond it go on its own stream instead, so one client naming many records
#: cannot fill the shared subscription and have every other client's refused.
MAX_SHARED = 500
_ALPHABET = string.ascii_letters + string.digits
#: Who is subscribing, as far as what PocketBase shows them differs (``caller_kind``).
GUEST, USER, SUPERUSER = "guest", "user", "superuser"
#: The id PocketBase gives its ``_superusers`` collection (the same in every installation).
SUPERUSERS_ID = "pbc_3142635823"


def new_client_id(token: str) -> str:
    """A client id as PocketBase makes them, 40 letters and digits: this process's relay
    ``token``, then random ones."""
    return token + "".join(secrets.choice(_ALPHABET) for _ in range(40 - len(token)))


def caller_kind(authorization: bytes | None) -> str:
    """``GUEST``, ``SUPERUSER`` or ``USER``, by the token's claims (unverified: a token that
    lies is no credential at PocketBase, which then treats the caller as a guest, and a guest
    receives what everyone does)."""
    if not authorization:
        return GUEST
    claims = token_claims(bare_key(authorization).decode("latin-1"))
    return SUPERUSER if claims.get("collectionId") == SUPERUSERS_ID else USER


def shared_topic(topic: str, caller: str) -> bool:
    """Whether every caller receives the same events for ``topic`` as ``caller`` (a
    ``caller_kind``) does (see the module)."""
    if "?" in topic or "#" in topic or "%" in topic:
        return False
    name, slash, rest = topic.partition("/")
    spec = BY_NAME.get(name)
    if spec is None or "/" in rest:
        return False
    if not slash or rest == "*":
        rule = spec.rules.list
    elif rest:
        rule = spec.rules.view
    else:
        return False
    if rule != "":
        return False
    if caller == SUPERUSER:
        return not any(f.hidden for f in spec.fields) and spec.kind != "auth"
    return caller == GUEST or spec.kind != "auth"


def _names_record(topic: str) -> bool:
    """``name/<id>``, as opposed to a collection's own ``name/*`` or ``name``."""
    _, slash, rest = topic.partition("/")
    return bool(slash) and rest != "*"


class Sink:
    """Someone receiving events: a realtime client (``Client``) or an API subscription."""

    __slots__ = ("closed", "dropped", "limit", "private", "session", "shared", "size", "_waiter")

    def __init__(self, limit: int) -> None:
        self.closed = False
        #: Let go for not reading (``Hub.drop``).
        self.dropped = False
        self.limit = limit
        self.private: Feed | None = None
        #: The hash of the session key the subscriptions were made with (rolling sessions).
        self.session: str | None = None
        self.shared: frozenset[str] = frozenset()
        self.size = 0
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def sleep(self) -> None:
        """Until ``wake`` (a bare future: no timer, the cheapest wait asyncio has)."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def deliver(self, name: str, data: bytes, tail: bytes) -> bool:
        """Queue one event (``tail``: its ``event:``/``data:`` lines); ``False`` when this
        would pass the buffer's bound with events already waiting (the hub then drops the
        sink)."""
        raise NotImplementedError

    def gap(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class Client(Sink):
    """A ``GET /api/realtime`` stream: frames waiting to be written, in PocketBase's format."""

    __slots__ = (
        "id",
        "identity",
        "ip",
        "last_sent",
        "sending",
        "subscribed",
        "task",
        "_frames",
        "_prefix",
    )

    def __init__(self, client_id: str, ip: str, limit: int) -> None:
        super().__init__(limit)
        self.id = client_id
        self.ip = ip
        #: It has posted its subscriptions (an empty list counts).
        self.subscribed = False
        #: The task writing its stream; since when (loop time) a write waits, 0 when none;
        #: when it was last written to.
        self.task: asyncio.Task[Any] | None = None
        self.sending = 0.0
        self.last_sent = 0.0
        #: Who the subscriptions were made as (``collectionId/id``), ``""`` for a guest.
        self.identity = ""
        self._prefix = b"id:" + client_id.encode() + b"\nevent:"
        self._frames: list[bytes] = [self.connect_frame()]
        self.size = len(self._frames[0])

    def connect_frame(self) -> bytes:
        data = b'{"clientId":"' + self.id.encode() + b'"}'
        return self._prefix + b"PB_CONNECT\ndata:" + data + b"\n\n"

    def deliver(self, name: str, data: bytes, tail: bytes) -> bool:
        if self.closed:
            return True
        frame = self._prefix + tail
        if self.size and self.size + len(frame) > self.limit:
            return False  # (one event alone may pass the bound: it is never split)
        self.size += len(frame)
        self._frames.append(frame)
        self.wake()
        return True

    def gap(self) -> None:
        if not self.closed:
            self._frames.append(self.connect_frame())
            self.wake()

    def clear(self) -> None:
        self._frames.clear()
        self.size = 0
        self.wake()

    def heartbeat(self) -> None:
        if not self.closed and not self._frames:
            self._frames.append(HEARTBEAT)
            self.wake()

    async def take(self) -> bytes | None:
        """What to write next (the frames waiting), or ``None`` once the client is closed."""
        while not self._frames:
            if self.closed:
                return None
            await self.sleep()
        if self.closed:
            return None
        data = b"".join(self._frames) if len(self._frames) > 1 else self._frames[0]
        self._frames.clear()
        self.size = 0
        return data


class Subscription(Sink):
    """``Hub.subscribe``: ``async for name, data in subscription`` until ``close()``.

    ``name`` is the topic (PocketBase's event name), ``data`` PocketBase's JSON bytes; after a
    gap ``(GAP, b"")``. Iteration ends when the subscription is closed, by ``close()``, a
    revoked session, a shutdown, or being dropped for not reading (``dropped``)."""

    __slots__ = ("_events", "_hub")

    def __init__(self, hub: Hub, limit: int) -> None:
        super().__init__(limit)
        self._hub = hub
        self._events: deque[tuple[str, bytes]] = deque()

    def deliver(self, name: str, data: bytes, tail: bytes) -> bool:
        if self.closed:
            return True
        size = len(data) + len(name)
        if self.size and self.size + size > self.limit:
            return False
        self.size += size
        self._events.append((name, data))
        self.wake()
        return True

    def gap(self) -> None:
        if not self.closed:
            self._events.append((GAP, b""))
            self.wake()

    def clear(self) -> None:
        self._events.clear()
        self.size = 0
        self.wake()

    def close(self) -> None:
        self._hub.leave(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        while not self._events:
            if self.closed:
                raise StopAsyncIteration
            await self.sleep()
        name, data = self._events.popleft()
        self.size -= len(data) + len(name)
        return name, data


class Hub:
    """This process's realtime clients and the upstream feeds that serve them."""

    def __init__(
        self,
        upstream: Upstream,
        metrics: Metrics,
        *,
        buffer: int,
        heartbeat: float,
        send_timeout: float = 30.0,
        rotate: float | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self.buffer = buffer
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self._ticker: asyncio.Task[None] | None = None
        self._rotate = rotate
        #: How a subscription for another worker's client reaches it (``realtime`` uses it).
        self.relay = Relay(redis_url=redis_url)
        self._topics: dict[str, set[Sink]] = {}
        self._clients: dict[str, Client] = {}
        self._sinks: set[Sink] = set()
        self._feed: Feed | None = None
        self._resync: asyncio.Task[None] | None = None
        self._store: SessionStore | None = None
        self._check_every = 10.0
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_now: asyncio.Event | None = None
        self.closed = False

    # ------------------------------------------------------------------ clients, subscriptions

    def connect(self, ip: str) -> Client:
        """A new ``/api/realtime`` client (its ``PB_CONNECT`` is its first frame)."""
        if self.closed:
            raise ApiError(503, TOO_MANY_IN_TOTAL)
        client = Client(new_client_id(self.relay.token), ip, self.buffer)
        self._clients[client.id] = client
        self._add(client)
        loop = asyncio.get_running_loop()
        loop.call_later(REMIND, self._remind, client)
        client.last_sent = loop.time()
        if self._ticker is None:
            self._ticker = loop.create_task(self._tick(), name="sse-ticker")
        return client

    async def _tick(self) -> None:
        """Heartbeats for idle clients, and the drop of a client whose write has waited past
        ``send_timeout``: one timer for every client (a timer per client and write would cost
        each event as much again)."""
        loop = asyncio.get_running_loop()
        every = min(1.0, self.heartbeat / 2, self.send_timeout / 2)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for client in list(self._clients.values()):
                if client.sending and now - client.sending > self.send_timeout:
                    self.drop(client, "send timeout")
                elif now - client.last_sent >= self.heartbeat:
                    client.heartbeat()

    def _remind(self, client: Client) -> None:
        """``PB_CONNECT`` once more to a client that has not subscribed yet: the Python SDK
        starts reading before it listens for ``PB_CONNECT``, and misses a quick one."""
        if not client.subscribed and not client.closed:
            client.gap()

    def find(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def subscribe(
        self,
        topic: str,
        authorization: str | bytes | None,
        client_ip: str,
        session: str | None = None,
    ) -> Subscription:
        """Events of one topic for other code (typed SSE...), shared when ``shared_topic``
        says so, else on an upstream stream with ``authorization`` (PocketBase's token) and
        ``client_ip`` forwarded. ``session``: the session key hash, to end it on revocation.
        Raises like ``set_subscriptions``."""
        if self.closed:
            raise ApiError(503, TOO_MANY_IN_TOTAL)
        sub = Subscription(self, self.buffer)
        self._add(sub)
        auth = authorization.encode() if isinstance(authorization, str) else authorization
        try:
            await self.set_subscriptions(sub, [topic], auth, client_ip, session)
        except BaseException:
            self.leave(sub)
            raise
        return sub

    async def set_subscriptions(
        self,
        sink: Sink,
        topics: Sequence[str],
        authorization: bytes | None,
        client_ip: str,
        session: str | None = None,
    ) -> None:
        """Make ``topics`` the sink's subscriptions (replacing its earlier ones, as PocketBase
        does). Raises ``feed.Refused`` (PocketBase's answer to the private part),
        ``StreamDown`` or ``UpstreamError`` (PocketBase unreachable)."""
        wanted = list(dict.fromkeys(t for t in topics if t))
        caller = caller_kind(authorization)
        shareable = [t for t in wanted if shared_topic(t, caller)]
        # a collection's own topics (``posts/*``, ``posts``) are few and always shared; topics
        # naming a record share what room the bound leaves
        records = [t for t in shareable if t not in self._topics and _names_record(t)]
        taken = sum(1 for t in self._topics.keys() - sink.shared if _names_record(t))
        over = frozenset(records[max(MAX_SHARED - taken, 0) :])
        shared = frozenset(t for t in shareable if t not in over)
        private = [t for t in wanted if t not in shared]
        if session is not None:
            sink.session = session
            self._start_sweeper()
        feed = sink.private
        if private:
            headers = _feed_headers(authorization, client_ip)
            if feed is None:
                feed = sink.private = Feed(
                    self.upstream,
                    headers,
                    lambda name, data: self._private_event(sink, name, data),
                    sink.gap,
                    self.metrics.upstream_streams,
                    **({"rotate": self._rotate} if self._rotate else {}),
                )
            else:
                feed.headers = headers
            await feed.set_topics(private)
        elif feed is not None:
            sink.private = None
            feed.close()
        if sink.closed:  # left while PocketBase was answering
            self._release(sink)
            return
        await self._share(sink, shared)

    def leave(self, sink: Sink) -> None:
        """The sink is gone (disconnect, close, revocation, shutdown): free everything."""
        if sink.closed and sink not in self._sinks:
            return
        sink.closed = True
        sink.clear()
        self._release(sink)

    def drop(self, sink: Sink, why: str) -> None:
        """A sink that does not keep up is let go, so it holds no memory and no one else."""
        if sink.closed:
            return
        self.metrics.sse_dropped.inc()
        sink.dropped = True
        fields: dict[str, object] = {"msg": "realtime client dropped", "reason": why}
        if isinstance(sink, Client):
            fields["client"] = sink.ip
            if sink.sending and sink.task is not None:
                sink.task.cancel()  # its write waits on the client: the connection is cut
        logs.log.warning(fields["msg"], extra={"fields": fields})
        self.leave(sink)

    def _add(self, sink: Sink) -> None:
        self._sinks.add(sink)
        self.metrics.sse_clients.inc()

    def _release(self, sink: Sink) -> None:
        emptied = False
        for topic in sink.shared:
            sinks = self._topics.get(topic)
            if sinks is not None:
                sinks.discard(sink)
                if not sinks:
                    del self._topics[topic]
                    emptied = True
        sink.shared = frozenset()
        if sink.private is not None:
            sink.private.close()
            sink.private = None
        if sink in self._sinks:
            self._sinks.discard(sink)
            self.metrics.sse_clients.dec()
        if isinstance(sink, Client) and self._clients.get(sink.id) is sink:
            del self._clients[sink.id]
        if emptied:
            self._resync_soon()

    # ------------------------------------------------------------------ events

    def _private_event(self, sink: Sink, name: str, data: bytes) -> None:
        tail = name.encode() + b"\ndata:" + data + b"\n\n"
        if sink.deliver(name, data, tail):
            self.metrics.sse_events.inc()
        else:
            self.drop(sink, "buffer full")

    def _fan(self, name: str, data: bytes) -> None:
        sinks = self._topics.get(name)
        if not sinks:
            return
        tail = name.encode() + b"\ndata:" + data + b"\n\n"
        slow = [sink for sink in tuple(sinks) if not sink.deliver(name, data, tail)]
        self.metrics.sse_events.inc(len(sinks) - len(slow))
        for sink in slow:
            self.drop(sink, "buffer full")

    def _shared_gap(self) -> None:
        for sink in {s for sinks in self._topics.values() for s in sinks}:
            sink.gap()

    # ------------------------------------------------------------------ the shared feed

    async def _share(self, sink: Sink, topics: frozenset[str]) -> None:
        old = sink.shared
        sink.shared = topics
        emptied = False
        for topic in old - topics:
            sinks = self._topics.get(topic)
            if sinks is not None:
                sinks.discard(sink)
                if not sinks:
                    del self._topics[topic]
                    emptied = True
        for topic in topics - old:
            self._topics.setdefault(topic, set()).add(sink)
        resync = self._resync
        if topics and resync is not None and not resync.done():
            # a resync in flight may be dropping one of these topics (its last client left just
            # before this one came); it goes on until the subscription matches the topics held,
            # these included: wait for it, so that no event is missed after this returns
            await asyncio.wait({resync})
        feed = self._feed
        if topics and (feed is None or not topics <= set(feed.topics)):
            await self._sync()
        elif emptied:
            self._resync_soon()

    async def _sync(self) -> None:
        feed = self._feed
        if feed is None:
            feed = self._feed = Feed(
                self.upstream,
                [],
                self._fan,
                self._shared_gap,
                self.metrics.upstream_streams,
                **({"rotate": self._rotate} if self._rotate else {}),
            )
        while True:
            wanted = sorted(self._topics)
            await feed.set_topics(wanted)
            if sorted(self._topics) == wanted:
                return

    def _resync_soon(self) -> None:
        """Drop topics no client holds any more from the shared subscription (in the
        background: until then their events reach no one)."""
        if self._feed is None or self.closed or (self._resync and not self._resync.done()):
            return
        self._resync = asyncio.get_running_loop().create_task(self._resync_now())

    async def _resync_now(self) -> None:
        try:
            await self._sync()
        except Exception as exc:  # noqa: BLE001  (the feed resubscribes on its own)
            msg = "realtime: could not update the shared subscription"
            logs.log.warning(msg, extra={"fields": {"msg": msg, "error": str(exc)}})

    # ------------------------------------------------------------------ rolling sessions

    def watch_sessions(self, store: SessionStore, every: float) -> None:
        """End sinks whose session family was revoked: checked every ``every`` seconds and
        whenever ``sessions_revoked`` is called."""
        self._store = store
        self._check_every = every

    def sessions_revoked(self) -> None:
        """A session family was revoked in this process: check now."""
        if self._sweep_now is not None:
            self._sweep_now.set()

    def _start_sweeper(self) -> None:
        if self._store is None or self._sweeper is not None or self.closed:
            return
        self._sweep_now = asyncio.Event()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="sse-sessions")

    async def _sweep(self) -> None:
        assert self._store is not None and self._sweep_now is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_every):
                    await self._sweep_now.wait()
            self._sweep_now.clear()
            for sink in [s for s in self._sinks if s.session is not None]:
                try:
                    alive = await self._store.alive(sink.session or "", time.time())
                except StoreUnavailable:
                    break  # kept until the store answers again
                if not alive:
                    self.leave(sink)

    # ------------------------------------------------------------------ shutdown

    def close_all(self) -> None:
        """End every stream (they finish cleanly; the SDKs reconnect) and refuse new ones."""
        self.closed = True
        for sink in list(self._sinks):
            self.leave(sink)
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    async def aclose(self) -> None:
        self.close_all()
        await self.relay.aclose()
        for task in (self._resync, self._sweeper, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _feed_headers(authorization: bytes | None, client_ip: str) -> Headers:
    ip = client_ip.encode()
    headers: Headers = [(b"x-forwarded-for", ip), (b"x-real-ip", ip)]
    if authorization:
        headers.append((b"authorization", authorization))
    return headers
