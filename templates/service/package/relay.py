"""Subscriptions for a realtime client of another process on this host (``--workers N``).

A client's stream lives in the worker that accepted its ``GET /api/realtime``, but its
``POST /api/realtime`` may be accepted by any worker. Each process therefore listens on a Unix
socket of its own, ``<tmp>/hapta-realtime-<uid>/<token>.sock`` (directory mode 0700), and
starts the client ids it hands out with its ``token``; a worker given a client id it does not
hold passes the subscription, as read, to the worker named by the id and answers what that
worker answered. One JSON line each way per subscription; an id whose worker is gone is
PocketBase's 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import string
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from . import logs

TOKEN_LENGTH = 8
_ALPHABET = string.ascii_letters + string.digits
#: Answers a subscription passed on: ``(status, content type, body)``.
Handler = Callable[[dict[str, Any]], Awaitable[tuple[int, bytes, bytes]]]


class RelayUnavailable(Exception):
    """No process on this host holds that client id."""


def socket_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"hapta-realtime-{os.getuid()}"


class Relay:
    """This process's socket (``start``) and the way to the others' (``forward``)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.token = "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))
        self.directory = directory or socket_dir()
        self._server: asyncio.AbstractServer | None = None
        self._lock = asyncio.Lock()

    def path(self, token: str) -> Path:
        return self.directory / f"{token}.sock"

    async def start(self, handler: Handler) -> None:
        """Listen (once; later calls return at once)."""
        if self._server is not None:
            return
        async with self._lock:
            if self._server is not None:
                return
            self.directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    request = orjson.loads(await reader.readline())
                    status, content_type, body = await handler(request)
                    answer = {"status": status, "type": content_type.decode(), "body": body.decode()}
                    writer.write(orjson.dumps(answer) + b"\n")
                    await writer.drain()
                except Exception as exc:  # noqa: BLE001  (the asking worker answers a 502)
                    msg = "realtime relay: a subscription passed on failed"
                    logs.log.warning(msg, extra={"fields": {"msg": msg, "error": str(exc)}})
                finally:
                    writer.close()

            path = self.path(self.token)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._server = await asyncio.start_unix_server(serve, path=str(path), limit=2**26)

    async def forward(self, token: str, request: dict[str, Any]) -> tuple[int, bytes, bytes]:
        """Pass ``request`` to the process named ``token``; raises ``RelayUnavailable`` when
        there is none."""
        path = self.path(token)
        if len(token) != TOKEN_LENGTH or not token.isalnum() or not path.exists():
            raise RelayUnavailable(token)
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=2**26)
        except OSError:
            raise RelayUnavailable(token) from None
        try:
            writer.write(orjson.dumps(request) + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise RelayUnavailable(token)
        answer = orjson.loads(line)
        return int(answer["status"]), answer["type"].encode(), answer["body"].encode()

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path(self.token).unlink()
