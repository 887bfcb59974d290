"""Feeds: one upstream subscription shared by the gateway's stream clients that would receive
exactly the same events, with a bounded ring of recent events for ``Last-Event-ID`` resumes.

A feed is keyed by (topic, credential, client IP): everything PocketBase's rules can read about
a subscriber. So sharing never changes what a client receives (two tabs of one user share one
upstream stream; guests from one IP share theirs), and PocketBase still decides every delivery.

Event ids are ``<epoch>-<seq>``. The epoch changes whenever events may have been missed (the
upstream stream dropped and was made again), and the clients then get a ``reset`` event: they
re-read the list. A client resuming with an id of the current epoch whose following events are
still in the ring gets them replayed; any other id gets a ``reset`` first.

Each client has a bounded queue (``HAPTA_SSE_CLIENT_BUFFER``): a client that lets it fill is
dropped (``dropped`` is set) and the others go on. When the last client leaves, the feed stays
``HAPTA_SSE_RESUME_WINDOW`` seconds (so a reconnecting client resumes), then its upstream stream
is closed.

PocketBase ends an idle stream after 5 minutes and any stream after 30, so every
``HAPTA_SSE_ROTATE`` seconds (240) a new subscription is made before the old one is closed;
while both are open, an event that arrives on both is delivered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from . import logs
from .eventsource import READY, EventSource, EventSourceError, Stopping
from .metrics import Metrics

#: Both subscriptions are read this long after the new one is live.
_OVERLAP = 1.0
_BACKOFF_MIN = 0.5
_BACKOFF_MAX = 10.0
#: The event telling a client to re-read the list: events may have been missed.
RESET = "reset"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    data: bytes


@dataclass(eq=False)
class Subscriber:
    """One client of a feed: its queue of events, and ``dropped`` once it fell behind."""

    feed: Feed
    endpoint: str
    queue: asyncio.Queue[Event]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    #: Where the client starts: the id of the last event before it joined.
    position: str = ""


#: Feeds kept open with no client (for resumes) at most: past it the oldest closes, so clients
#: that come and go with ever new queries cannot hold upstream subscriptions without a stream
#: slot (``HAPTA_MAX_STREAMS*`` count the connected ones).
MAX_LINGERING = 256


class Feeds:
    """The node's feeds by key; ``join`` and ``leave`` are the only entry points."""

    def __init__(
        self,
        source: EventSource,
        metrics: Metrics,
        *,
        client_buffer: int,
        resume_events: int,
        resume_window: float,
        rotate: float = 240.0,
    ) -> None:
        self.source = source
        self.rotate = rotate
        self.metrics = metrics
        self.client_buffer = client_buffer
        self.resume_events = resume_events
        self.resume_window = resume_window
        self._feeds: dict[str, Feed] = {}
        #: Feeds without a client, oldest first.
        self.lingering: dict[Feed, None] = {}

    def __len__(self) -> int:
        return len(self._feeds)

    async def join(
        self,
        topic: str,
        authorization: bytes | None,
        client_ip: str,
        last_event_id: str | None,
        endpoint: str,
        session: str | None = None,
    ) -> Subscriber:
        """A subscriber whose queue holds what it missed (or a ``reset``), once the feed's
        subscription is live; raises ``EventSourceError`` when it cannot be made."""
        key = _key(topic, authorization, client_ip)
        feed = self._feeds.get(key)
        if feed is None or feed.closed:
            feed = self._feeds[key] = Feed(self, key, topic, authorization, client_ip, session)
            feed.start()
        feed.hold()
        try:
            await feed.live()
        except BaseException:
            feed.release()
            raise
        return feed.add(endpoint, last_event_id)

    def leave(self, subscriber: Subscriber) -> None:
        subscriber.feed.remove(subscriber)

    def _forget(self, feed: Feed) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    async def aclose(self) -> None:
        for feed in list(self._feeds.values()):
            await feed.aclose()
        self._feeds.clear()


