"""The end of the chain: the checked request goes to PocketBase and its answer back to the client.

The caller's ``Authorization`` goes to PocketBase unchanged and PocketBase's rules decide; no
credential of the gateway's own is ever added here. Hop-by-hop headers are dropped both ways and
the client address is the one forwarded. Realtime streams (``GET /api/realtime``) get an
upstream connection of their own (``realtime.relay``).
"""

from __future__ import annotations

import time

from ..asgi import Headers, Receive, RequestState, Scope, Send, state
from ..errors import UPSTREAM_DOWN, UPSTREAM_TIMEOUT, ApiError
from ..metrics import Metrics
from ..realtime import relay
from ..routing import REALTIME_CONNECT, Route
from ..upstream import Upstream, UpstreamError, UpstreamTimeout

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
#: Response headers never passed back (hop-by-hop; the server frames the body itself).
_DROP_RESPONSE = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"trailer", b"upgrade"}
)


class Forward:
    def __init__(self, upstream: Upstream, metrics: Metrics) -> None:
        self.upstream = upstream
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        route = st.route
        assert route is not None
        up_started = time.perf_counter()
        try:
            if route is REALTIME_CONNECT and scope["method"] == "GET":
                await self._stream(route, st, scope, receive, send)
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
            if response.complete:  # the usual JSON answer: one message, no streaming
                data = await response.read()
                st.responding = True
                await send(start)
                await send({"type": "http.response.body", "body": data})
                st.size = len(data)
                return
            size = 0
            try:
                async for chunk in response.iter_body():
                    if not st.responding:
                        st.responding = True
                        await send(start)
                    size += len(chunk)
                    st.size = size
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError:
                self.metrics.upstream_call(route.name, "broken")
                if not st.responding:
                    raise ApiError(502, UPSTREAM_DOWN) from None
                raise  # headers are out: the connection is cut, as the upstream's was
            if not st.responding:
                st.responding = True
                await send(start)
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.close()

    async def _stream(
        self, route: Route, st: RequestState, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A realtime stream on an upstream connection of its own (see ``realtime``)."""
        try:
            response = await self.upstream.stream(
                "GET", _target(scope), _upstream_headers(scope, st.client)
            )
        except UpstreamError as exc:
            raise self._failed(route, exc) from None
        self.metrics.upstream_call(route.name, response.status)
        self.metrics.sse_clients.inc()
        try:
            headers = [(k, v) for k, v in response.headers if k not in _DROP_RESPONSE]
            st.status = response.status
            st.responding = True
            st.size = await relay(response, headers, receive, send)
        finally:
            response.close()
            self.metrics.sse_clients.dec()

    def _failed(self, route: Route, exc: UpstreamError) -> ApiError:
        if isinstance(exc, UpstreamTimeout):
            self.metrics.upstream_call(route.name, "timeout")
            return ApiError(504, UPSTREAM_TIMEOUT)
        self.metrics.upstream_call(route.name, "error")
        return ApiError(502, UPSTREAM_DOWN)


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
