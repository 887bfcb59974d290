"""A reader of the gateway's own streams (``/sse/...``, ``/datastar/...``) on a thread of its own:
every block is queued as it arrives, comments (heartbeats) and ``id``-only blocks included, and
kept: ``received`` is everything the stream sent, whatever ``next`` skipped while waiting."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import httpx


class SseReader:
    """``GET url`` as a stream; ``next`` waits for the next block matching a test, against a
    deadline. A block is ``{"event", "id", "data", "comment"}`` (absent fields missing)."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._stream = self._client.stream("GET", url, headers=headers)
        self.response = self._stream.__enter__()
        self.blocks: queue.Queue[dict[str, str]] = queue.Queue()
        self._history: list[dict[str, str]] = []
        self.ended = threading.Event()
        if self.response.status_code == 200:
            self._thread: threading.Thread | None = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.response.read()
            self._thread = None

    def _read(self) -> None:
        block: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if not line:
                    if block:
                        self._history.append(block)
                        self.blocks.put(block)
                    block = {}
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "":
                    block["comment"] = value
                elif key == "data" and "data" in block:
                    block["data"] += "\n" + value
                else:
                    block[key] = value
        except (httpx.HTTPError, OSError, ValueError):
            pass  # closed under us
        finally:
            self.ended.set()

    def next(self, match: Any = None, timeout: float = 10.0) -> dict[str, str]:
        """The next block for which ``match(block)`` is true (default: any event)."""
        match = match or (lambda b: "event" in b)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching block within {timeout}s")
            try:
                block = self.blocks.get(timeout=left)
            except queue.Empty:
                continue
            if match(block):
                return block

    def record_event(self, record_id: str, timeout: float = 10.0) -> tuple[dict[str, str], dict[str, Any]]:
        """The next event about ``record_id``: the block and its parsed data."""
        block = self.next(
            lambda b: "event" in b and b.get("data", "").find(record_id) >= 0, timeout=timeout
        )
        return block, json.loads(block["data"])

    def received(self) -> list[dict[str, str]]:
        """Every block the stream sent so far, in order (those ``next`` passed over too)."""
        return list(self._history)

    def close(self) -> None:
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the server
        try:
            self._stream.__exit__(None, None, None)
        finally:
            self._client.close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