class Feed:
    def __init__(
        self,
        feeds: Feeds,
        key: str,
        topic: str,
        authorization: bytes | None,
        client_ip: str,
        session: str | None = None,
    ) -> None:
        self.feeds = feeds
        self.key = key
        self.topic = topic
        self._authorization = authorization
        self._client_ip = client_ip
        #: The rolling session the credential came from: its revocation ends the feed.
        self._session = session
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.ring: deque[Event] = deque(maxlen=max(feeds.resume_events, 1))
        self.subscribers: set[Subscriber] = set()
        self.closed = False
        self._holds = 0
        self._live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._seen: set[int] | None = None  # while two subscriptions overlap

    # ------------------------------------------------------------------------ clients

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sse-feed")

    async def live(self) -> None:
        await asyncio.shield(self._live)

    def hold(self) -> None:
        self._holds += 1
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.feeds.lingering.pop(self, None)

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0 and not self.closed:
            if self.feeds.resume_window <= 0 or not self._live.done() or self._failed():
                self._close_now()
            else:
                loop = asyncio.get_running_loop()
                self._linger = loop.call_later(self.feeds.resume_window, self._close_now)
                lingering = self.feeds.lingering
                lingering[self] = None
                if len(lingering) > MAX_LINGERING:
                    next(iter(lingering))._close_now()

    def add(self, endpoint: str, last_event_id: str | None) -> Subscriber:
        queue: asyncio.Queue[Event] = asyncio.Queue(self.feeds.client_buffer)
        sub = Subscriber(self, endpoint, queue, position=self._id(self.seq))
        if last_event_id is not None:
            missed = self._since(last_event_id)
            if missed is None or len(missed) >= queue.maxsize:  # gone, or more than it may hold
                missed = [self._reset_event()]
            for event in missed:
                queue.put_nowait(event)
        self.subscribers.add(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            self.release()

    def _since(self, last_event_id: str) -> list[Event] | None:
        """The events after ``last_event_id``, or ``None`` when they are not all held."""
        epoch, _, seq_text = last_event_id.partition("-")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self.seq:
            return None
        oldest = self.seq - len(self.ring)  # the ring holds seq oldest+1 .. self.seq
        if seq < oldest:
            return None
        return list(self.ring)[len(self.ring) - (self.seq - seq) :]

    def _reset_event(self) -> Event:
        return Event(self._id(self.seq), RESET, b"{}")

    def _id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    # ------------------------------------------------------------------------ events

    def publish(self, name: str, data: bytes) -> None:
        if self._seen is not None:
            digest = hash(data)
            if digest in self._seen:
                return
            self._seen.add(digest)
        self.seq += 1
        event = Event(self._id(self.seq), name, data)
        if self.feeds.resume_events:
            self.ring.append(event)
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped.set()
        self.feeds.metrics.sse_dropped_by.labels(sub.endpoint).inc()
        self.remove(sub)

    def _restart(self) -> None:
        """Events may have been missed: a new epoch, and every client re-reads."""
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.ring.clear()
        self._deliver(self._reset_event())

    # ------------------------------------------------------------------------ upstream

    async def _run(self) -> None:
        gauge = self.feeds.metrics.upstream_streams_by.labels("sse")
        current: _Session | None = None
        delay = _BACKOFF_MIN
        try:
            while True:
                try:
                    session = await _Session.open(self)
                except Stopping:  # the clients' streams end too: they reconnect elsewhere
                    self._close_now()
                    return
                except EventSourceError as exc:
                    if not self._live.done():
                        self._live.set_exception(exc)
                        self._close_now()
                        return
                    if exc.status in (401, 403, 404):  # refused now (an expired credential...):
                        self._close_now()  # the clients reconnect and are answered then
                        return
                    logs.warn_retry("sse feed: cannot subscribe again", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)
                    continue
                gauge.inc()
                delay = _BACKOFF_MIN
                if current is not None and current.task.done():  # it ended while retrying
                    current = None
                    gauge.dec()
                if not self._live.done():
                    self._live.set_result(None)
                elif current is None:
                    self._restart()
                else:  # rotation: both listen for a moment, each event delivered once
                    old, current = current, session
                    self._seen = set()
                    try:
                        await asyncio.sleep(_OVERLAP)
                    finally:
                        old.close()
                        gauge.dec()
                        self._seen = None
                current = session
                done, _ = await asyncio.wait({session.task}, timeout=self.feeds.rotate)
                if done:
                    current = None
                    gauge.dec()
                    if not session.task.cancelled() and isinstance(
                        session.task.exception(), Stopping
                    ):  # a revoked session or a shutdown: the clients' streams end
                        self._close_now()
                        return
        finally:
            if current is not None:
                current.close()
                gauge.dec()

    def _failed(self) -> bool:
        return self._live.done() and self._live.exception() is not None

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.feeds.lingering.pop(self, None)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.feeds._forget(self)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        for sub in list(self.subscribers):
            sub.dropped.set()
        if not self._live.done():
            self._live.set_exception(EventSourceError("the feed was closed"))
            self._live.exception()  # retrieved: nobody else may wait for it

    async def aclose(self) -> None:
        self._close_now()
        if self._linger is not None:
            self._linger.cancel()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Session:
    """One upstream subscription being read into its feed."""

    def __init__(self, events: AsyncGenerator[tuple[str, bytes], None], feed: Feed) -> None:
        self._events = events
        self.task = asyncio.get_running_loop().create_task(self._read(feed), name="sse-upstream")

    @classmethod
    async def open(cls, feed: Feed) -> _Session:
        events = feed.feeds.source(feed.topic, feed._authorization, feed._client_ip, feed._session)
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise EventSourceError("the stream ended before the subscription") from None
        except BaseException:
            await events.aclose()
            raise
        if first[0] != READY:
            await events.aclose()
            raise EventSourceError("the source did not say it was ready")
        return cls(events, feed)

    async def _read(self, feed: Feed) -> None:
        try:
            async for name, data in self._events:
                feed.publish(name, data)
        finally:
            await self._events.aclose()

    def close(self) -> None:
        self.task.cancel()


def _key(topic: str, authorization: bytes | None, client_ip: str) -> str:
    digest = hashlib.sha256(authorization or b"").hexdigest()
    return f"{topic}\x00{digest}\x00{client_ip}"
