"""``server``: the gateway's HTTP protocol on a real socket (uvicorn serving a small ASGI app in a
thread on 127.0.0.1): a response with a declared length goes out in one write, a stream's head
is not held back, ``HEAD`` gets the head only, the one keep-alive timer per connection closes
an idle connection but never a busy one, and headers handed to the ``RESPONSE_HEADERS`` extension
go on the head of that request's response (checked as any other header)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from gateway import server
from gateway.asgi import add_headers
from gateway.server import BoundedHttpToolsProtocol, Bounds

from hapta_gen.dev.pbserver import free_port

BODY = b'{"hello":"world"}'
#: Writes per connection, as the transport saw them.
WRITES: list[bytes] = []
#: Set by the test once the stream's head has reached it: the app then sends the body.
GO_ON = threading.Event()


class _Counting:
    """The transport, with its writes recorded (everything else passed through)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Recording(BoundedHttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Counting(self.transport)  # type: ignore[assignment]
        self.flow._transport = self.transport  # type: ignore[assignment]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":  # no length: chunked, its head must not wait for the body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.get_running_loop().run_in_executor(None, GO_ON.wait, 10)
        await send({"type": "http.response.body", "body": b"late", "more_body": False})
        return
    if scope["path"].startswith("/extra/"):  # through the server's extension: no wrapper
        name, _, value = scope["path"][7:].encode().partition(b"=")
        given = add_headers(scope, send, [(name.replace(b"_", b"\r\n"), value)])
        assert given is send
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


@pytest.fixture(scope="module")
def url() -> Iterator[tuple[str, int]]:
    saved = BoundedHttpToolsProtocol.bounds
    BoundedHttpToolsProtocol.bounds = Bounds(64 * 1024, 100, 100)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=_Recording, loop="asyncio", lifespan="off",
        timeout_keep_alive=1, access_log=False, log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield ("127.0.0.1", port)
    finally:
        srv.should_exit = True
        thread.join(10)
        BoundedHttpToolsProtocol.bounds = saved


def _response(sock: socket.socket) -> bytes:
    """One whole response (``Content-Length`` framing) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_response_with_a_length_goes_out_in_one_write(url: tuple[str, int]) -> None:
    with socket.create_connection(url, timeout=10) as sock:
        for _ in range(3):  # and again on the same connection
            WRITES.clear()
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = _response(sock)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + BODY)
            assert b"content-length: 17\r\n" in answer and b"content-type: application/json\r\n" in answer
            assert [answer] == WRITES


def test_head_gets_the_head_only(url: tuple[str, int]) -> None:
    with socket.create_connection(url, timeout=10) as sock:
        WRITES.clear()
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(BODY):  # both answers, however the reads split them
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        head, _, second = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 17" in head
        assert second.startswith(b"HTTP/1.1 200 OK")  # the next answer follows the head directly
        assert data.count(BODY) == 1
        assert len(WRITES) == 2 and BODY not in WRITES[0]


def test_a_streams_head_is_not_held_for_its_body(url: tuple[str, int]) -> None:
    GO_ON.clear()
    with socket.create_connection(url, timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:  # arrives while the app still waits for GO_ON
            chunk = sock.recv(65536)
            assert chunk
            head += chunk
        assert b"transfer-encoding: chunked" in head
        GO_ON.set()
        rest = head.partition(b"\r\n\r\n")[2]
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        assert rest == b"4\r\nlate\r\n0\r\n\r\n"


def test_keep_alive_closes_an_idle_connection_but_not_a_busy_one(url: tuple[str, int]) -> None:
    with socket.create_connection(url, timeout=10) as busy, socket.create_connection(url, timeout=10) as idle:
        idle.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _response(idle).endswith(BODY)
        # the busy one asks every 0.3 s for 2.4 s: longer than the 1 s timeout in all, never idle 1 s
        for _ in range(8):
            busy.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            assert _response(busy).endswith(BODY)
            time.sleep(0.3)
        assert idle.recv(1) == b""  # closed by the server (a timeout would raise)
        busy.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _response(busy).endswith(BODY)
    assert server._LINES  # the header lines were kept for the next responses


def test_extension_headers_go_on_their_own_requests_head(url: tuple[str, int]) -> None:
    with socket.create_connection(url, timeout=10) as sock:
        for n in (7, 6, 5):  # a changing number under one name, as RateLimit-Remaining
            sock.sendall(b"GET /extra/ratelimit-remaining=%d HTTP/1.1\r\nHost: t\r\n\r\n" % n)
            head = _response(sock).partition(b"\r\n\r\n")[0]
            assert head.count(b"ratelimit-remaining") == 1
            assert b"\r\nratelimit-remaining: %d\r\n" % n in head + b"\r\n"
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")  # the next request: none
        assert b"ratelimit" not in _response(sock)


def test_extension_headers_are_checked_like_any_other(url: tuple[str, int]) -> None:
    with socket.create_connection(url, timeout=10) as sock:
        # a name that would split the head ("x\r\ninjected: 1"): refused as uvicorn refuses an
        # app's bad header once the response has begun: the connection closes, nothing sent
        sock.sendall(b"GET /extra/x_injected=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data == b""
