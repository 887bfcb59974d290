"""The HTTP server protocol with bounds: uvicorn's httptools protocol, refusing what it lets grow.

uvicorn's httptools protocol keeps an unfinished header in memory however long it grows (three
256 MiB headers took a gateway from 59 MiB to 1 GiB) and accepts any number of headers and
connections. This subclass bounds them, as PocketBase's Go server does for heads (431):

* the request head (request line and headers) beyond ``HAPTA_MAX_HEADER_SIZE`` bytes: 431, or
  414 when the URL alone is that long; an unfinished head is cut as soon as it passes the bound,
  so a connection never holds more than the bound plus one read;
* more than ``HAPTA_MAX_HEADERS`` headers: 431;
* a connection opened while ``HAPTA_MAX_CLIENTS`` are open (clamped to the open-file budget,
  ``filelimit``): 503 at once, whether or not its request has arrived, so connections past
  the bound cannot hold file handles (the 503 is there for the client to read when it does).

Refusals are PocketBase's envelope with ``Connection: close``; the connection then stops being
read and is closed (after a short linger, so the client sees the answer rather than a reset).
The cost per request is a few integer additions in parser callbacks uvicorn runs anyway.
Pass the class to uvicorn as ``http=BoundedHttpToolsProtocol`` (``__main__`` does).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, NamedTuple

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .errors import envelope
from .filelimit import budget, open_file_limit
from .settings import load_settings

HEAD_TOO_LARGE = "Request header fields too large."
URL_TOO_LONG = "Request URI too long."
TOO_MANY_CLIENTS = "Too many connections, try again later."
_REASONS = {
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
#: Seconds a refused connection stays open, discarding what the client still sends, so that
#: closing it does not reset the connection before the client has read the answer.
LINGER = 1.0


class Bounds(NamedTuple):
    head: int
    headers: int
    clients: int


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bounds_from_settings() -> Bounds:
    settings = load_settings()
    fit = budget(
        open_file_limit(), settings.max_connections, settings.max_clients, settings.max_streams
    )
    return Bounds(settings.max_header_size, settings.max_headers, fit.clients)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with bounds on head size, header count and connections."""

    #: Read from the settings by the first connection of the process (set it to override).
    bounds: ClassVar[Bounds | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        bounds = BoundedHttpToolsProtocol.bounds
        if bounds is None:
            bounds = BoundedHttpToolsProtocol.bounds = bounds_from_settings()
        self._max_head, self._max_headers, self._max_clients = bounds
        self._head_open = False  # from the first byte of a request until its headers are in
        self._began = False  # a request began in the read being parsed
        self._head_size = 0  # URL and header bytes of the current head, as the parser hands them
        self._head_seen = 0  # raw bytes of the current (unfinished) head
        self._header_count = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_clients:  # answered at once: holds its handle
            self._refuse(503, TOO_MANY_CLIENTS)  # for ``LINGER`` seconds, no longer (unlogged:
            # a flood of refusals must not become a flood of log lines)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: what the client still sends is dropped
        self._unset_keepalive_if_required()
        self._began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, refused.message)
            else:
                self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_open:  # still unfinished: all of this read is head, unless it began here
            self._head_seen = self._head_size if self._began else self._head_seen + len(data)
            if self._head_seen > self._max_head:
                self._refuse(431, HEAD_TOO_LARGE)

    def _invalid(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # -- parser callbacks (uvicorn's, plus the tallies)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = self._began = True
        self._head_size = self._head_seen = self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_size += len(url)
        if self._head_size > self._max_head:
            raise _Refused(414, URL_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        self._header_count += 1
        if self._header_count > self._max_headers or self._head_size > self._max_head:
            raise _Refused(431, HEAD_TOO_LARGE)
        name = name.lower()
        value = value.rstrip(b" \t")  # as uvicorn: llhttp keeps trailing whitespace
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    # -- refusals
    def _refuse(self, status: int, message: str) -> None:
        """Answer in PocketBase's envelope, drop what follows, and close after ``LINGER`` (at
        once when a response is already under way on this connection)."""
        self._refused = True
        self._head_open = False
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            transport.close()  # a response is under way: no room for an answer, cut it
            return
        body = envelope(status, message)
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        try:
            transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            transport.close()
            return
        self.loop.call_later(LINGER, transport.close)
