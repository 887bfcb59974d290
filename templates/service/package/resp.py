"""A minimal Valkey/Redis client for the per-request commands (the rate limiter's hit, the session
lookup, the token book): one connection, RESP2, commands pipelined.

Why not redis-py for these: a round trip through its asyncio client costs the gateway ~60-90 µs of
CPU (connection pool checkout, a stream reader, a parser class per reply), more than the rest of a
cache hit. Here a command is one ``bytes`` join and one future: every command issued during one
turn of the event loop goes out in a single socket write, and every reply in a read is parsed by
one loop, so concurrent requests share a round trip without any batching code in the callers. It
speaks only what those callers need: commands as arrays of bulk strings, replies of the five RESP2
types, ``AUTH``/``SELECT`` from the URL, TLS (``rediss://``) and Unix sockets. redis-py stays for
everything else (session writes, file tokens, script loading).

Failures: a reply not received within ``timeout`` seconds of its command being sent, a refused or
lost connection, all fail every command in flight with ``ConnectionError``/``TimeoutError``
(``OSError`` both), and the next command connects afresh. An error reply raises ``ReplyError``
for that command only (``NOSCRIPT``: ``evalsha`` falls back to ``EVAL``, which also loads the
script). A command whose caller is cancelled still has its reply read (and dropped), so replies
stay in step with commands.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

Arg = bytes | str | int


class ReplyError(Exception):
    """The server answered an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Incomplete(Exception):
    pass


def encode(args: tuple[Arg, ...]) -> bytes:
    """A command as RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + _bulk(args)


def _bulk(args: tuple[Arg, ...] | list[Arg]) -> bytes:
    """``args`` as RESP bulk strings, one after the other."""
    parts = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One reply from ``buf`` at ``pos``: (value, position after it); ``_Incomplete`` when it has
    not all arrived. Errors are returned as ``ReplyError`` values, not raised."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = buf[pos + 1 : end]
    pos = end + 2
    if kind == 58:  # ':'
        return int(line), pos
    if kind == 36:  # '$'
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return buf[pos : pos + size], pos + size + 2
    if kind == 42:  # '*'
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 43:  # '+'
        return line, pos
    if kind == 45:  # '-'
        return ReplyError(line.decode(errors="replace")), pos
    raise ValueError(f"not a RESP2 reply: {bytes(buf[pos - 2 - len(line) - 1 : pos])!r}")


class _Connection(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()
        #: (deadline, future) per command sent and not yet answered, in order.
        self._pending: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._out: list[bytes] = []
        self._buf = b""
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not ``asyncio.Transport`` subclasses, but are alike
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        if self.closed:
            future.set_exception(ConnectionError("connection to Valkey/Redis closed"))
            return future
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(command)
        self._pending.append((self._loop.time() + self.timeout, future))
        if self._watch is None:
            self._watch = self._loop.call_later(self.timeout, self._check)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        pending = self._pending
        try:
            while pending:
                value, pos = parse(buf, pos)
                _, future = pending.popleft()
                if future.done():  # its caller is gone
                    continue
                if isinstance(value, ReplyError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except _Incomplete:
            pass
        except (ValueError, IndexError) as exc:  # out of step: nothing after can be trusted
            self._fail(ConnectionError(f"bad reply from Valkey/Redis: {exc}"))
            return
        self._buf = buf[pos:]

    def _check(self) -> None:
        self._watch = None
        if not self._pending:
            return
        deadline = self._pending[0][0]
        now = self._loop.time()
        if deadline <= now:
            self._fail(TimeoutError("Valkey/Redis did not answer in time"))
            return
        self._watch = self._loop.call_later(deadline - now, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to Valkey/Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.transport is not None:
            self.transport.abort()
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)
        self._out.clear()

    def close(self) -> None:
        self._fail(ConnectionError("client closed"))


def _retrieve(task: asyncio.Task[_Connection]) -> None:
    if not task.cancelled():
        task.exception()


class FastRedis:
    """Commands to one Valkey/Redis server (``redis://``, ``valkey://``, ``rediss://``,
    ``valkeys://`` or ``unix://`` URL, as ``HAPTA_REDIS_URL``) over one pipelined connection."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme
        self.timeout = timeout
        self._unix = parts.path if scheme == "unix" else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._tls = scheme in ("rediss", "valkeys")
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        db = parts.path.strip("/") if scheme != "unix" else ""
        if scheme == "unix":
            query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
            db = query.get("db", "")
        self._db = int(db) if db else 0
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        #: ``EVALSHA <sha>`` as RESP, by (sha, number of arguments).
        self._heads: dict[tuple[str, int], bytes] = {}

    async def call(self, *args: Arg) -> Any:
        """Send one command; its reply (``ReplyError`` raised for an error reply)."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        return await conn.send(encode(args))

    async def evalsha(self, sha: str, script: str, keys: list[str], args: list[Arg]) -> Any:
        """Run a Lua script by its SHA-1, sending its text instead when the server lacks it.
        (The per-request commands: encoded with the script's part made once, and sent without
        a coroutine of ``call``'s.)"""
        count = len(keys)
        tail = _bulk((count, *keys, *args))
        size = 3 + count + len(args)
        head = self._heads.get((sha, size))
        if head is None:
            head = self._heads[(sha, size)] = b"*%d\r\n" % size + _bulk((b"EVALSHA", sha))
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        try:
            return await conn.send(head + tail)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.call(b"EVAL", script, count, *keys, *args)

    async def send_encoded(self, command: bytes) -> Any:
        """Send a command already encoded (``encode``): for one that goes out again and again
        unchanged (the rate limiter's hit of one key). An error reply raises ``ReplyError``."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        return await conn.send(command)

    async def _connection(self) -> _Connection:
        """The open connection, or one being opened: by a task of its own, so a caller that is
        cancelled meanwhile (its client gone) does not cancel it for the others."""
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
            # retrieved even when every caller has gone: no "never retrieved" warning
            self._connecting.add_done_callback(_retrieve)
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Connection:
        try:
            conn = await asyncio.wait_for(self._open(), self.timeout)
            self._conn = conn
            return conn
        finally:
            self._connecting = None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        timeout = self.timeout
        if self._unix is not None:
            _, conn = await loop.create_unix_connection(lambda: _Connection(timeout), self._unix)
        else:
            context = ssl.create_default_context() if self._tls else None
            _, conn = await loop.create_connection(
                lambda: _Connection(timeout), self._host, self._port, ssl=context
            )
        try:
            if self._password is not None:
                auth: tuple[Arg, ...] = (self._password,)
                if self._user is not None:
                    auth = (self._user, self._password)
                await conn.send(encode((b"AUTH", *auth)))
            if self._db:
                await conn.send(encode((b"SELECT", self._db)))
        except BaseException:
            conn.close()
            raise
        return conn

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def redis_py(url: str, timeout: float, **options: Any) -> Any:
    """A redis-py asyncio client for ``url`` (``valkey://`` and ``valkeys://`` read as
    ``redis://`` and ``rediss://``) that fails within ``timeout`` seconds to connect and per
    reply: the one way the gateway makes one (redis-py is loaded only then)."""
    from redis import asyncio as aioredis

    for scheme in ("valkey", "valkeys"):
        if url.startswith(scheme + "://"):
            url = "redis" + url[len("valkey") :]
    return aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **options)
