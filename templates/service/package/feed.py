"""One upstream realtime subscription kept up: a PocketBase stream with one credential and one
list of topics, whatever PocketBase does to the stream.

``set_topics`` opens the stream on first use (``GET /api/realtime`` on a connection of its own,
``PB_CONNECT``, then ``POST /api/realtime`` with the feed's headers: a credential and the
client IP to forward, or none for a guest) and replaces the topics afterwards; PocketBase's
refusal comes back as ``Refused`` with its answer. Every event goes to ``on_event(name, data)``.

PocketBase ends a stream after 5 idle minutes and any stream after 30, so every ``ROTATE``
seconds (``cachelisten``'s) a new stream is opened and subscribed before the old one is closed;
both listen for ``OVERLAP`` seconds. Meanwhile the old stream's events are passed on and the new
one's held; when the old one closes, the held events it did not deliver (matched on name and
bytes) follow, and the new stream takes over; for ``LEFTOVER`` seconds more, an event the new
stream delivers late that the old one had delivered is still passed over (a loaded PocketBase
can be slower on one stream than another). So a rotation neither loses nor repeats an event
(and adds no reordering of its own: PocketBase itself may deliver two quick writes to one client
in either order, measured with sequential writes on one stream). When a stream ends
otherwise (PocketBase restarted, the connection broke) events may have been missed: the feed
reconnects and resubscribes (backoff 0.5 s doubling to 30 s) and then calls ``on_gap()``, for
its receivers to re-read what they show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import orjson
from prometheus_client import Gauge

from . import logs
from .asgi import Headers
from .cachelisten import BACKOFF_MAX, BACKOFF_MIN, ROTATE
from .pbstream import PBStream, StreamDown
from .upstream import Upstream

#: Seconds the old and the new stream of a rotation both listen (at most half the rotation).
OVERLAP = 2.0
#: Seconds the old stream's deliveries are still matched against the new stream's.
LEFTOVER = 10.0
_JSON = (b"content-type", b"application/json")
_ACCEPT = (b"accept", b"text/event-stream")


class Refused(Exception):
    """PocketBase did not accept a subscription: its answer, to pass on as it is."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        super().__init__(f"subscription refused (HTTP {status})")
        self.status = status
        self.headers = headers
        self.body = body


