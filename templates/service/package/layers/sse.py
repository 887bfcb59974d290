"""The gateway's own streams, outside PocketBase's ``/api``: typed SSE per collection
(``GET /sse/<collection>``, ``GET /sse/<collection>/<id>``), Datastar streams
(``GET /datastar/<collection>``) and their tickets (``POST /sse/ticket``).

It sits just before ``forward`` in the chain, so a stream's query has been checked like a
list's (``filter`` and ``expand`` never reach an excluded collection), and in rolling mode its
``Authorization`` is already PocketBase's token. Other routes pass through.

Typed SSE: events ``create`` / ``update`` / ``delete`` whose ``data`` is PocketBase's payload
``{"action", "record"}``, each with an ``id:``; ``reset`` when the client must re-read the list
(``ssefeed``). Datastar: the list is read at the start (and after a ``reset``) and patched in
whole; then each event patches one record element (``datastar-patch-elements``) and the count
(``datastar-patch-signals``). Every stream gets a heartbeat comment every
``HAPTA_SSE_HEARTBEAT`` seconds; a client that does not take its events in time is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from datastar_py import ServerSentEventGenerator as SSE
from datastar_py.consts import ElementPatchMode

from ..asgi import Headers, Receive, RequestState, Scope, Send, header, respond, state
from ..clientip import network_of
from ..errors import BAD_REQUEST, JSON_HEADERS, NOT_FOUND, UPSTREAM_DOWN, ApiError, invalid
from ..eventsource import EventSourceError
from ..fragments import Fragments, element_id
from ..gorequest import first, query_pairs
from ..metrics import Metrics
from ..realtime import MAX_TOPIC
from ..routing import DATASTAR_LIST, SSE_LIST, SSE_TICKET, SSE_VIEW, Route
from ..spec import CollectionSpec
from ..ssefeed import RESET, Event, Feeds, Subscriber
from ..sseticket import Tickets
from ..streams import StreamSlots
from ..upstream import Upstream, UpstreamError
from ..validation import expanded

INVALID_TICKET = "The stream ticket is invalid, expired or already used."
NEEDS_AUTHORIZATION = "The request requires valid record authorization token."
CREDENTIAL_TOO_LONG = "The authorization token is too long for a stream ticket."
#: Longest credential a ticket holds (a PocketBase token or session key is a few hundred bytes):
#: the tickets are bounded in number (``sseticket``), so each must be bounded in size.
MAX_CREDENTIAL = 4096
_STREAM_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
_HEARTBEAT = b": heartbeat\n\n"
_OPTIONS = ("filter", "expand", "fields")
#: Records a Datastar stream reads for its first patch.
LIST_SIZE = 100


class SseStreams:
    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        feeds: Feeds,
        tickets: Tickets,
        slots: StreamSlots,
        upstream: Upstream,
        metrics: Metrics,
        fragments: Fragments,
        *,
        heartbeat: float,
        send_timeout: float,
    ) -> None:
        self.app = app
        self.feeds = feeds
        self.tickets = tickets
        self.slots = slots
        self.upstream = upstream
        self.metrics = metrics
        self.fragments = fragments
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        route = st.route
        assert route is not None
        if route is SSE_TICKET:
            await self._ticket(scope, send)
        elif route.name in (SSE_LIST.name, SSE_VIEW.name, DATASTAR_LIST.name):
            if scope["method"] != "GET":
                raise ApiError(404, NOT_FOUND)
            await self._stream(route, st, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # ------------------------------------------------------------------------ tickets

    async def _ticket(self, scope: Scope, send: Send) -> None:
        credential = header(scope, b"authorization")
        if not credential:
            raise ApiError(401, NEEDS_AUTHORIZATION)
        if len(credential) > MAX_CREDENTIAL:  # tickets are bounded in number: in bytes too
            raise ApiError(400, CREDENTIAL_TOO_LONG)
        session = (state(scope).session or "").encode()
        ticket, expires = await self.tickets.issue(session + b"\n" + credential)
        body = orjson.dumps({"ticket": ticket, "expires": expires})
        await respond(scope, send, 200, [*JSON_HEADERS, (b"cache-control", b"no-store")], body)

    async def _credential(
        self, scope: Scope, pairs: list[tuple[str, str]]
    ) -> tuple[bytes | None, str | None]:
        """``Authorization``, or what a ``?ticket=`` stands for (spent now), never both; with
        the rolling session it came from (its revocation ends the stream)."""
        given = header(scope, b"authorization")
        ticket = first(pairs, "ticket")
        if not any(k == "ticket" for k, _ in pairs):
            return given or None, state(scope).session
        if given:
            raise invalid(
                BAD_REQUEST, "ticket", "validation_invalid_ticket", "Send a ticket or a token."
            )
        kept = await self.tickets.redeem(ticket) if ticket else None
        if kept is None:
            raise ApiError(401, INVALID_TICKET)
        session, _, credential = kept.partition(b"\n")
        return credential, session.decode() or None

    # ------------------------------------------------------------------------ streams

    async def _stream(
        self, route: Route, st: RequestState, scope: Scope, receive: Receive, send: Send
    ) -> None:
        spec = route.collection
        assert spec is not None
        pairs = query_pairs(scope["query_string"])
        _no_hidden(spec, first(pairs, "expand"))
        credential, session = await self._credential(scope, pairs)
        datastar = route.name == DATASTAR_LIST.name
        if datastar:
            pairs = _with_id(pairs)
        topic = _topic(spec, route.record_id, pairs)
        endpoint = "datastar" if datastar else "sse"
        last = None if datastar else _last_event_id(scope, pairs)
        with self.slots.slot(network_of(st.client)):
            try:
                sub = await self.feeds.join(topic, credential, st.client, last, endpoint, session)
            except EventSourceError:
                raise ApiError(502, UPSTREAM_DOWN) from None
            clients = self.metrics.sse_clients_by.labels(endpoint)
            clients.inc()
            try:
                if datastar:
                    lister = _Lister(self.upstream, spec, pairs, credential, st.client)
                    first_patch = await lister.patch(self.fragments)  # before the head: a 4xx
                    writer: _Writer = _DatastarWriter(spec, self.fragments, lister, first_patch)
                else:
                    writer = _SseWriter(sub.position if last is None else "")
                st.status = 200
                st.responding = True
                await self._pump(sub, writer, receive, send)
            finally:
                clients.dec()
                self.feeds.leave(sub)

    async def _pump(self, sub: Subscriber, writer: _Writer, receive: Receive, send: Send) -> None:
        """Send the stream until the client leaves, falls behind, or the feed closes."""
        events = self.metrics.sse_events_by.labels(sub.endpoint)

        async def out(data: bytes) -> None:
            async with asyncio.timeout(self.send_timeout):
                await send({"type": "http.response.body", "body": data, "more_body": True})

        async def pump() -> None:
            await out_start()
            opening = await writer.opening()
            if opening:
                await out(opening)
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), self.heartbeat)
                except TimeoutError:
                    await out(_HEARTBEAT)
                    continue
                data = await writer.event(event)
                if data:
                    await out(data)
                    events.inc()

        async def out_start() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})

        tasks = [
            asyncio.ensure_future(pump()),
            asyncio.ensure_future(_disconnected(receive)),
            asyncio.ensure_future(sub.dropped.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
        pumped = tasks[0]
        if (
            pumped in done
            and not pumped.cancelled()
            and isinstance(pumped.exception(), TimeoutError)
        ):
            self.metrics.sse_dropped_by.labels(sub.endpoint).inc()  # would not take its events
        # Returning without the last body message makes the server close the connection.


class _Writer:
    async def opening(self) -> bytes:
        return b""

    async def event(self, event: Event) -> bytes:
        raise NotImplementedError


class _SseWriter(_Writer):
    """Typed SSE: PocketBase's payload as it came, named by its action."""

    def __init__(self, position: str) -> None:
        self.position = position

    async def opening(self) -> bytes:
        # An ``id:`` alone: no event, but the client's Last-Event-ID is where it joined.
        return f"id: {self.position}\n\n".encode() if self.position else b""

    async def event(self, event: Event) -> bytes:
        data = event.data.replace(b"\n", b"\ndata: ")
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (event.id.encode(), event.name.encode(), data)


