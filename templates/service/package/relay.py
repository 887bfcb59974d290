"""Subscriptions for a realtime client of another process on this host (``--workers N``).

A client's stream lives in the worker that accepted its ``GET /api/realtime``, but its
``POST /api/realtime`` may be accepted by any worker. Each process therefore listens on a Unix
socket of its own, ``<tmp>/hapta-realtime-<uid>/<token>.sock`` (directory mode 0700), and
starts the client ids it hands out with its ``token``; a worker given a client id it does not
hold passes the subscription, as read, to the worker named by the id and answers what that
worker answered. One JSON line each way per subscription; an id whose worker is gone is
PocketBase's 404.

Across nodes (``HAPTA_REDIS_URL``): each process also listens on the Valkey/Redis channel
``hapta:rt:<token>``; a client id whose token has no socket on this host is published there
with a request id, and the holder publishes its answer on the asking process's channel. No
process listening (``PUBLISH`` reached no one) is the 404; no answer within ``ANSWER_TIMEOUT``
seconds, a 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
import string
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from . import logs
from .resp import redis_py

TOKEN_LENGTH = 8
#: Seconds a process waits for another node's answer (it may open an upstream stream first).
ANSWER_TIMEOUT = 30.0
#: Seconds before subscribing again after the Valkey/Redis subscription failed, doubled after
#: each failure up to the second.
_RETRY_FIRST = 0.5
_RETRY_MAX = 10.0
_CHANNEL = "hapta:rt:"
_ALPHABET = string.ascii_letters + string.digits
#: Answers a subscription passed on: ``(status, content type, body)``.
Handler = Callable[[dict[str, Any]], Awaitable[tuple[int, bytes, bytes]]]


class RelayUnavailable(Exception):
    """No process on this host holds that client id."""


def socket_dir() -> Path:
    """``$XDG_RUNTIME_DIR`` (private to the user) when set, else the temporary directory."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"hapta-realtime-{os.getuid()}"


def _own_private_dir(directory: Path) -> None:
    """Make ``directory`` (mode 0700) or check that the one there is this user's own, private
    and not a link: another local user must not be able to place or read sockets there (a
    relayed subscription carries the client's ``Authorization``)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    found = os.lstat(directory)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise RuntimeError(
            f"realtime relay: {directory} is not a private directory of this user (mode 0700); "
            "remove it, or set XDG_RUNTIME_DIR to one"
        )


class Relay:
    """This process's socket (``start``) and the way to the others' (``forward``)."""

    def __init__(self, directory: Path | None = None, redis_url: str | None = None) -> None:
        self.token = "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))
        self.directory = directory or socket_dir()
        self._redis_url = redis_url
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._handler: Handler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
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
            _own_private_dir(self.directory)

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    request = orjson.loads(await reader.readline())
                    status, content_type, body = await handler(request)
                    answer = {
                        "status": status,
                        "type": content_type.decode(),
                        "body": body.decode(),
                    }
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
            self._handler = handler
            if self._redis_url:
                await self._listen()
            self._server = await asyncio.start_unix_server(serve, path=str(path), limit=2**26)

    # ------------------------------------------------------------------ across nodes

    async def _listen(self) -> None:
        """Subscribe to this process's channel (before any client id is handed out), and keep
        the subscription for as long as the process runs (``_read``)."""
        self._redis = redis_py(self._redis_url or "", 5.0)
        pubsub = await self._subscribe()
        if isinstance(pubsub, Exception):
            logs.warn_retry(
                "realtime relay: Valkey/Redis unreachable; subscriptions stay on this host "
                "until it answers",
                pubsub,
                _RETRY_FIRST,
            )
            pubsub = None
        self._listener = asyncio.get_running_loop().create_task(self._read(pubsub))

    async def _subscribe(self) -> Any:
        """A pub/sub connection subscribed to this process's channel, or the error."""
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(_CHANNEL + self.token)
        except Exception as exc:  # noqa: BLE001  (the caller retries)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            return exc
        return pubsub

    async def _read(self, pubsub: Any) -> None:
        """Handle the channel's messages. When the subscription fails (Valkey/Redis restarted
        or unreachable), it is made again, waiting ``_RETRY_FIRST`` seconds and twice as long
        after each failure, up to ``_RETRY_MAX``: until then other nodes cannot reach this
        process's streams (their subscription POSTs are answered 404)."""
        delay = _RETRY_FIRST
        while True:
            if pubsub is None:
                await asyncio.sleep(delay)
                found = await self._subscribe()
                if isinstance(found, Exception):
                    delay = min(delay * 2, _RETRY_MAX)
                    logs.warn_retry("realtime relay: cannot subscribe again", found, delay)
                    continue
                pubsub, delay = found, _RETRY_FIRST
                msg = "realtime relay: subscribed again"
                logs.log.info(msg, extra={"fields": {"msg": msg}})
            try:
                await self._messages(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (subscribed again; this host still relays)
                logs.warn_retry("realtime relay: the Valkey/Redis subscription failed", exc, delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            pubsub = None

    async def _messages(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            try:
                data = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            if "answer" in data:
                waiting = self._waiting.pop(str(data.get("id")), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(data["answer"])
            elif "request" in data:
                task = asyncio.get_running_loop().create_task(self._answer(data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: dict[str, Any]) -> None:
        assert self._handler is not None
        try:
            status, content_type, body = await self._handler(data["request"])
            answer = {"status": status, "type": content_type.decode(), "body": body.decode()}
        except Exception:  # noqa: BLE001  (the asking process answers a 502)
            answer = {"status": 502, "type": "", "body": ""}
        reply = {"id": data.get("id"), "answer": answer}
        with contextlib.suppress(Exception):
            await self._redis.publish(_CHANNEL + str(data.get("from")), orjson.dumps(reply))

    async def _publish(self, token: str, request: dict[str, Any]) -> tuple[int, bytes, bytes]:
        request_id = secrets.token_hex(8)
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiting
        try:
            message = {"id": request_id, "from": self.token, "request": request}
            try:
                heard = await self._redis.publish(_CHANNEL + token, orjson.dumps(message))
            except Exception as exc:  # Valkey/Redis down: the caller answers a 502, not a 500
                raise ConnectionError(str(exc) or type(exc).__name__) from exc
            if not heard:
                raise RelayUnavailable(token)
            answer = await asyncio.wait_for(waiting, ANSWER_TIMEOUT)
        finally:
            self._waiting.pop(request_id, None)
        if answer["status"] == 502 and not answer["body"]:
            raise ValueError("the other node could not answer")
        return int(answer["status"]), answer["type"].encode(), answer["body"].encode()

    async def forward(self, token: str, request: dict[str, Any]) -> tuple[int, bytes, bytes]:
        """Pass ``request`` to the process named ``token``; raises ``RelayUnavailable`` when
        there is none."""
        path = self.path(token)
        if len(token) != TOKEN_LENGTH or not token.isalnum():
            raise RelayUnavailable(token)
        if not path.exists():
            if self._redis is None:
                raise RelayUnavailable(token)
            return await self._publish(token, request)
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=2**26)
        except OSError:
            raise RelayUnavailable(token) from None
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
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
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path(self.token).unlink()
