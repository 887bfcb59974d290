"""A ``send`` that holds a ``200`` JSON answer until its last piece, then sends it changed: the
fields ``hapta.yaml`` hides (``layers.shape``) and the extensions' ``after_read`` hooks
(``layers.hooks``). Any other answer passes as it comes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from .asgi import Message, Send
from .errors import UPSTREAM_DOWN, ApiError

Change = Callable[[Any], Awaitable[Any]]

#: The largest answer held to be changed (a page of large records is a few MiB): past it a
#: ``strict`` answer is a 502 and any other passes unchanged, so memory stays bounded.
MAX_ANSWER = 16 * 1024 * 1024


class Reshape:
    """``change`` gets the decoded answer and returns what to send (re-encoded, its length
    recomputed, any ``ETag`` dropped: the bytes differ). ``strict``: an answer that is not JSON
    is a 502 (never pass on what could not be checked); else it passes unchanged."""

    __slots__ = ("change", "parts", "send", "size", "start", "strict")

    def __init__(self, send: Send, change: Change, strict: bool) -> None:
        self.send = send
        self.change = change
        self.strict = strict
        self.start: Message | None = None
        self.parts: list[bytes] = []
        self.size = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] == 200:
                self.start = message
                return
            await self.send(message)
            return
        if self.start is None:
            await self.send(message)
            return
        piece: bytes = message.get("body", b"")
        self.size += len(piece)
        if self.size > MAX_ANSWER:
            if self.strict:
                raise ApiError(502, UPSTREAM_DOWN)
            start, self.start = self.start, None  # from now on it passes as it comes
            await self.send(start)
            for part in (*self.parts, piece):
                await self.send({"type": "http.response.body", "body": part, "more_body": True})
            self.parts = []
            if not message.get("more_body", False):
                await self.send({"type": "http.response.body", "body": b""})
            return
        self.parts.append(piece)
        if message.get("more_body", False):
            return
        raw = b"".join(self.parts)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if self.strict:
                raise ApiError(502, UPSTREAM_DOWN) from None
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": raw})
            return
        body = orjson.dumps(await self.change(data))
        headers = [
            (k, v) for k, v in self.start["headers"] if k not in (b"content-length", b"etag")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
