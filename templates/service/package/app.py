"""The ASGI application: a small dispatcher in front of two handlers.

``/api/...`` (and the gateway's own streams, ``/sse/...`` and ``/datastar/...``) goes straight
to the request chain (``chain``: pure-ASGI layers, no framework routing); ``/docs``,
``/openapi.json``, ``/health`` and ``/metrics`` go to a FastAPI app; the extensions' routes
(``extensions``, ``extapp``) to theirs; anything else is a 404 in PocketBase's envelope.
Settings are read at startup (lifespan), so
importing this module needs no environment.

Realtime streams never end by themselves, and a server shutting down gracefully waits for
every response to finish before it tells the application (lifespan shutdown). So the gateway
chains ``end_streams`` in front of the server's SIGTERM / SIGINT handlers: open streams end
the moment a shutdown begins, and the clients reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

from . import chain, extensions, limitstore, logs, offload
from .asgi import ASGIApp, Receive, Scope, Send
from .cachelisten import Listener
from .catalog import COLLECTIONS
from .errors import JSON_HEADERS, NOT_FOUND, envelope
from .extapp import ExtensionApp
from .fanout import Hub
from .layers.hooks import HookTable
from .layers.ratelimit import RateLimit
from .metrics import Metrics

if TYPE_CHECKING:
    from .cacheshared import SharedTier
    from .layers.cache import Cache
from .ops import PATHS, create_ops_app
from .pages import PREFIXES as PAGE_PREFIXES
from .pages import Pages
from .routing import STREAM_PREFIXES
from .settings import Settings, load_settings
from .upstream import Upstream, UpstreamError

_NOT_FOUND = envelope(404, NOT_FOUND)
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Paths the request chain answers: PocketBase's API and the gateway's own streams.
_CHAIN_PREFIXES = ("/api/", *STREAM_PREFIXES)


class StartupError(Exception):
    """The gateway cannot serve with these settings (one line, for the operator)."""


class Gateway:
    """The whole gateway as one ASGI callable."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._given = settings
        self.settings: Settings | None = None
        self.metrics = Metrics()
        self.upstream: Upstream | None = None
        self._health: Upstream | None = None
        self.api: ASGIApp | None = None
        self.cache_listener: Listener | None = None
        self.cache_shared: SharedTier | None = None
        self.realtime: Hub | None = None
        self.access_log: logs.AccessLog | None = None
        self.ops: Any = None
        #: The extensions' routers (``extensions``), when one has a router.
        self.ext: ExtensionApp | None = None
        #: ``ext`` behind the layers every request passes (``chain.extension_chain``).
        self._ext_chain: ASGIApp | None = None
        self._caches: list[Cache] = []
        self.pages: Pages | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._chained: dict[int, tuple[Any, Any]] = {}
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(_CHAIN_PREFIXES) and self.api is not None:
                await self.api(scope, receive, send)
            elif path.startswith(PAGE_PREFIXES) and self.pages is not None:
                await self.pages(scope, receive, send)
            elif path in PATHS and self.ops is not None:
                await self.ops(scope, receive, send)
            elif self._ext_chain is not None and self.ext is not None and self.ext.serves(scope):
                await self._ext_chain(scope, receive, send)
            else:
                await send({"type": "http.response.start", "status": 404, "headers": JSON_HEADERS})
                await send({"type": "http.response.body", "body": _NOT_FOUND})
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # one line for the operator; uvicorn exits
                    logs.log.error(
                        "startup failed",
                        extra={"fields": {"msg": "startup failed", "error": str(exc)}},
                    )
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        settings = self.settings = self._given or load_settings()
        logs.configure(settings.log_level)
        self.access_log = logs.AccessLog() if settings.access_log else None
        self.upstream = Upstream(
            settings.pocketbase_url,
            max_connections=settings.max_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.upstream_timeout,
            deadline=settings.upstream_deadline,
            pool_timeout=settings.pool_timeout,
        )
        self._health = Upstream(
            settings.pocketbase_url, max_connections=4, connect_timeout=2.0, read_timeout=2.0
        )
        self.ops = create_ops_app(self.metrics, self.upstream_health)
        self.pages = Pages(settings.demo_pages)
        await self._startup_checks(settings)
        offload.configure(settings.check_workers)
        try:
            loaded = extensions.load()
        except extensions.ExtensionError as exc:
            raise StartupError(str(exc)) from None
        hooks = HookTable(loaded, self._hook_context, settings.max_body_size)
        if settings.cache_on and settings.has_superuser:
            self.cache_listener = Listener(settings, self.metrics)
        if settings.cache_on and settings.redis_url:
            from .cacheshared import SharedTier  # loads redis: only when it is used

            self.cache_shared = SharedTier(settings.redis_url, self.metrics)
        self.realtime = chain.hub(settings, self.upstream, self.metrics)
        limits: list[RateLimit] = []
        self.api = chain.build(
            settings,
            self.upstream,
            self.metrics,
            self.access_log,
            self.cache_listener,
            self.cache_shared,
            self._on_close,
            hooks,
            self._caches,
            self.realtime,
            limits,
        )
        if loaded.routers:
            self.ext = ExtensionApp(loaded, self._context, settings.max_body_size)
            self._ext_chain = chain.extension_chain(
                self.ext, settings, self.metrics, self.access_log, limits[0] if limits else None
            )
        if self.cache_shared is not None:
            self.cache_shared.start()
        if self.cache_listener is not None:
            self.cache_listener.start()
        self._loop = asyncio.get_running_loop()
        self._chain_signals()
        # What startup made (the apps, the models, the catalog) lives as long as the process:
        # set it aside from the cyclic collector, which otherwise walks it again and again as
        # requests allocate (7-12% of a cache hit's CPU, more with Valkey).
        gc.freeze()
        # And the youngest generation is collected every 20,000 container allocations, not
        # 700: a request's objects are freed by reference counting long before, so each
        # collection mostly walked the requests in flight (a cache hit spent 5-8% of its CPU
        # there, and each layer that allocates raised it).
        gc.set_threshold(20_000, 50, 50)
        _info("gateway ready", upstream=settings.pocketbase_url, collections=len(COLLECTIONS))

    def _context(self, scope: Scope) -> extensions.Context:
        assert self.api is not None
        cache = self._caches[0] if self._caches else None
        return extensions.Context(self.api, scope, cache, self.metrics)

    def _hook_context(
        self, scope: Scope, collection: str, operation: str, record_id: str
    ) -> extensions.Context:
        assert self.api is not None
        cache = self._caches[0] if self._caches else None
        return extensions.Context(
            self.api, scope, cache, self.metrics, collection, operation, record_id
        )

    def end_streams(self) -> None:
        """End every open realtime stream and refuse new ones. Safe from a signal handler or
        another thread (the work is scheduled on the gateway's loop)."""
        loop, upstream, realtime = self._loop, self.upstream, self.realtime
        if loop is not None and upstream is not None and not loop.is_closed():
            loop.call_soon_threadsafe(upstream.close_streams)
            if realtime is not None:
                loop.call_soon_threadsafe(realtime.close_all)

    def _chain_signals(self) -> None:
        """Run ``end_streams`` first whenever the server's own SIGTERM / SIGINT handler runs."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only; an embedding host ends streams itself
        for sig in _STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue  # no handler of a server's to chain (default or ignored)

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                self.end_streams()
                previous(signum, frame)

            signal.signal(sig, handler)
            self._chained[sig] = (handler, previous)

    def _unchain_signals(self) -> None:
        for sig, (handler, previous) in self._chained.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
        self._chained.clear()

    async def shutdown(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._unchain_signals()
        if self.realtime is not None:
            await self.realtime.aclose()
        if self.cache_listener is not None:
            await self.cache_listener.aclose()
        if self.cache_shared is not None:
            await self.cache_shared.aclose()
        for pool in (self.upstream, self._health):
            if pool is not None:
                await pool.aclose()
        await limitstore.close_all()
        await offload.shutdown()
        for close in self._on_close:
            await close()
        self._on_close.clear()
        if self.access_log is not None:
            self.access_log.flush()
        _info("gateway stopped")

    async def upstream_health(self) -> dict[str, Any]:
        """PocketBase's ``/api/health`` as seen from here (for ``/health``)."""
        assert self._health is not None
        try:
            response = await self._health.request("GET", b"/api/health", [])
            await response.read()
        except UpstreamError as exc:
            return {"status": "down", "error": str(exc)}
        return {"status": "ok" if response.status == 200 else "down", "code": response.status}

    async def _startup_checks(self, settings: Settings) -> None:
        """Is PocketBase there; do the superuser credentials work; are the collections there?

        The superuser token lives only inside this function, on its own connection pool: it is
        never attached to a user's request.
        """
        admin = Upstream(
            settings.pocketbase_url, max_connections=1, connect_timeout=2.0, read_timeout=3.0
        )
        try:
            try:
                response = await admin.request("GET", b"/api/health", [])
                await response.read()
            except UpstreamError as exc:
                _warn(
                    f"PocketBase at {settings.pocketbase_url} is not answering yet ({exc}); "
                    "requests get 502 until it does"
                )
                return
            if not settings.has_superuser:
                return
            assert settings.superuser_email is not None and settings.superuser_password is not None
            body = orjson.dumps(
                {
                    "identity": settings.superuser_email,
                    "password": settings.superuser_password.get_secret_value(),
                }
            )
            response = await admin.request(
                "POST",
                b"/api/collections/_superusers/auth-with-password",
                [(b"content-type", b"application/json")],
                body,
            )
            answer = await response.read()
            if response.status != 200:
                raise StartupError(
                    f"PB_SUPERUSER_EMAIL / PB_SUPERUSER_PASSWORD were rejected by PocketBase at "
                    f"{settings.pocketbase_url} (HTTP {response.status})"
                )
            token = orjson.loads(answer)["token"].encode()
            response = await admin.request(
                "GET", b"/api/collections?perPage=1000&fields=id,name", [(b"authorization", token)]
            )
            listed = orjson.loads(await response.read()).get("items", [])
            names = {c.get("name") for c in listed} | {c.get("id") for c in listed}
            missing = sorted(c.name for c in COLLECTIONS if c.name not in names)
            if missing:
                _warn(
                    f"PocketBase has no collection {', '.join(missing)}: regenerate the gateway "
                    "(hapta-gen schema pull && hapta-gen build)"
                )
        except UpstreamError as exc:
            _warn(f"startup checks against PocketBase failed: {exc}")
        finally:
            await admin.aclose()


def _info(msg: str, **fields: Any) -> None:
    logs.log.info(msg, extra={"fields": {"msg": msg, **fields}})


def _warn(msg: str) -> None:
    logs.log.warning(msg, extra={"fields": {"msg": msg}})


def create_app(settings: Settings | None = None) -> Gateway:
    """A gateway; without ``settings`` they are read from the environment at startup."""
    return Gateway(settings)


app = create_app()
