"""The request path for ``/api/...``, assembled in one place from the settings.

    observe → client IP → route → [rate limit] → [hooks] → [session] → [cache] → validate
            → sse → [shape] → forward

``sse`` answers the gateway's own streams (``/sse/...``, ``/datastar/...``) and passes the rest.

A layer that is switched off is not in the chain, so a request pays nothing for it: the session
layer is there only in rolling mode (``HAPTA_SESSIONS``, else ``hapta.yaml``'s ``sessions``, the
catalog's ``SESSIONS``), the rate limits only when there are rules, the cache unless
``HAPTA_CACHE=off`` (or ``hapta.yaml``'s ``cache: enabled: false``), the extensions' hooks
only when an extension has some, the shape layer only when ``hapta.yaml`` hides a field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import logs
from .asgi import ASGIApp
from .cachelisten import SHORT_TTL, Invalidate, Listener
from .cachestore import CacheStore
from .catalog import SESSIONS
from .clientip import ClientIP
from .eventsource import hub_source
from .fanout import Hub
from .fragments import Fragments
from .layers.cache import Cache
from .layers.clientip import ClientAddress
from .layers.forward import Forward
from .layers.hooks import Hooked, HookTable
from .layers.observe import Observe
from .layers.ratelimit import RateLimit
from .layers.ratelimit import from_settings as rate_limit
from .layers.route import ExtensionRoute, RouteLayer
from .layers.session import Sessions
from .layers.shape import ANY_HIDDEN, Shape
from .layers.sse import SseStreams
from .layers.validate import Validate
from .metrics import Metrics
from .ratelimit import Rules
from .ratelimit_rules import RULES
from .sessions import open_store
from .settings import Settings
from .ssefeed import Feeds
from .sseticket import open_tickets
from .streams import StreamSlots
from .upstream import Upstream

if TYPE_CHECKING:  # imported when HAPTA_REDIS_URL is set (app.py): redis is loaded only then
    from .cacheshared import SharedTier


def build(
    settings: Settings,
    upstream: Upstream,
    metrics: Metrics,
    access_log: logs.AccessLog | None,
    listener: Listener | None = None,
    shared: SharedTier | None = None,
    on_close: list[Callable[[], Awaitable[None]]] | None = None,
    hooks: HookTable | None = None,
    caches: list[Cache] | None = None,
    realtime: Hub | None = None,
    limits: list[RateLimit] | None = None,
) -> ASGIApp:
    """The chain, innermost layer first. With the cache on, ``listener`` (when given: the
    superuser credentials are set) feeds it the writes made elsewhere, and ``shared`` (when
    given: ``HAPTA_REDIS_URL``) is the tier behind its in-process store; the caller starts
    both. What must be closed at shutdown goes in ``on_close``. ``hooks`` are the extensions'
    (``extensions``); the cache layer, when there is one, is appended to ``caches``.
    ``realtime``: the process's realtime hub (``fanout``), made here when not given. The rate
    limit layer, when there is one, is appended to ``limits`` (``extension_chain`` shares it)."""
    streams = StreamSlots.from_settings(settings)
    if realtime is None:
        realtime = hub(settings, upstream, metrics)
    app: ASGIApp = Forward(upstream, metrics, streams, settings.send_timeout, realtime)
    if ANY_HIDDEN:
        app = Shape(app)
    app = _sse(app, settings, upstream, metrics, streams, realtime, on_close)
    app = Validate(app, settings.max_body_size)
    if settings.cache_on:
        layer = _cache(app, settings, metrics, listener, shared)
        app = layer
        if caches is not None:
            caches.append(layer)
    if (settings.sessions or SESSIONS) == "rolling":
        store = open_store(settings.redis_url, settings.redis_timeout, settings.sessions_max)
        app = Sessions(app, store, metrics, settings.session_grace, realtime.sessions_revoked)
        realtime.watch_sessions(store, settings.sse_session_check)
        if on_close is not None:
            on_close.append(store.aclose)
    if hooks is not None and hooks.any:  # before sessions: hooks act with the caller's own key
        app = Hooked(app, hooks)
    if settings.rate_limit_enabled and RULES:
        limiter = rate_limit(app, settings, metrics, Rules(RULES))
        app = limiter
        if limits is not None:
            limits.append(limiter)
    app = RouteLayer(app)
    if settings.trusted_proxies:
        app = ClientAddress(app, ClientIP(settings.trusted_proxies))
    return Observe(app, metrics, access_log)


def extension_chain(
    app: ASGIApp,
    settings: Settings,
    metrics: Metrics,
    access_log: logs.AccessLog | None,
    limiter: RateLimit | None,
) -> ASGIApp:
    """The path of a request to the extensions' routers (``extapp``), outside ``/api/``:

        observe → client IP → extension route → [rate limit] → the routers

    counted, logged and limited as ``/api/`` requests are (route ``extension``; ``limiter``
    is the chain's, so a ``*`` rule counts both together). The routers ask PocketBase
    through the ``/api/`` chain (``ctx.pocketbase``), which checks what it always checks."""
    if limiter is not None:
        app = limiter.around(app)
    app = ExtensionRoute(app)
    if settings.trusted_proxies:
        app = ClientAddress(app, ClientIP(settings.trusted_proxies))
    return Observe(app, metrics, access_log)


def _sse(
    app: ASGIApp,
    settings: Settings,
    upstream: Upstream,
    metrics: Metrics,
    streams: StreamSlots,
    realtime: Hub,
    on_close: list[Callable[[], Awaitable[None]]] | None,
) -> SseStreams:
    feeds = Feeds(
        hub_source(realtime),
        metrics,
        client_buffer=settings.sse_client_buffer,
        resume_events=settings.sse_resume_events,
        resume_window=settings.sse_resume_window,
        rotate=settings.sse_rotate,
    )
    tickets = open_tickets(settings.sse_ticket_ttl, settings.redis_url, settings.redis_timeout)
    if on_close is not None:
        on_close.append(feeds.aclose)
        on_close.append(tickets.aclose)
    return SseStreams(
        app,
        feeds,
        tickets,
        streams,
        upstream,
        metrics,
        Fragments(settings.fragments_dir),
        heartbeat=settings.sse_heartbeat,
        send_timeout=settings.send_timeout,
    )


def hub(settings: Settings, upstream: Upstream, metrics: Metrics) -> Hub:
    """The realtime hub of this process (``fanout``)."""
    return Hub(
        upstream,
        metrics,
        buffer=settings.sse_buffer,
        heartbeat=settings.sse_heartbeat,
        send_timeout=settings.send_timeout,
        rotate=settings.sse_rotate,
        redis_url=settings.redis_url,
    )


def _cache(
    app: ASGIApp,
    settings: Settings,
    metrics: Metrics,
    listener: Listener | None,
    shared: SharedTier | None,
) -> Cache:
    store = CacheStore(settings.cache_bytes)
    metrics.cache_bytes.set_function(lambda: store.bytes)
    ttl = settings.cache_lifetime
    lifetime = settings.lifetime
    if listener is None:
        layer = Cache(app, store, metrics, lifetime, shared)
        msg = (
            f"response cache on: entries live at most {ttl:g} s (HAPTA_CACHE_TTL), because "
            "writes made outside this gateway are not observed without PB_SUPERUSER_EMAIL / "
            "PB_SUPERUSER_PASSWORD"
        )
    else:
        short = min(ttl, SHORT_TTL)
        layer = Cache(
            app,
            store,
            metrics,
            lambda wanted: lifetime(wanted) if listener.up else min(lifetime(wanted), short),
            shared,
        )
        listener.attach(layer.invalidate if shared is None else _everywhere(layer, shared))
        msg = (
            f"response cache on: entries live at most {ttl:g} s (HAPTA_CACHE_TTL); writes made "
            "outside this gateway arrive through a realtime subscription (while it is down: "
            f"at most {short:g} s)"
        )
    if shared is not None:
        shared.attach(layer.invalidate)
        msg += "; shared with other processes through HAPTA_REDIS_URL"
    logs.log.info(msg, extra={"fields": {"msg": msg, "max_bytes": settings.cache_bytes}})
    return layer


def _everywhere(layer: Cache, shared: SharedTier) -> Invalidate:
    def invalidate(tags: frozenset[str] | None) -> None:
        layer.invalidate(tags)
        shared.invalidate_soon(tags)

    return invalidate
