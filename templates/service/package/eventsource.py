"""Where the typed SSE and Datastar streams get their record events: a tiny interface, and its
implementation on PocketBase's own realtime.

An ``EventSource`` is opened with ``(topic, authorization, client ip)`` and is an async
iterator of ``(event name, data bytes)``: first ``(READY, b"")`` once the subscription is live
(events written from then on are delivered), then ``("create" | "update" | "delete",
PocketBase's payload)``. It ends when the upstream stream ends (the caller reconnects) and
raises ``EventSourceError`` when the subscription cannot be made. Closing the iterator
(``aclose``) frees everything it holds.

``upstream_events`` subscribes with the caller's own credential on a stream connection of its
own, so PocketBase alone decides which events arrive: correct by construction. A shared
per-node hub for public topics can implement the same interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

import orjson

from .upstream import Response, Upstream, UpstreamError

#: The first item of every source: the subscription is live.
READY = ""
ACTIONS = frozenset({"create", "update", "delete"})

EventSource = Callable[[str, bytes | None, str], AsyncGenerator[tuple[str, bytes], None]]


class Stopping(Exception):
    """The gateway is shutting down: no source will be opened again."""


class EventSourceError(Exception):
    """The subscription could not be made (PocketBase refused it or is unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        #: PocketBase's HTTP status when it answered (403 / 404 ...), else 0.
        self.status = status


def upstream_source(upstream: Upstream) -> EventSource:
    """The ``EventSource`` on ``upstream``: one PocketBase realtime stream per opening."""

    def open_source(
        topic: str, authorization: bytes | None, client_ip: str
    ) -> AsyncGenerator[tuple[str, bytes], None]:
        return upstream_events(upstream, topic, authorization, client_ip)

    return open_source


async def upstream_events(
    upstream: Upstream, topic: str, authorization: bytes | None, client_ip: str
) -> AsyncGenerator[tuple[str, bytes], None]:
    """Subscribe ``topic`` on PocketBase's realtime as the caller (``authorization``, and the
    client IP forwarded on both the stream and the subscription, as PocketBase requires)."""
    forwarded = [(b"x-forwarded-for", client_ip.encode()), (b"x-real-ip", client_ip.encode())]
    if upstream.streams_closed:
        raise Stopping("the gateway is stopping")
    try:
        stream = await upstream.stream(
            "GET", b"/api/realtime", [(b"accept", b"text/event-stream"), *forwarded]
        )
    except UpstreamError as exc:
        raise EventSourceError(f"cannot open PocketBase's realtime: {exc}") from None
    try:
        if stream.status != 200:
            raise EventSourceError(f"realtime answered HTTP {stream.status}", stream.status)
        blocks = _blocks(stream)
        client_id = await asyncio.wait_for(_connected(blocks), upstream.read_timeout)
        headers = [(b"content-type", b"application/json"), *forwarded]
        if authorization:
            headers.append((b"authorization", authorization))
        body = orjson.dumps({"clientId": client_id, "subscriptions": [topic]})
        try:
            response = await upstream.request("POST", b"/api/realtime", headers, body)
            await response.read()
        except UpstreamError as exc:
            raise EventSourceError(f"cannot subscribe: {exc}") from None
        if response.status != 204:
            raise EventSourceError(
                f"subscription refused (HTTP {response.status})", response.status
            )
        yield READY, b""
        async for name, data in blocks:
            if name:
                action = _action(data)
                if action:
                    yield action, data
    finally:
        stream.close()


async def _connected(blocks: AsyncGenerator[tuple[str, bytes], None]) -> str:
    async for name, data in blocks:
        if name == "PB_CONNECT":
            try:
                return str(orjson.loads(data)["clientId"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                break
    raise EventSourceError("the stream ended before PB_CONNECT")


async def _blocks(stream: Response) -> AsyncGenerator[tuple[str, bytes], None]:
    """``(event, data)`` per server-sent event; ends quietly when the stream does."""
    buffer = b""
    try:
        async for chunk in stream.iter_body():
            buffer += chunk.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                block, buffer = buffer[:end], buffer[end + 2 :]
                yield _parse(block)
    except UpstreamError:
        return


def _parse(block: bytes) -> tuple[str, bytes]:
    event = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        field, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if field == b"event":
            event = value.decode("utf-8", "replace")
        elif field == b"data":
            data.append(value)
    return event, b"\n".join(data)


def _action(data: bytes) -> str:
    """The event's ``action`` when PocketBase's payload is understood, else ``""``."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(message, dict) or not isinstance(message.get("record"), dict):
        return ""
    action = message.get("action")
    return action if isinstance(action, str) and action in ACTIONS else ""