class _DatastarWriter(_Writer):
    def __init__(
        self, spec: CollectionSpec, fragments: Fragments, lister: _Lister, first_patch: bytes
    ) -> None:
        self.spec = spec
        self.fragments = fragments
        self.lister = lister
        self.first_patch = first_patch

    async def opening(self) -> bytes:
        return self.first_patch

    async def event(self, event: Event) -> bytes:
        name = self.spec.name
        if event.name == RESET:
            return await self.lister.patch(self.fragments)
        try:
            record: dict[str, Any] = orjson.loads(event.data)["record"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return b""
        shown = self.lister.shown
        record_id = str(record.get("id", ""))
        leaving = ""  # the element pushed off the page's bottom
        if event.name == "delete":
            self.lister.count = max(0, self.lister.count - 1)
            if record_id not in shown:  # beyond the first page: only the count changes
                return self.lister.signals().encode()
            del shown[record_id]
            patch = SSE.patch_elements(
                selector=f"#{element_id(name, record)}", mode=ElementPatchMode.REMOVE
            )
        elif record_id in shown:  # an update, or a create the first list read already had
            patch = SSE.patch_elements(self.fragments.render(name, record))
        else:  # a create, or an update to a record not on the page (shown from now on)
            shown[record_id] = None  # on top
            if event.name == "create":  # an update changes no total
                self.lister.count += 1
            patch = SSE.patch_elements(
                self.fragments.render(name, record),
                selector=f"#{list_id(name)}",
                mode=ElementPatchMode.PREPEND,
            )
            if len(shown) > LIST_SIZE:  # the bottom one leaves the page: it stays a page
                bottom = next(iter(shown))
                del shown[bottom]
                leaving = SSE.patch_elements(
                    selector=f"#{element_id(name, {'id': bottom})}", mode=ElementPatchMode.REMOVE
                )
        return (patch + leaving + self.lister.signals()).encode()


class _Lister:
    """Reads the list as the caller (the first patch, and again after a ``reset``)."""

    def __init__(
        self,
        upstream: Upstream,
        spec: CollectionSpec,
        pairs: list[tuple[str, str]],
        credential: bytes | None,
        client: str,
    ) -> None:
        self.upstream = upstream
        self.spec = spec
        query: dict[str, str] = {"perPage": str(LIST_SIZE)}
        if "created" in spec.field_by_name:
            query["sort"] = "-created"
        for key in _OPTIONS:
            value = first(pairs, key)
            if value:
                query[key] = value
        self.target = f"/api/collections/{quote(spec.name)}/records?{urlencode(query)}".encode()
        self.headers: Headers = [(b"x-forwarded-for", client.encode())]
        if credential:
            self.headers.append((b"authorization", credential))
        self.count = 0
        #: Ids of the records whose elements are on the page, bottom first (at most
        #: ``LIST_SIZE``: a new one on top pushes the bottom one off).
        self.shown: dict[str, None] = {}

    async def patch(self, fragments: Fragments) -> bytes:
        try:
            response = await self.upstream.request("GET", self.target, self.headers)
            body = await response.read()
        except UpstreamError:
            raise ApiError(502, UPSTREAM_DOWN) from None
        if response.status != 200:
            raise ApiError(response.status, "The list could not be read.")
        page = orjson.loads(body)
        records = page.get("items", [])
        self.shown = {str(r.get("id", "")): None for r in reversed(records)}
        items = [fragments.render(self.spec.name, r) for r in records]
        self.count = int(page.get("totalItems", len(items)))
        patch = SSE.patch_elements(
            "\n".join(items), selector=f"#{list_id(self.spec.name)}", mode=ElementPatchMode.INNER
        )
        return (patch + self.signals()).encode()

    def signals(self) -> str:
        return str(SSE.patch_signals({self.spec.name: {"count": self.count}}))


def list_id(collection: str) -> str:
    """The id of the element a Datastar stream fills with ``collection``'s records."""
    return f"{collection}-records"


def _no_hidden(spec: CollectionSpec, expand: str) -> None:
    """Refuse a stream whose events could carry a field ``hapta.yaml`` hides: events are
    PocketBase's payloads, relayed whole (as on ``/api/realtime``)."""
    for target in [spec, *(expanded(spec, expand) if expand else ())]:
        if target.hidden:
            raise invalid(
                BAD_REQUEST,
                "expand" if target is not spec else "collection",
                "validation_not_allowed",
                f"{target.name!r} has hidden fields: not available as a stream.",
            )


def _with_id(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``fields`` with ``id`` added when it leaves it out: a Datastar element is found by its
    record's id (``element_id``)."""
    out = []
    for key, value in pairs:
        if key == "fields" and value.strip():
            names = {name.strip().partition(":")[0] for name in value.split(",")}
            if not names & {"id", "*"}:
                value += ",id"
        out.append((key, value))
    return out


def _topic(spec: CollectionSpec, record_id: str, pairs: list[tuple[str, str]]) -> str:
    """PocketBase's topic for the stream, with its ``?options=`` when a query shapes it."""
    topic = f"{spec.name}/{record_id or '*'}"
    query = {key: value for key in _OPTIONS if (value := first(pairs, key))}
    if query:
        topic += "?options=" + quote(orjson.dumps({"query": query}).decode(), safe="")
    if len(topic) > MAX_TOPIC:
        raise invalid(
            BAD_REQUEST,
            "filter",
            "validation_length_too_long",
            f"The stream's options must be no more than {MAX_TOPIC} characters encoded.",
        )
    return topic


def _last_event_id(scope: Scope, pairs: list[tuple[str, str]]) -> str | None:
    given = header(scope, b"last-event-id")
    if given is not None:
        return given.decode("latin-1")
    if any(k == "lastEventId" for k, _ in pairs):
        return first(pairs, "lastEventId")
    return None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
