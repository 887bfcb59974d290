"""The realtime invalidation listener (``cachelisten``) against a scripted PocketBase, for what a
real one does not do on demand: events split across chunks at any byte, ``\\r\\n`` line ends, a
stream that ends right after subscribing. Each event becomes the tags of that change; an end
of the stream flushes (``None``) and the listener subscribes again on a new stream.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from gateway_support import GENERATED
from scripted_upstream import Conn, Request, ScriptedServer, response

sys.path.insert(0, str(GENERATED))
try:  # the generated package, as `python -m gateway` runs it
    from gateway.cachelisten import Listener
    from gateway.cachepolicy import SCOPED, change_tags
    from gateway.metrics import Metrics
    from gateway.settings import Settings
finally:
    sys.path.remove(str(GENERATED))

TOKEN = "superuser-token"
COLLECTIONS = {"items": [{"name": "posts", "type": "base"}, {"name": "users", "type": "auth"},
                         {"name": "post_stats", "type": "view"}]}


def sse(event: str, data: object, crlf: bool) -> bytes:
    end = "\r\n" if crlf else "\n"
    text = f"id:c1{end}event:{event}{end}data:{orjson.dumps(data).decode()}{end}{end}"
    return text.encode()


def test_events_split_anywhere_invalidate_and_a_dropped_stream_flushes() -> None:
    subscriptions: list[dict[str, object]] = []
    streams = 0

    async def handler(conn: Conn) -> None:
        nonlocal streams
        while (req := await conn.request()) is not None:
            if req.target.endswith("/auth-with-password"):
                await conn.send(response(orjson.dumps({"token": TOKEN})))
            elif req.target.startswith("/api/collections?"):
                assert req.headers["authorization"] == TOKEN
                await conn.send(response(orjson.dumps(COLLECTIONS)))
            elif req.method == "POST" and req.target == "/api/realtime":
                assert req.headers["authorization"] == TOKEN
                subscriptions.append(orjson.loads(req.body))
                await conn.send(response(status="204 No Content"))
            elif req.target == "/api/realtime":
                streams += 1
                await stream(conn, req, crlf=streams == 1)
                return  # the stream ends: the connection closes
            else:
                await conn.send(response(b"{}", status="404 Not Found"))

    async def stream(conn: Conn, req: Request, crlf: bool) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        client = f"client{streams}"
        body = sse("PB_CONNECT", {"clientId": client}, crlf)
        while not any(s.get("clientId") == client for s in subscriptions):
            await send_split(conn, body)
            body = b""
            await asyncio.sleep(0.01)
        if streams == 1:
            events = sse("posts/*", {"action": "update", "record": {"id": "p1"}}, crlf)
            events += sse("users/*", {"action": "delete", "record": {"id": "u1"}}, crlf)
            await send_split(conn, events)
            await asyncio.sleep(0.2)  # then the stream ends
        else:
            await asyncio.Event().wait()

    async def send_split(conn: Conn, data: bytes) -> None:
        for i in range(0, len(data), 7):  # pieces that cut lines, fields and the blank line
            piece = data[i : i + 7]
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))

    async def main() -> list[frozenset[str] | None]:
        seen: list[frozenset[str] | None] = []
        async with ScriptedServer(handler) as server:
            settings = Settings(POCKETBASE_URL=server.url, PB_SUPERUSER_EMAIL="a@b.c",
                                PB_SUPERUSER_PASSWORD="secret")
            listener = Listener(settings, Metrics())
            listener.attach(seen.append)
            listener.start()
            try:
                async with asyncio.timeout(20):
                    while streams < 2 or not listener.up:
                        await asyncio.sleep(0.01)
            finally:
                await listener.aclose()
        return seen

    seen = asyncio.run(main())
    # Views send no events: not subscribed. Every other collection is, with the superuser token.
    assert subscriptions[0]["subscriptions"] == ["posts/*", "users/*"]
    assert seen[0] is None  # the first subscription starts afresh
    assert seen[1] == change_tags("posts", "p1")
    assert seen[2] == change_tags("users", "u1", delete=True) and SCOPED in (seen[2] or ())
    assert seen[3:] == [None, None]  # the drop, then the new subscription
    assert len(subscriptions) == 2 and subscriptions[1]["clientId"] == "client2"
