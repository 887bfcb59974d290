"""Writes made outside this gateway reach the cache: one superuser realtime subscription per
node (DESIGN §4).

The listener opens ``GET /api/realtime`` on a stream connection of its own, takes the
``PB_CONNECT`` client id, and subscribes ``<collection>/*`` for every collection PocketBase has
(views excepted: they send no events; the collections they read are among the others) with a
superuser token. Each ``create``/``update``/``delete`` event invalidates the tags that write makes
stale (``cachepolicy.change_tags``): the collection, the record, what pointed at a deleted
record, and, for an auth record (``_superusers`` included), every credential-scoped entry.

Events cannot be replayed: when the stream drops, the cache is flushed and the listener
subscribes again (backoff 0.5 s doubling to 30 s); while it is down entries live at most
``SHORT_TTL`` seconds. PocketBase closes an idle stream after 5 minutes and any stream after
30, so every ``ROTATE`` seconds a new subscription is made before the old one is closed (both
listen meanwhile): no event is missed and nothing is flushed.

The superuser token lives only in this module, on a connection pool of its own: it never
serves a user's request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import orjson

from . import logs
from .cachepolicy import change_tags
from .metrics import Metrics
from .pbstream import PBStream as _Session
from .pbstream import StreamDown as ListenerDown
from .settings import Settings
from .upstream import Upstream

#: Entries live at most this long while no subscription is up (events may be missed).
SHORT_TTL = 5.0
#: A subscription is replaced by a fresh one this often (PocketBase: idle 5 min, max 30 min).
ROTATE = 240.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
_ACTIONS = frozenset({"create", "update", "delete"})

Invalidate = Callable[[frozenset[str] | None], None]


class Listener:
    """Keeps one subscription up; calls ``invalidate(tags)`` per event and ``invalidate(None)``
    (flush) whenever events may have been missed."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        assert settings.superuser_email is not None and settings.superuser_password is not None
        self._identity = orjson.dumps(
            {
                "identity": settings.superuser_email,
                "password": settings.superuser_password.get_secret_value(),
            }
        )
        self._upstream = Upstream(
            settings.pocketbase_url,
            max_connections=2,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.upstream_timeout,
        )
        self._metrics = metrics
        self._invalidate: Invalidate = _nothing
        self._task: asyncio.Task[None] | None = None
        #: A subscription is up: no write elsewhere goes unseen.
        self.up = False

    def attach(self, invalidate: Invalidate) -> None:
        self._invalidate = invalidate

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cache-listener")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._upstream.aclose()

    # ---------------------------------------------------------------------------- the loop

    async def _run(self) -> None:
        current: _Session | None = None
        delay = BACKOFF_MIN
        try:
            while True:
                try:
                    session = await self._open()
                except Exception as exc:  # noqa: BLE001  (retried, whatever it was)
                    logs.warn_retry(
                        "cache listener: cannot subscribe to PocketBase's realtime", exc, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                delay = BACKOFF_MIN
                if current is None:
                    # Entries filled before this moment may have missed events.
                    self._flush()
                    self._set_up(True)
                    _info("cache listener: subscribed to PocketBase's realtime")
                else:
                    current.close()  # rotation: the new one was listening before this
                current = session
                done, _ = await asyncio.wait({session.task}, timeout=ROTATE)
                if done:
                    current = None
                    self._set_up(False)
                    self._flush()
                    logs.warn_retry("cache listener: the realtime stream ended; cache flushed")
        finally:
            if current is not None:
                current.close()
            self._set_up(False)

    async def _open(self) -> _Session:
        """Log in, open the stream, subscribe: a session whose task reads the events."""
        response = await self._upstream.request(
            "POST",
            b"/api/collections/_superusers/auth-with-password",
            [(b"content-type", b"application/json")],
            self._identity,
        )
        answer = await response.read()
        if response.status != 200:
            raise ListenerDown(f"superuser login refused (HTTP {response.status})")
        token: bytes = orjson.loads(answer)["token"].encode()
        auth = [(b"authorization", token)]
        response = await self._upstream.request(
            "GET", b"/api/collections?perPage=1000&skipTotal=1&fields=name,type", auth
        )
        answer = await response.read()
        if response.status != 200:
            raise ListenerDown(f"cannot list collections (HTTP {response.status})")
        items = orjson.loads(answer).get("items", [])
        topics = [f"{c['name']}/*" for c in items if c.get("type") != "view"]
        stream = await self._upstream.stream(
            "GET", b"/api/realtime", [(b"accept", b"text/event-stream")]
        )
        session = _Session(stream, self._event)
        try:
            client_id = await asyncio.wait_for(session.connected, self._upstream.read_timeout)
            body = orjson.dumps({"clientId": client_id, "subscriptions": topics})
            response = await self._upstream.request(
                "POST", b"/api/realtime", [*auth, (b"content-type", b"application/json")], body
            )
            await response.read()
            if response.status != 204:
                raise ListenerDown(f"subscription refused (HTTP {response.status})")
        except BaseException:
            session.close()
            raise
        return session

    def _event(self, name: str, data: bytes) -> None:
        collection = name.partition("/")[0]
        try:
            message = orjson.loads(data)
            record = message["record"]
            action = message["action"]
            record_id = record["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._invalidate(None)  # an event not understood: nothing can be trusted
            return
        if action not in _ACTIONS or not isinstance(record_id, str):
            self._invalidate(None)
            return
        self._invalidate(change_tags(collection, record_id, delete=action == "delete"))

    def _flush(self) -> None:
        self._metrics.cache_flushes.inc()
        self._invalidate(None)

    def _set_up(self, up: bool) -> None:
        self.up = up
        self._metrics.cache_listener_up.set(1 if up else 0)


def _nothing(tags: frozenset[str] | None) -> None:
    return None


def _info(msg: str) -> None:
    logs.log.info(msg, extra={"fields": {"msg": msg}})
