"""ASGI types, the per-request state every layer shares, and the small helpers for reading a
request and sending a whole response.

A request's ``scope`` carries one ``RequestState`` under ``"hapta"`` from the first layer
(``observe``) on: each later layer fills in what it decides (client IP, route, the checked body,
status and size), so nothing is worked out twice and ``observe`` can count and log it at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .errors import JSON_HEADERS, TOO_LARGE, ApiError

if TYPE_CHECKING:
    from .routing import Route
    from .upstream import Body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
#: Counts a batch's record operations, (route name, collection name), against the rate limits.
Charge = Callable[[list[tuple[str, str]]], Awaitable[None]]

#: The ``scope`` key of the request's ``RequestState``.
STATE = "hapta"
#: The ASGI extension (``scope["extensions"]``) of the gateway's server (``server``): its
#: ``headers``, a list of header pairs, are added to the head of the request's response,
#: whichever layer sends it.
RESPONSE_HEADERS = "hapta.response.headers"


class RequestState:
    """What the layers have decided about one request (``scope["hapta"]``)."""

    __slots__ = (
        "body",
        "charge",
        "client",
        "responding",
        "route",
        "session",
        "size",
        "started",
        "status",
        "upstream_ms",
    )

    def __init__(self, client: str, started: float) -> None:
        #: The client's address: the TCP peer, or what a trusted proxy said (``clientip``).
        self.client = client
        #: ``time.perf_counter()`` at arrival.
        self.started = started
        #: The matched endpoint (``routing``); ``None`` until routed.
        self.route: Route | None = None
        #: The checked body to forward (``validate``): bytes, or a spooled upload.
        self.body: bytes | Body = b""
        #: The status sent (or to be counted) and the body bytes sent.
        self.status = 500
        self.size = 0
        #: Milliseconds spent waiting on PocketBase, when it was asked.
        self.upstream_ms: float | None = None
        #: The response has begun: a failure now can only cut the connection.
        self.responding = False
        #: Set by the rate limits on a batch: counts its record operations (``validate`` calls
        #: it once the body is read), raising a 429 ``ApiError`` when one is over its limit.
        self.charge: Charge | None = None
        #: The hash of the caller's session key, when the session layer resolved one.
        self.session: str | None = None

    @property
    def route_name(self) -> str:
        return self.route.name if self.route is not None else "unmatched"


def state(scope: Scope) -> RequestState:
    return scope[STATE]  # type: ignore[no-any-return]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower-case), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's non-empty chunks as they arrive; a disconnect raises ``ClientGone``."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; a 413 past ``limit`` bytes (nothing more is read)."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks(receive):
        total += len(chunk)
        if total > limit:
            raise ApiError(413, TOO_LARGE)
        parts.append(chunk)
    return b"".join(parts)


def add_headers(scope: Scope, send: Send, headers: Headers) -> Send:
    """The ``send`` that puts ``headers`` on the head of the response: ``send`` itself when the
    server has the ``RESPONSE_HEADERS`` extension (they are handed to it), else one that adds
    them to the ``http.response.start`` message."""
    extensions = scope.get("extensions")
    extension = extensions.get(RESPONSE_HEADERS) if extensions is not None else None
    if extension is not None:
        extension["headers"] += headers
        return send
    return _AddHeaders(send, headers)


def take_back_headers(scope: Scope, headers: Headers) -> None:
    """Withdraw ``headers``, given to ``add_headers`` before the response began (the answer
    carries others in their place); ``headers`` is left empty."""
    extensions = scope.get("extensions")
    extension = extensions.get(RESPONSE_HEADERS) if extensions is not None else None
    if extension is not None:
        given: Headers = extension["headers"]
        given[:] = [item for item in given if item not in headers]
    headers.clear()


class _AddHeaders:
    """A ``send`` that adds headers to the response's head and passes every message on; it
    hands back the next ``send``'s awaitable rather than awaiting it (no coroutine of its own)."""

    __slots__ = ("_headers", "_send")

    def __init__(self, send: Send, headers: Headers) -> None:
        self._send = send
        #: Read when the response begins (``take_back_headers`` may have emptied it).
        self._headers: Headers | None = headers

    def __call__(self, message: Message) -> Awaitable[None]:
        headers = self._headers
        if headers is not None and message["type"] == "http.response.start":
            self._headers = None
            message["headers"] = [*message.get("headers", ()), *headers]
        return self._send(message)


async def respond(scope: Scope, send: Send, status: int, headers: Headers, body: bytes) -> None:
    """Send a whole response in two messages and record it in the request's state."""
    st = state(scope)
    st.responding = True
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    st.status = status
    st.size = len(body)


async def send_error(scope: Scope, send: Send, exc: ApiError) -> None:
    """``exc`` in PocketBase's envelope."""
    await respond(scope, send, exc.status, [*JSON_HEADERS, *exc.headers], exc.body())
