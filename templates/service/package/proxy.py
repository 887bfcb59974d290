"""The request path for PocketBase's API, as a pure ASGI application (no framework routing).

    route → client IP → [rate limit] → [cache lookup] → query + body checks → upstream → response

The bracketed steps are where the rate limiter and the cache go (``before_upstream``); today
they let everything through. The caller's ``Authorization`` goes to PocketBase unchanged and
PocketBase's rules decide; no credential of the gateway's own is ever added here. Realtime
streams (``GET /api/realtime``) take the same path to a connection of their own (``realtime``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from . import logs
from .clientip import ClientIP
from .errors import (
    BAD_REQUEST,
    JSON_HEADERS,
    TOO_LARGE,
    UPSTREAM_DOWN,
    UPSTREAM_TIMEOUT,
    ApiError,
    envelope,
    invalid,
)
from .files import MultipartReader, boundary_of, multipart_fields, upload_limit
from .metrics import Metrics
from .offload import run_checked
from .realtime import check_subscribe, relay
from .routing import BATCH, REALTIME_CONNECT, REALTIME_SUBSCRIBE, Route, match
from .settings import Settings
from .streams import StreamSlots
from .upstream import Body, FileBody, Upstream, UpstreamError, UpstreamTimeout
from .validation import (
    check_batch_requests,
    check_form_fields,
    check_form_record,
    check_json_record,
    check_query,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

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
_BODY_ROUTES = frozenset({"records.create", "records.update"})
_STARTED = "hapta.response_started"


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class Proxy:
    """Answers ``/api/...``: checks what it can, forwards the rest to PocketBase."""

    def __init__(
        self,
        settings: Settings,
        upstream: Upstream,
        metrics: Metrics,
        access_log: logs.AccessLog | None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.metrics = metrics
        self.client_ip = ClientIP(settings.trusted_proxies)
        self.streams = StreamSlots.from_settings(settings)
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        route_name = "unmatched"
        status = 500
        size = 0
        upstream_ms: float | None = None
        peer = scope["client"][0] if scope.get("client") else ""
        client = peer
        try:
            route = match(method, scope["path"])
            route_name = route.name
            client = self.client_ip.resolve(peer, _header(scope, b"x-forwarded-for"))
            # Rate limits and the cache will answer here, before anything is read or checked.
            if scope["query_string"]:
                check_query(route.name, route.collection, scope["query_string"])
            body = await self._body(route, scope, receive)
            up_started = time.perf_counter()
            try:
                if route is REALTIME_CONNECT and method == "GET":
                    status, size = await self._stream(route, scope, receive, send, client)
                else:
                    status, size = await self._forward(route, scope, send, body, client)
            finally:
                upstream_ms = round((time.perf_counter() - up_started) * 1000, 2)
                if isinstance(body, FileBody):
                    body.file.close()
        except ApiError as exc:
            status = exc.status
            size = await _send_error(send, exc)
        except ClientGone:
            status = 499
        except Exception:
            if scope.get(_STARTED):  # the response is under way: all there is to do is cut it
                raise
            logs.log.exception(
                "request failed", extra={"fields": {"msg": "request failed", "path": scope["path"]}}
            )
            size = await _send_error(send, ApiError(500, BAD_REQUEST))
        finally:
            self.metrics.observe(route_name, method, status, time.perf_counter() - started)
            if self.access_log is not None:
                self.access_log.write(
                    method=method,
                    path=scope["path"],
                    route=route_name,
                    status=status,
                    started=started,
                    client=client,
                    upstream_ms=upstream_ms,
                    size=size,
                )

    # ------------------------------------------------------------------ request body

    async def _body(self, route: Route, scope: Scope, receive: Receive) -> bytes | Body:
        """The body to forward, read and checked; multipart arrives as a spooled file."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return b""
        content_type = _header(scope, b"content-type") or b""
        spec = route.collection
        if route.name in _BODY_ROUTES and spec is not None:
            boundary = boundary_of(content_type)
            if boundary is not None:
                return await self._multipart(route, receive, boundary)
        raw = await _read(receive, self.settings.max_body_size)
        size = len(raw)  # large bodies are checked off the event loop (``offload``)
        if route.name in _BODY_ROUTES and spec is not None:
            if content_type.startswith(b"application/x-www-form-urlencoded"):
                await run_checked(check_form_record, route.name, spec, raw, size=size)
            else:
                await run_checked(check_json_record, route.name, spec, raw, size=size)
        elif route is BATCH:
            await run_checked(_check_batch, raw, content_type, size=size)
        elif route is REALTIME_SUBSCRIBE:
            await run_checked(check_subscribe, raw, content_type, size=size)
        return raw

    async def _multipart(self, route: Route, receive: Receive, boundary: bytes) -> Body:
        spec = route.collection
        assert spec is not None
        reader = MultipartReader(
            boundary,
            spec,
            route.name,
            limit=upload_limit(spec, self.settings.max_body_size),
            text_limit=self.settings.max_body_size,
        )
        try:
            async for chunk in _chunks(receive):
                reader.feed(chunk)
            parsed = reader.finish()
            uploads = [u.key.strip("+") for u in parsed.uploads]
            text_size = parsed.length - sum(u.size for u in parsed.uploads)
            await run_checked(
                check_form_fields, route.name, spec, parsed.fields, uploads, size=text_size
            )
        except BaseException:
            reader.body.close()
            raise
        return FileBody(parsed.spool, parsed.length)

    # ------------------------------------------------------------------ upstream

    async def _forward(
        self, route: Route, scope: Scope, send: Send, body: bytes | Body, client: str
    ) -> tuple[int, int]:
        try:
            response = await self.upstream.request(
                scope["method"], _target(scope), _upstream_headers(scope, client), body
            )
        except UpstreamError as exc:
            raise self._upstream_failed(route, exc) from None
        self.metrics.upstream_call(route.name, response.status)
        out_headers = [(k, v) for k, v in response.headers if k not in _DROP_RESPONSE]
        scope[_STARTED] = True
        try:
            if response.complete:  # the usual JSON answer: one message, no streaming
                data = await response.read()
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": out_headers,
                    }
                )
                await send({"type": "http.response.body", "body": data})
                return response.status, len(data)
            size = 0
            started = False
            try:
                async for chunk in response.iter_body():
                    if not started:
                        await send(
                            {
                                "type": "http.response.start",
                                "status": response.status,
                                "headers": out_headers,
                            }
                        )
                        started = True
                    size += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError:
                self.metrics.upstream_call(route.name, "broken")
                if not started:
                    raise ApiError(502, UPSTREAM_DOWN) from None
                raise  # headers are out: the connection is cut, as the upstream's was
            if not started:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": out_headers,
                    }
                )
            await send({"type": "http.response.body", "body": b""})
            return response.status, size
        finally:
            response.close()

    async def _stream(
        self, route: Route, scope: Scope, receive: Receive, send: Send, client: str
    ) -> tuple[int, int]:
        """A realtime stream on an upstream connection of its own (see ``realtime``)."""
        with self.streams.slot(client):  # 429 / 503 past the bounds, before PocketBase is asked
            try:
                response = await self.upstream.stream(
                    "GET", _target(scope), _upstream_headers(scope, client)
                )
            except UpstreamError as exc:
                raise self._upstream_failed(route, exc) from None
            self.metrics.upstream_call(route.name, response.status)
            self.metrics.sse_clients.inc()
            try:
                out_headers = [(k, v) for k, v in response.headers if k not in _DROP_RESPONSE]
                scope[_STARTED] = True
                return response.status, await relay(response, out_headers, receive, send)
            finally:
                response.close()
                self.metrics.sse_clients.dec()

    def _upstream_failed(self, route: Route, exc: UpstreamError) -> ApiError:
        if isinstance(exc, UpstreamTimeout):
            self.metrics.upstream_call(route.name, "timeout")
            return ApiError(504, UPSTREAM_TIMEOUT)
        self.metrics.upstream_call(route.name, "error")
        return ApiError(502, UPSTREAM_DOWN)


def _upstream_headers(scope: Scope, client: str) -> list[tuple[bytes, bytes]]:
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


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
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


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in _chunks(receive):
        total += len(chunk)
        if total > limit:
            raise ApiError(413, TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


async def _send_error(send: Send, exc: ApiError) -> int:
    body = envelope(exc.status, exc.message, exc.data)
    await send({"type": "http.response.start", "status": exc.status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})
    return len(body)


def _check_batch(raw: bytes, content_type: bytes) -> None:
    """Each sub-request of ``/api/batch`` must be a record write to an exposed collection with
    a valid body; failures use PocketBase's batch envelope (``data.requests.<i>``)."""
    if boundary_of(content_type) is not None:
        payload = _multipart_json_payload(raw, content_type)
    else:
        try:
            payload = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise ApiError(400, BAD_REQUEST) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise invalid(
            "Batch transaction failed.", "requests", "validation_required", "Cannot be blank."
        )
    check_batch_requests(payload["requests"])


def _multipart_json_payload(raw: bytes, content_type: bytes) -> Any:
    boundary = boundary_of(content_type)
    assert boundary is not None
    for name, value in multipart_fields(raw, boundary):
        if name == "@jsonPayload":
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ApiError(400, BAD_REQUEST) from None
    return {}
