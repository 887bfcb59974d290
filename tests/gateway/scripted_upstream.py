"""A scripted HTTP/1.1 server on asyncio, for the faults PocketBase never produces (1xx, garbage,
drip, unsolicited bytes): each test says what its server writes on every connection.

``ScriptedServer(handler)`` listens on 127.0.0.1; ``handler(conn)`` runs once per accepted
connection (``conn.index`` counts them from 0) and is cancelled when the server stops.
``ServerThread(handler)`` runs one on a thread of its own, for a gateway process to talk to.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def response(
    body: bytes = b"", *, status: str = "200 OK", headers: tuple[str, ...] = ()
) -> bytes:
    """A whole ``content-length`` response."""
    head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*pieces: bytes, status: str = "200 OK") -> bytes:
    """A whole ``transfer-encoding: chunked`` response of ``pieces``."""
    out = [f"HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\n\r\n".encode()]
    out += [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p]
    out.append(b"0\r\n\r\n")
    return b"".join(out)


@dataclass
class Conn:
    """One accepted connection, seen from the server."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[Request] = field(default_factory=list)

    async def request(self) -> Request | None:
        """The next request (head and ``content-length`` body), or None when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        req = Request(method, target, headers, body)
        self.requests.append(req)
        return req

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_client(self) -> None:
        """Until the client closes its end (whatever else it sends is dropped)."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[Conn], Awaitable[None]]


class ScriptedServer:
    """``async with ScriptedServer(handler) as server``: ``server.url``, ``server.conns``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.conns: list[Conn] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(len(self.conns), reader, writer)
        self.conns.append(conn)
        try:
            await self.handler(conn)
        finally:
            writer.close()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


async def answer_each(conn: Conn, make: Callable[[Request], bytes]) -> None:
    """Answer every request on ``conn`` with ``make(request)`` until the client closes."""
    while (req := await conn.request()) is not None:
        await conn.send(make(req))


async def forever() -> None:
    """Never returns (a server that stops answering); cancelled when the server stops."""
    await asyncio.Event().wait()


class ServerThread:
    """``with ServerThread(handler) as server``: a ``ScriptedServer`` on its own thread and loop
    (``server.url``), stopped on exit."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with ScriptedServer(self.handler) as server:
            self.url = server.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the scripted server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
