"""One PocketBase realtime stream being read (``GET /api/realtime`` on a connection of its own).

``PBStream`` parses the server-sent events as they arrive: ``connected`` resolves to the
``PB_CONNECT`` client id, then every other event goes to ``on_event(name, data)`` (``data`` is
the ``data:`` bytes as PocketBase sent them, joined by ``\\n`` when there are several lines);
``task`` ends when the stream does. Used by the cache's listener (``cachelisten``) and by the
realtime fan-out (``feed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from .upstream import Response


class StreamDown(Exception):
    """The subscription could not be made, or its stream ended."""


class PBStream:
    """One realtime stream being read (see the module)."""

    def __init__(self, response: Response, on_event: Callable[[str, bytes], None]) -> None:
        self._response = response
        self._on_event = on_event
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[str] = loop.create_future()
        self.task = loop.create_task(self._read(), name="realtime-stream")

    def close(self) -> None:
        self.task.cancel()
        self._response.close()

    async def _read(self) -> None:
        buffer = b""
        try:
            if self._response.status != 200:
                raise StreamDown(f"realtime answered HTTP {self._response.status}")
            async for chunk in self._response.iter_body():
                buffer += chunk.replace(b"\r\n", b"\n")
                while (end := buffer.find(b"\n\n")) >= 0:
                    block, buffer = buffer[:end], buffer[end + 2 :]
                    self._block(block)
        except Exception as exc:  # noqa: BLE001  (any end of the stream is the same end)
            if not self.connected.done():
                self.connected.set_exception(StreamDown(str(exc)))
            return
        finally:
            self._response.close()
        if not self.connected.done():
            self.connected.set_exception(StreamDown("the stream ended before PB_CONNECT"))

    def _block(self, block: bytes) -> None:
        event = ""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            field, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if field == b"event":
                event = value.decode("utf-8", "replace")
            elif field == b"data":
                data.append(value)
        payload = b"\n".join(data)
        if event == "PB_CONNECT":
            if not self.connected.done():
                try:
                    self.connected.set_result(str(orjson.loads(payload)["clientId"]))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    self.connected.set_exception(StreamDown("PB_CONNECT without a client id"))
        elif event:
            self._on_event(event, payload)
