"""A small asyncio realtime (SSE) client for many concurrent streams in one process: the bench
and the fan-out tests open hundreds of them, which threads per stream would not afford.

``SSEClient.open(url)`` sends ``GET /api/realtime`` on a raw connection, reads the head and the
``PB_CONNECT`` event (``client_id``); ``next_event`` returns the next ``(event, data)`` (comment
lines, the heartbeats, are counted in ``comments`` and skipped); ``close`` drops the connection.
The body is read chunked, as both PocketBase and the gateway send it.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class StreamEnded(Exception):
    """The server ended the stream (or the connection broke)."""


class SSEClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = b""
        self._chunk_left = 0
        self.client_id = ""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.comments = 0

    @classmethod
    async def open(
        cls, url: str, headers: dict[str, str] | None = None, rcvbuf: int | None = None
    ) -> SSEClient:
        """Connect and wait for ``PB_CONNECT`` (``rcvbuf``: a small receive buffer, for a
        client that reads slowly)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        if rcvbuf is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            import socket

            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"GET /api/realtime HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Accept: text/event-stream\r\n{extra}\r\n".encode()
        )
        client = cls(reader, writer)
        await client._head()
        name, data = await client.next_event()
        if name != "PB_CONNECT":
            raise StreamEnded(f"first event {name!r}, not PB_CONNECT")
        client.client_id = json.loads(data)["clientId"]
        return client

    async def _head(self) -> None:
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                self.headers[key.strip().lower()] = value.strip()
        if self.status != 200:
            raise StreamEnded(f"HTTP {self.status}")

    async def _more(self) -> None:
        """Append the next piece of the (chunked) body to the buffer."""
        if self._chunk_left == 0:
            size_line = await self._reader.readline()
            if not size_line:
                raise StreamEnded("connection closed")
            if size_line == b"\r\n":
                size_line = await self._reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                raise StreamEnded("the stream ended")
            self._chunk_left = size
        data = await self._reader.read(self._chunk_left)
        if not data:
            raise StreamEnded("connection closed")
        self._chunk_left -= len(data)
        self._buffer += data

    async def next_event(self, comments: bool = False) -> tuple[str, str]:
        """The next event; with ``comments``, a comment block too, as ``(":", text)``."""
        while True:
            while (end := self._buffer.find(b"\n\n")) < 0:
                try:
                    await self._more()
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    raise StreamEnded(str(exc)) from None
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            name, data = "", []
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                    if comments:
                        return ":", line[1:]
                    continue
                key, _, value = line.partition(":")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
            if name:
                return name, "\n".join(data)

    def close(self) -> None:
        self._writer.close()
