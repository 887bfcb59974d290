"""The HTTP server protocol with bounds: uvicorn's httptools protocol, refusing what it lets grow.

uvicorn's httptools protocol keeps an unfinished header in memory however long it grows (three
256 MiB headers took a gateway from 59 MiB to 1 GiB) and accepts any number of headers and
connections. This subclass bounds them, as PocketBase's Go server does for heads (431):

* the request head (request line and headers) beyond ``HAPTA_MAX_HEADER_SIZE`` bytes: 431, or
  414 when the URL alone is that long; an unfinished head is cut as soon as it passes the bound,
  so a connection never holds more than the bound plus one read;
* more than ``HAPTA_MAX_HEADERS`` headers: 431;
* a head not whole ``HAPTA_HEADER_TIMEOUT`` seconds after the connection opened or the
  request's first byte came: 408 (uvicorn waits for ever, so a client sending nothing, or a
  byte now and then, held a connection, and enough of them every connection
  ``HAPTA_MAX_CLIENTS`` allows);
* a request body whose next piece takes more than ``HAPTA_BODY_TIMEOUT`` seconds to come while
  the gateway reads it: the connection is closed (the application is reading: no room for an
  answer), as a trickled body held a connection the same way. Both are checked by one timer per
  connection that counts progress rather than reading the clock per request, so they act
  within min(HAPTA_HEADER_TIMEOUT, HAPTA_BODY_TIMEOUT) seconds of their value;
* a connection opened while ``HAPTA_MAX_CLIENTS`` are open (clamped to the open-file budget,
  ``filelimit``): 503 at once, whether or not its request has arrived, so connections past
  the bound cannot hold file handles (the 503 is there for the client to read when it does).

Refusals are PocketBase's envelope with ``Connection: close``; the connection then stops being
read and is closed (after a short linger, so the client sees the answer rather than a reset).
Each is counted in ``/metrics`` (``hapta_refused_total{reason}``, ``metrics.refused``), as are
requests the parser rejects (400, ``invalid``).
The cost per request is a few integer additions in parser callbacks uvicorn runs anyway.
Pass the class to uvicorn as ``http=BoundedHttpToolsProtocol`` (``__main__`` does).

Two savings on every response, since a cache hit costs little more than the server's own work:

* a response that declares its ``Content-Length`` goes out in one socket write: its head is
  held until the first piece of body, and both are written together (uvicorn writes each ASGI
  message on its own: two system calls for every small answer). Streams (no length) are written
  as they come;
* the keep-alive timeout is one timer per connection, re-armed only when it fires on a
  connection that was busy meanwhile, instead of a timer made and cancelled for every request.

And one ASGI extension (``scope["extensions"]``), ``asgi.RESPONSE_HEADERS``: its ``headers``, a
list of header pairs, go on the head of the request's response, whichever layer sends it. The rate
limits add their ``RateLimit-*`` headers so, without wrapping ``send`` (``asgi.add_headers``
wraps it under a server without the extension).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import httptools
from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from .asgi import RESPONSE_HEADERS, Headers
from .errors import envelope
from .filelimit import budget, open_file_limit
from .metrics import refused
from .settings import load_settings

HEAD_TOO_LARGE = "Request header fields too large."
URL_TOO_LONG = "Request URI too long."
TOO_MANY_CLIENTS = "Too many connections, try again later."
HEAD_TIMEOUT = "The request head did not arrive in time."
_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
#: The ``reason`` label of ``hapta_refused_total`` for each refusal.
_COUNTED = {
    408: "head_timeout",
    414: "uri_too_long",
    431: "head_too_large",
    503: "too_many_clients",
}
#: Seconds a refused connection stays open, discarding what the client still sends, so that
#: closing it does not reset the connection before the client has read the answer.
LINGER = 1.0


class Bounds(NamedTuple):
    head: int
    headers: int
    clients: int
    #: Seconds for a whole head (``HAPTA_HEADER_TIMEOUT``), and between two pieces of a body
    #: (``HAPTA_BODY_TIMEOUT``).
    head_timeout: float = 10.0
    body_timeout: float = 30.0


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
    return Bounds(
        settings.max_header_size,
        settings.max_headers,
        fit.clients,
        settings.header_timeout,
        settings.body_timeout,
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with bounds on head size, header count, the time a head
    takes and connections."""

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
        self._max_head, self._max_headers, self._max_clients = bounds[:3]
        self._head_timeout, self._body_timeout = bounds.head_timeout, bounds.body_timeout
        self._head_open = False  # from the first byte of a request until its headers are in
        self._began = False  # a request began in the read being parsed
        self._head_size = 0  # URL and header bytes of the current head, as the parser hands them
        self._head_seen = 0  # raw bytes of the current (unfinished) head
        self._header_count = 0
        self._refused = False
        self._idle_since: float | None = None  # when the last response ended, while idle
        #: What the connection waits for from the client, the progress made (see ``_arm``), how
        #: much there was when the read timer was set, and the seconds without any.
        self._awaited: str | None = None
        self._progress = 0
        self._seen = 0
        self._idle = 0.0
        self._tick = min(self._head_timeout, self._body_timeout)
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_clients:  # answered at once: holds its handle
            self._refuse(503, TOO_MANY_CLIENTS)  # for ``LINGER`` seconds, no longer (unlogged:
            # a flood of refusals must not become a flood of log lines)
            return
        self._awaited = "head"
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    # -- read deadlines: one timer per connection, counting progress rather than reading the clock
    #: The parser callbacks only note what is awaited (``_awaited``: "head", "body" or ``None``)
    #: and count progress (``_progress``: messages begun, heads and body pieces received); the
    #: timer ticks every ``_tick`` seconds while something is awaited and acts when no progress
    #: came for the awaited thing's timeout, so a bound holds within one tick of its value.
    def _arm(self) -> None:
        self._seen = self._progress
        self._read_timer = self.loop.call_later(self._tick, self._time_up)

    def _time_up(self) -> None:
        self._read_timer = None
        awaited = self._awaited
        if awaited is None or self._refused or self.transport.is_closing():
            self._idle = 0.0
            return
        if self._progress != self._seen or (awaited == "body" and self.flow.read_paused):
            self._idle = 0.0  # progress meanwhile, or the gateway is not reading: its wait
        else:
            self._idle += self._tick
            if self._idle >= (self._head_timeout if awaited == "head" else self._body_timeout):
                self._idle = 0.0
                if awaited == "head":
                    self._refuse(408, HEAD_TIMEOUT)
                else:  # the application is reading the body: no room for an answer
                    self._refused = True
                    refused("body_timeout")
                    self.transport.close()
                return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: what the client still sends is dropped
        self._idle_since = None  # busy: the keep-alive timer, when it fires, leaves it open
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
        refused("invalid")
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # -- parser callbacks (uvicorn's, plus the tallies)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = self._began = True
        self._awaited = "head"
        self._progress += 1
        if self._read_timer is None:
            self._arm()
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

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._awaited == "body":
            self._progress += 1  # the next piece has its own time

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaited = None

    def on_headers_complete(self) -> None:
        """uvicorn's, with the cycle that writes a response in one piece (``_Cycle``)."""
        self._head_open = False
        self._awaited = "body"  # until the message is complete (at once when it has none)
        self._progress += 1
        parser = self.parser
        scope = self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            self._awaited = None
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = (
            self.root_path.encode("ascii") + raw_path if self.root_path else raw_path
        )
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        extra: Headers = []
        # uvicorn's scope has no extensions; an extension's value is a dict (the ASGI spec)
        scope["extensions"] = {RESPONSE_HEADERS: {"headers": extra}}
        existing = self.cycle
        cycle = self.cycle = _Cycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        cycle.extra_headers = extra
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined: queued until the one before is answered
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    # -- keep-alive: one timer per connection
    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        """Close a connection idle for the keep-alive timeout; one that was busy since the
        timer was armed gets a new timer when its response ends, one idle for less gets the
        rest of its time."""
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return
        left = idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(
                left, self.timeout_keep_alive_handler
            )
        else:
            self.transport.close()

    # -- refusals
    def _refuse(self, status: int, message: str) -> None:
        """Answer in PocketBase's envelope, drop what follows, and close after ``LINGER`` (at
        once when a response is already under way on this connection)."""
        self._refused = True
        self._head_open = False
        refused(_COUNTED[status])
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


