"""The pooled HTTP/1.1 keep-alive client the gateway talks to PocketBase with.

A small connection pool, a request writer and a streaming response reader (asyncio protocol +
httptools), with one retry of idempotent requests that meet a keep-alive connection the server
has just closed. Nothing here is specific to PocketBase.

Bounds, each failing one request and nothing else:

- ``connect_timeout``: to open a connection (``UpstreamTimeout``).
- ``read_timeout``: per wait for the next bytes, so a slow download is fine while it moves.
- ``deadline``: the whole exchange, from the first byte written to the last byte of the body,
  so a server dripping one byte per read timeout still ends (``UpstreamTimeout``).
- ``pool_timeout``: the wait for a free slot when all ``max_connections`` are busy
  (``UpstreamBusy``).

A slow reader must not hold a pooled connection: ``Response.spool`` reads the rest of the body
at the server's speed into a temporary file (in memory up to 1 MiB), gives the connection back,
and lets the body be read from there at any pace. The usual small answer is complete when its
head arrives and needs none of this.

One connection never hands one caller another caller's answer: interim responses (``1xx``) are
skipped, and a connection that receives a byte nobody asked for (while idle in the pool, or
after the answer it carried) is closed, never reused. A response httptools cannot parse fails
that request only (``UpstreamError``) and its connection is closed.

Long-lived responses (server-sent events) get a connection of their own outside the pool
(``stream``), whose body is awaited without read timeout or deadline, so they never hold a
pooled slot; ``close_streams`` ends them all at once (graceful shutdown).

Chosen by measurement on the 2-core development machine: wrk -t2 -c64 -d5s through a raw ASGI
pass-through on uvicorn (1 worker, httptools, uvloop), PocketBase on the same cores, medians of
3 interleaved rounds on a busy machine, one public record / a 30-record list:

    this client   692 / 277 req/s, 4,061 / 2,931 requests per gateway CPU-second
    aiohttp       484 / 232 req/s, 2,070 / 1,621 requests per gateway CPU-second
    PocketBase  1,356 / 401 req/s direct

In-process the client alone costs ~125 us of CPU per request against aiohttp's ~290 us. The
bounds and the desync checks above added ~0.5 us per small request (client and a trivial
server in one uvloop process: 22.2 -> 22.9 us, medians of 3).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Protocol, cast
from urllib.parse import urlsplit

import httptools

#: Response bytes buffered per connection before reading from PocketBase pauses.
_HIGH_WATER = 256 * 1024
#: An idle connection older than this is closed instead of reused (PocketBase may drop it).
_IDLE_REUSE = 30.0
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_CHUNK = 64 * 1024
#: What ``Response.spool`` keeps in memory before it moves the body to a file on disk.
_SPOOL_MEMORY = 1024 * 1024
#: Pieces a spooled body is read back in.
_SPOOL_CHUNK = 256 * 1024
#: TCP keepalive of stream connections (idle seconds, interval, probes): PocketBase sends no
#: heartbeat, so a peer that vanished without a FIN is noticed by the kernel, not by a timeout.
_KEEPALIVE = (60, 15, 4)


class UpstreamError(Exception):
    """PocketBase could not be reached or broke the connection (a 502 for the caller)."""


class UpstreamTimeout(UpstreamError):
    """PocketBase did not answer in time (a 504 for the caller)."""


class UpstreamBusy(UpstreamError):
    """Every pooled connection stayed busy for ``pool_timeout`` (a 503 for the caller)."""


class Body(Protocol):
    """A request body that can be sent more than once (for the retry) and knows its length."""

    length: int

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass
class FileBody:
    """A spooled upload: a seekable file of ``length`` bytes, sent from its start."""

    file: IO[bytes]
    length: int

    async def chunks(self) -> AsyncIterator[bytes]:
        self.file.seek(0)
        while True:
            data = self.file.read(_CHUNK)
            if not data:
                return
            yield data


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses responses with httptools as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.used = False
        self.head_only = False
        self.closed = False
        #: A request was written and its final answer has not fully arrived: the only time
        #: bytes are welcome. Anything else is unsolicited and ends the connection.
        self.expecting = False
        #: ``loop.time()`` by which the whole answer must be in; None for streams.
        self.deadline: float | None = None
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.received = 0
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.expecting:  # idle in the pool, or past its answer: never trust it again
            self.close()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.complete:  # the answer is whole; what followed it ends the connection
                self.close()
            else:
                self._fail(UpstreamError(f"invalid response from PocketBase: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            self._fail(UpstreamError("PocketBase closed the connection"))
        self._wake_drain()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        self._wake_drain()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        if not self.expecting:  # a second answer in the bytes of the first: stop parsing
            raise _StopParsing

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # interim (100 Continue, 103 Early Hints): the answer is still to come
            self.headers = []
            return
        self.status = status
        self.head_done = True
        if self.head_only:  # httptools cannot skip a HEAD response's announced body
            self.complete = True
            self.expecting = False
            self.close()
            self._wake()
            raise _StopParsing  # stop parsing: nothing after this head belongs to the answer
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of an interim response
            return
        self.complete = True
        self.expecting = False
        self.keep_alive = self.parser.should_keep_alive()  # only valid inside the callback
        self._wake()

    # -- helpers
    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def wait(self, timeout: float | None) -> None:
        """Until the parser reports progress, the connection fails, or ``timeout`` (or the
        deadline, if sooner) passes."""
        if self.error is not None:
            raise self.error
        waiter = self._waiter = self.loop.create_future()
        timer = None if timeout is None else self._timer(timeout, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    async def drain(self, timeout: float) -> None:
        drain = self._drain
        if drain is None:
            return
        timer = self._timer(timeout, drain)
        try:
            await drain
        finally:
            timer.cancel()
        if self.closed:
            raise UpstreamError("PocketBase closed the connection during the upload")

    def _timer(self, timeout: float, fut: asyncio.Future[None]) -> asyncio.TimerHandle:
        """Fail ``fut`` after ``timeout`` or at the deadline, whichever comes first."""
        if self.deadline is not None:
            left = self.deadline - self.loop.time()
            if left < timeout:
                return self.loop.call_later(max(left, 0.0), _overdue, fut)
        return self.loop.call_later(timeout, _expire, fut)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(UpstreamTimeout("PocketBase did not answer in time"))


def _overdue(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(UpstreamTimeout("PocketBase did not finish its answer in time"))


class Response:
    """PocketBase's answer: status and headers now, the body as it arrives (or, after
    ``spool``, from a temporary file at the reader's pace).

    The caller must end every response: read its body to the end, ``spool`` it, or ``close``
    it; until then it holds a pool slot. A streamed response (``Upstream.stream``) waits for
    its body without a read timeout or deadline and its connection is closed at the end,
    never pooled.
    """

    def __init__(self, pool: Upstream, conn: _Connection, *, stream: bool = False) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._stream = stream
        self._timeout = None if stream else pool.read_timeout
        self.status = conn.status
        #: Lower-cased names; hop-by-hop headers are still in (``layers.forward`` filters them).
        self.headers = conn.headers
        self._spool: IO[bytes] | None = None

    @property
    def complete(self) -> bool:
        """The whole body is already here (``read`` will not wait for PocketBase)."""
        return self._conn is None or self._conn.complete

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.iter_body()]
        return b"".join(parts)

    async def spool(self) -> None:
        """Read the rest of the body now, at PocketBase's speed, into a temporary file (in
        memory up to 1 MiB, then on disk) and give the connection back to the pool; then
        ``iter_body`` and ``read`` read from the file, as slowly as the caller likes.

        Bounded by the read timeout and the deadline; raises like ``iter_body``, or
        ``OSError`` if the file cannot be written, and the response is then closed (its
        connection too, never reused). Not for streams: their body has no end.
        """
        await self.read_or_spool(-1)

    async def read_or_spool(self, limit: int) -> bytes | None:
        """The whole body when it is at most ``limit`` bytes; else ``None``, the body having
        been spooled (``spool``). Either way the connection is back in the pool on return, so
        the caller may take its time to pass the body on. Raises like ``spool``."""
        if self._stream:
            raise ValueError("a stream's body has no end to spool to")
        if self._conn is None:
            return b""
        parts: list[bytes] = []
        size = 0
        body = self.iter_body()
        try:
            async for chunk in body:
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
            else:
                return b"".join(parts)
            file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115  (kept)
            try:
                file.writelines(parts)
                async for chunk in body:
                    file.write(chunk)
            except BaseException:
                file.close()
                raise
        except BaseException:
            self.close()
            raise
        file.seek(0)
        self._spool = file
        return None

    async def iter_body(self) -> AsyncIterator[bytes]:
        """The body in the pieces PocketBase sent (or from the spool); the connection goes
        back to the pool after."""
        if self._spool is not None:
            spool = self._spool
            try:
                while data := spool.read(_SPOOL_CHUNK):
                    yield data
            finally:
                self._spool = None
                spool.close()
            return
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                if conn.chunks:
                    yield conn.take()
                    continue
                if conn.complete:
                    break
                await conn.wait(self._timeout)
        except BaseException:
            self._finish(reuse=False)
            raise
        self._finish(reuse=True)

    def close(self) -> None:
        """Give up on the rest of the body (the connection is closed, not reused)."""
        self._finish(reuse=False)
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    def _finish(self, *, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._stream:
            self._pool._end_stream(conn)
        else:
            self._pool._release(conn, reuse=reuse and conn.complete)


class Upstream:
    """A keep-alive pool of HTTP/1.1 connections to one base URL (``http://host:port``)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        deadline: float = 120.0,
        pool_timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = 443 if self.tls else 80
        netloc = self.host if self.port == default_port else f"{self.host}:{self.port}"
        self.host_header = netloc.encode("idna")
        self.prefix = parts.path.rstrip("/").encode()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.pool_timeout = pool_timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._streams: set[_Connection] = set()
        self._closed = False
        self._streams_closed = False

    @property
    def streams_closed(self) -> bool:
        """``close_streams`` (or ``aclose``) was called: no new stream will be opened."""
        return self._closed or self._streams_closed

    @property
    def open_streams(self) -> int:
        """Stream connections open right now (``stream``)."""
        return len(self._streams)

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | Body = b"",
    ) -> Response:
        """Send one request; ``target`` is the path plus query (``/api/...?...``).

        ``headers`` must not hold ``host``, ``content-length``, ``transfer-encoding`` or
        ``connection``: they are set here. Raises ``UpstreamError``, ``UpstreamTimeout`` or
        ``UpstreamBusy`` (no pool slot came free within ``pool_timeout``).
        """
        if self._closed:
            raise UpstreamError("the upstream client is closed")
        if self._slots.locked():
            await self._wait_for_slot()
        else:
            await self._slots.acquire()  # free: returns at once, no timer needed
        try:
            try:
                return await self._attempt(
                    method, target, headers, body, retry=method in _IDEMPOTENT
                )
            except _Stale:
                return await self._attempt(method, target, headers, body, retry=False, fresh=True)
        except BaseException:
            self._slots.release()
            raise

    async def _wait_for_slot(self) -> None:
        try:
            async with asyncio.timeout(self.pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamBusy(
                f"no free connection to PocketBase within {self.pool_timeout:g}s"
            ) from None

    async def _attempt(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | Body,
        *,
        retry: bool,
        fresh: bool = False,
    ) -> Response:
        conn = await self._connection(fresh=fresh)
        reused = conn.used
        try:
            await self._send(conn, method, target, headers, body, stream=False)
        except UpstreamTimeout:
            raise
        except UpstreamError:
            if retry and reused and conn.received == 0:
                raise _Stale from None
            raise
        return Response(self, conn)

    async def stream(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Response:
        """Send a bodiless request on a new connection outside the pool, for a response that may
        last as long as the client wants it (server-sent events).

        The connection counts against no pool slot, its body is awaited without a read timeout,
        and ``Response.close`` (or ``close_streams``) closes it. Raises like ``request``.
        """
        if self._closed or self._streams_closed:
            raise UpstreamError("the upstream client is closed")
        conn = await self._connection(fresh=True)
        if self._streams_closed:  # closed while connecting
            conn.close()
            raise UpstreamError("the upstream client is closed")
        _keepalive(conn)
        self._streams.add(conn)
        try:
            await self._send(conn, method, target, headers, b"", stream=True)
        except BaseException:
            self._end_stream(conn)
            raise
        return Response(self, conn, stream=True)

    async def _send(
        self,
        conn: _Connection,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | Body,
        *,
        stream: bool,
    ) -> None:
        """Write the request on ``conn`` and wait for the response head (``conn`` is closed on
        any failure). The deadline runs from here to the body's end (none for a stream)."""
        conn.used = True
        conn.head_only = method == "HEAD"
        conn.expecting = True
        conn.deadline = None if stream else conn.loop.time() + self.deadline
        try:
            length = len(body) if isinstance(body, bytes) else body.length
            head = [
                method.encode(),
                b" ",
                self.prefix + target,
                b" HTTP/1.1\r\nhost: ",
                self.host_header,
            ]
            for name, value in headers:
                head += (b"\r\n", name, b": ", value)
            if length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                head += (b"\r\ncontent-length: ", str(length).encode())
            head.append(b"\r\n\r\n")
            transport = conn.transport
            assert transport is not None
            if isinstance(body, bytes):
                head.append(body)
                transport.write(b"".join(head))
            else:
                transport.write(b"".join(head))
                async for chunk in body.chunks():
                    if conn.closed:
                        break
                    transport.write(chunk)
                    await conn.drain(self.read_timeout)
            while not conn.head_done:
                await conn.wait(self.read_timeout)
        except BaseException:
            conn.close()
            raise

    async def _connection(self, *, fresh: bool) -> _Connection:
        now = time.monotonic()
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_REUSE:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=True if self.tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"no connection to PocketBase within {self.connect_timeout:g}s"
            ) from None
        except OSError as exc:
            raise UpstreamError(f"cannot connect to PocketBase: {exc.strerror or exc}") from None
        return conn

    def _release(self, conn: _Connection, *, reuse: bool) -> None:
        self._slots.release()
        if reuse and conn.keep_alive and not conn.closed and not self._closed:
            conn._reset()
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    def _end_stream(self, conn: _Connection) -> None:
        self._streams.discard(conn)
        conn.close()

    def close_streams(self) -> None:
        """Close every stream connection (their readers see the end) and refuse new ones."""
        self._streams_closed = True
        streams, self._streams = self._streams, set()
        for conn in streams:
            conn.close()

    async def aclose(self) -> None:
        """Close every idle and stream connection; requests in flight finish on their own."""
        self._closed = True
        self.close_streams()
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _keepalive(conn: _Connection) -> None:
    sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system defaults apply
            idle, interval, count = _KEEPALIVE
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    except OSError:
        pass


class _Stale(Exception):
    """A reused keep-alive connection was already closed by the server: try a new one."""


class _StopParsing(Exception):
    """Raised in a parser callback to stop httptools at the end of the answer."""
