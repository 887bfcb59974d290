"""The end of the chain: the checked request goes to PocketBase and its answer back to the client.

The caller's ``Authorization`` goes to PocketBase unchanged (in rolling mode: the token the
session layer put in place of the caller's key) and PocketBase's rules decide; no credential of
the gateway's own is ever added here. Hop-by-hop headers are dropped both ways and
the client address is the one forwarded. Realtime (``GET`` and ``POST /api/realtime``) is
answered by the gateway itself (``realtime``, ``fanout``); its streams count against
``HAPTA_MAX_STREAMS`` and ``HAPTA_MAX_STREAMS_PER_IP``.

A slow reader never holds a pooled upstream connection: an answer is read whole before the client
is sent a byte, in memory up to 64 KiB (the usual JSON, sent as one message), else at
PocketBase's speed into a spool (``Response.read_or_spool``); the connection then goes back to
the pool, the client is sent the spool, and a client that stops reading for
``HAPTA_SEND_TIMEOUT`` seconds is dropped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import logs
from ..asgi import Headers, Message, Receive, RequestState, Scope, Send, header, state
from ..clientip import network_of
from ..errors import BUSY, UPSTREAM_DOWN, UPSTREAM_TIMEOUT, ApiError
from ..fanout import Hub
from ..metrics import Metrics
from ..realtime import apply, serve, subscribe
from ..routing import REALTIME_CONNECT, REALTIME_SUBSCRIBE, Route
from ..streams import StreamSlots
from ..upstream import Upstream, UpstreamBusy, UpstreamError, UpstreamTimeout

#: Request headers never forwarded: hop-by-hop, recomputed, or decided by the gateway.
_DROP_REQUEST = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-real-ip",
        b"forwarded",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    }
)
#: Answers up to this size are sent in one message (the usual JSON); longer ones are spooled
#: and sent piece by piece, each piece within ``HAPTA_SEND_TIMEOUT``.
_INLINE = 64 * 1024
#: Response headers never passed back (hop-by-hop; the server frames the body itself).
_DROP_RESPONSE = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"trailer", b"upgrade"}
)


class SlowClient(Exception):
    """The client did not take a piece of its answer within the send timeout."""


class Forward:
    def __init__(
        self,
        upstream: Upstream,
        metrics: Metrics,
        streams: StreamSlots,
        send_timeout: float,
        realtime: Hub,
    ) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self.streams = streams
        self.send_timeout = send_timeout
        self.realtime = realtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        route = st.route
        assert route is not None
        up_started = time.perf_counter()
        try:
            if route is REALTIME_CONNECT and scope["method"] == "GET":
                await self._stream(st, scope, receive, send)
            elif route is REALTIME_SUBSCRIBE and scope["method"] == "POST":
                await self._subscribe(st, scope, send)
            else:
                await self._forward(route, st, scope, send)
        finally:
            st.upstream_ms = round((time.perf_counter() - up_started) * 1000, 2)

    async def _forward(self, route: Route, st: RequestState, scope: Scope, send: Send) -> None:
        try:
            response = await self.upstream.request(
                scope["method"],
                _target(scope),
                _upstream_headers(scope, st.client),
                st.body,
            )
        except UpstreamError as exc:
            raise self._failed(route, exc) from None
        self.metrics.upstream_call(route.name, response.status)
        start = {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k, v) for k, v in response.headers if k not in _DROP_RESPONSE],
        }
        st.status = response.status
        try:
            # The usual JSON answer is read whole and sent as one message; a long list or a
            # file is read at PocketBase's speed into a spool instead. Either way the pooled
            # connection is free again before the client is sent a byte, so a slow client
            # never holds one.
            try:
                data = await response.read_or_spool(_INLINE)
            except UpstreamTimeout:  # nothing has gone to the client yet
                self.metrics.upstream_call(route.name, "timeout")
                raise ApiError(504, UPSTREAM_TIMEOUT) from None
            except UpstreamError:
                self.metrics.upstream_call(route.name, "broken")
                raise ApiError(502, UPSTREAM_DOWN) from None
            if data is not None:
                st.responding = True
                await send(start)
                await send({"type": "http.response.body", "body": data})
                st.size = len(data)
                return
            st.responding = True
            try:
                await self._send(send, start)
                async for chunk in response.iter_body():
                    await self._send(
                        send, {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
                    st.size += len(chunk)
                await self._send(send, {"type": "http.response.body", "body": b""})
            except SlowClient:
                # Returning unfinished makes the server close the connection.
                _warn_slow(route, st, scope)
        finally:
            response.close()

    async def _stream(self, st: RequestState, scope: Scope, receive: Receive, send: Send) -> None:
        """A realtime stream (``realtime.serve``), within the bounds on streams per client IP
        and in total (``streams``)."""
        with self.streams.slot(network_of(st.client)):
            await self.realtime.relay.start(self._relayed)
            client = self.realtime.connect(st.client)
            st.status = 200
            st.responding = True
            origin = header(scope, b"origin") is not None
            st.size = await serve(self.realtime, client, origin, receive, send)

    async def _relayed(self, request: dict[str, Any]) -> tuple[int, bytes, bytes]:
        return await apply(self.realtime, request)

    async def _subscribe(self, st: RequestState, scope: Scope, send: Send) -> None:
        """``POST /api/realtime``, answered here (``realtime.subscribe``)."""
        body = st.body
        assert isinstance(body, bytes)
        await self.realtime.relay.start(self._relayed)  # (answers from other nodes come to it)
        status, headers, answer = await subscribe(
            self.realtime,
            body,
            header(scope, b"content-type") or b"",
            scope["query_string"],
            header(scope, b"authorization"),
            st.client,
            st.session,
        )
        if header(scope, b"origin") is not None:
            headers = [*headers, (b"access-control-allow-origin", b"*")]
        headers.append((b"vary", b"Origin"))
        st.status = status
        st.size = len(answer)
        st.responding = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _send(self, send: Send, message: Message) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await send(message)
        except TimeoutError:
            raise SlowClient from None

    def _failed(self, route: Route, exc: UpstreamError) -> ApiError:
        if isinstance(exc, UpstreamBusy):
            self.metrics.upstream_call(route.name, "busy")
            return ApiError(503, BUSY)
        if isinstance(exc, UpstreamTimeout):
            self.metrics.upstream_call(route.name, "timeout")
            return ApiError(504, UPSTREAM_TIMEOUT)
        self.metrics.upstream_call(route.name, "error")
        return ApiError(502, UPSTREAM_DOWN)


def _warn_slow(route: Route, st: RequestState, scope: Scope) -> None:
    fields = {
        "msg": "client stopped reading; connection closed",
        "route": route.name,
        "path": scope["path"],
        "client": st.client,
        "sent": st.size,
    }
    logs.log.warning(fields["msg"], extra={"fields": fields})


def _upstream_headers(scope: Scope, client: str) -> Headers:
    """The client's headers minus hop-by-hop ones, with the client IP as the one forwarded."""
    headers = [(k, v) for k, v in scope["headers"] if k not in _DROP_REQUEST]
    ip = client.encode()
    headers.append((b"x-forwarded-for", ip))
    headers.append((b"x-real-ip", ip))
    return headers


def _target(scope: Scope) -> bytes:
    target: bytes = scope.get("raw_path") or scope["path"].encode()
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    return target