#: Response header lines already checked, by (name, value) as the application gave them: the
#: same headers go out again and again (a cache entry's, PocketBase's), and checking and
#: writing each one cost a cache hit more than the rest of its head. Only headers without a
#: meaning for the framing (not ``content-length``, ``transfer-encoding``, ``connection``), of
#: at most ``_LINE_LENGTH`` bytes; emptied when ``_LINES_SIZE`` are kept.
_LINES: dict[tuple[bytes, bytes], bytes] = {}
#: The same headers' names, checked and lower-cased, as a line starts (``name: ``): a value of
#: digits alone under one of them (``RateLimit-Remaining``, ``Age``...) needs no check and is not
#: kept in ``_LINES`` (a counter's values would fill it, and empty it, every few thousand
#: responses).
_NAMES: dict[bytes, bytes] = {}
_LINES_SIZE = 4096
_LINE_LENGTH = 512
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class _Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle, whose ``send`` holds the head of a response with a
    declared ``Content-Length`` until the first piece of its body, and writes both at once.
    Headers are checked as uvicorn checks them (names and values that would split the head
    are refused)."""

    _held = b""
    #: The request's ``RESPONSE_HEADERS`` extension: added to the head.
    extra_headers: Sequence[tuple[bytes, bytes]] = ()

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self.response_started = True
            self.waiting_for_100_continue = False
            head = self._head(message["status"], message.get("headers", ()))
            if (
                self.chunked_encoding is False
                and self.expected_content_length > 0
                and self.scope["method"] != "HEAD"
            ):
                self._held = head  # the body follows: one write for both
            else:
                self.transport.write(head)
            return
        if self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, after response already "
                "completed."
            )
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body: bytes = message.get("body", b"")
        more_body = message.get("more_body", False)
        held = self._held
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0  # the head went out; a body is not sent
        elif self.chunked_encoding:
            content = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
            if not more_body:
                content.append(b"0\r\n\r\n")
            self.transport.write(b"".join(content))
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            if held:
                self._held = b""
                self.transport.write(held + body)
            elif body:
                self.transport.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _head(self, status: int, headers: Any) -> bytes:
        """The status line and headers; sets the framing (length, chunked, keep-alive)."""
        if self.default_headers:
            headers = [*self.default_headers, *headers]
        if self.extra_headers:
            headers = [*headers, *self.extra_headers]
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        content = [STATUS_LINE[status]]
        has_connection_close = False
        lines = _LINES
        for name, value in headers:
            try:
                line = lines.get((name, value))
            except TypeError:  # not bytes (unhashable): checked the long way
                line = None
            if line is not None:
                content.append(line)
                continue
            start = (
                _NAMES.get(name)
                if type(value) is bytes and type(name) is bytes and value.isdigit()
                else None
            )
            if start is not None:
                content.append(start + value + b"\r\n")
                continue
            if HEADER_RE.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            given, name = name, name.lower()
            if name not in _FRAMING:
                line = b"%s: %s\r\n" % (name, value)
                if (
                    len(name) + len(value) <= _LINE_LENGTH
                    and type(given) is bytes
                    and type(value) is bytes
                ):
                    if len(lines) >= _LINES_SIZE:
                        lines.clear()
                        _NAMES.clear()
                    lines[(given, value)] = line
                    _NAMES[given] = name + b": "
                content.append(line)
                continue
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend((name, b": ", value, b"\r\n"))
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):  # neither length nor transfer-encoding: chunked
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)