class Feed:
    """One upstream subscription (see the module). ``headers`` go with every call upstream and
    may be replaced (a guest client that signs in)."""

    def __init__(
        self,
        upstream: Upstream,
        headers: Headers,
        on_event: Callable[[str, bytes], None],
        on_gap: Callable[[], None],
        streams: Gauge,
        rotate: float = ROTATE,
    ) -> None:
        self.headers = headers
        self._upstream = upstream
        self._on_event = on_event
        self._on_gap = on_gap
        self._streams = streams
        self._rotate = rotate
        self._lock = asyncio.Lock()
        self._stream: PBStream | None = None
        self._topics: tuple[str, ...] = ()
        self._keeper: asyncio.Task[None] | None = None
        self._old: PBStream | None = None
        self._seen: dict[tuple[str, bytes], int] = {}
        self._held: list[tuple[str, bytes]] = []
        self._leftover: dict[tuple[str, bytes], int] = {}
        self._closed = False

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics PocketBase has confirmed (204)."""
        return self._topics

    async def set_topics(self, topics: Sequence[str]) -> None:
        """Subscribe to exactly ``topics`` (opening the stream if need be). Raises ``Refused``
        (PocketBase's answer), ``StreamDown`` or ``UpstreamError``."""
        wanted = tuple(topics)
        async with self._lock:
            if self._closed:
                raise StreamDown("the feed is closed")
            if self._stream is None:
                self._stream = await self._open(wanted)
            elif wanted != self._topics:
                await self._post(self._stream.connected.result(), wanted)
            if self._closed:  # closed while PocketBase answered: nothing may outlive it
                self.close()
                raise StreamDown("the feed is closed")
            self._topics = wanted
            if self._keeper is None:
                self._keeper = asyncio.get_running_loop().create_task(
                    self._keep(), name="realtime-feed"
                )

    def close(self) -> None:
        """Close the stream(s) and stop; safe to call more than once."""
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        for stream in (self._stream, self._old):
            if stream is not None:
                stream.close()
        self._stream = self._old = None
        self._held.clear()

    # ------------------------------------------------------------------------ upstream calls

    async def _open(self, topics: tuple[str, ...]) -> PBStream:
        response = await self._upstream.stream("GET", b"/api/realtime", [*self.headers, _ACCEPT])
        holder: list[PBStream] = []
        stream = PBStream(response, lambda name, data: self._event(holder[0], name, data))
        holder.append(stream)
        self._streams.inc()
        stream.task.add_done_callback(lambda _: self._streams.dec())
        try:
            client_id = await asyncio.wait_for(
                asyncio.shield(stream.connected), self._upstream.read_timeout
            )
            await self._post(client_id, topics)
        except BaseException:
            stream.close()
            raise
        return stream

    async def _post(self, client_id: str, topics: tuple[str, ...]) -> None:
        body = orjson.dumps({"clientId": client_id, "subscriptions": list(topics)})
        response = await self._upstream.request(
            "POST", b"/api/realtime", [*self.headers, _JSON], body
        )
        answer = await response.read()
        if response.status != 204:
            raise Refused(response.status, response.headers, answer)

    # ------------------------------------------------------------------------ events

    def _event(self, source: PBStream, name: str, data: bytes) -> None:
        old = self._old
        key = (name, data)
        if old is not None and source is not old:
            self._held.append(key)  # a rotation: the new stream's events wait for the old's end
            return
        if self._leftover and self._passed_over(self._leftover, key):
            return  # delivered late by this stream, already delivered by the one before it
        if old is not None:
            self._seen[key] = self._seen.get(key, 0) + 1
        self._on_event(name, data)

    # ------------------------------------------------------------------------ rotation, gaps

    async def _keep(self) -> None:
        delay = BACKOFF_MIN
        wait = self._rotate
        while True:
            stream = self._stream
            if stream is not None:
                done, _ = await asyncio.wait({stream.task}, timeout=wait)
                if not done:
                    wait = await self._rotate_now(stream)
                    continue
                async with self._lock:
                    if self._stream is stream:
                        self._stream = None
                logs.warn_retry("realtime feed: the upstream stream ended; resubscribing")
            try:
                async with self._lock:
                    if self._stream is None:
                        self._stream = await self._open(self._topics)
            except Exception as exc:  # noqa: BLE001  (retried, whatever it was)
                logs.warn_retry("realtime feed: cannot resubscribe", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_MIN
            wait = self._rotate
            self._on_gap()  # events may have been missed while it was down

    async def _rotate_now(self, old: PBStream) -> float:
        """A new stream before the old one closes; the next wait (shorter after a failure)."""
        async with self._lock:
            if self._stream is not old:
                return self._rotate
            self._old = old
            try:
                new = await self._open(self._topics)
            except Exception as exc:  # noqa: BLE001  (the old stream still serves; retried)
                self._old = None
                self._seen.clear()
                self._held.clear()
                logs.warn_retry(
                    "realtime feed: cannot rotate the upstream stream", exc, BACKOFF_MIN
                )
                return BACKOFF_MIN
            self._stream = new
        asyncio.get_running_loop().call_later(min(OVERLAP, self._rotate / 2), self._retire, old)
        return self._rotate

    def _retire(self, old: PBStream) -> None:
        """Close the old stream; pass on what only the new one delivered, in its order."""
        old.close()
        if self._old is not old:
            return
        self._old = None
        held, seen = self._held, self._seen
        self._held, self._seen = [], {}
        for name, data in held:
            if not self._passed_over(seen, (name, data)):
                self._on_event(name, data)
        self._leftover = seen
        asyncio.get_running_loop().call_later(LEFTOVER, self._forget, seen)

    def _forget(self, seen: dict[tuple[str, bytes], int]) -> None:
        if self._leftover is seen:
            self._leftover = {}

    @staticmethod
    def _passed_over(seen: dict[tuple[str, bytes], int], key: tuple[str, bytes]) -> bool:
        """Whether ``key`` was delivered already (one delivery is used up)."""
        count = seen.get(key, 0)
        if not count:
            return False
        if count == 1:
            del seen[key]
        else:
            seen[key] = count - 1
        return True
