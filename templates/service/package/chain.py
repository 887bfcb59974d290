"""The request path for ``/api/...``, assembled in one place from the settings.

    observe → client IP → route → [rate limit] → [session] → [cache] → validate → forward

A layer that is switched off is not in the chain, so a request pays nothing for it: the session
layer is there only in rolling mode (``HAPTA_SESSIONS``, else ``hapta.yaml``'s ``sessions``, the
catalog's ``SESSIONS``), the rate limits only when there are rules, the cache unless
``HAPTA_CACHE=off``.
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
from .layers.cache import Cache
from .layers.clientip import ClientAddress
from .layers.forward import Forward
from .layers.observe import Observe
from .layers.ratelimit import from_settings as rate_limit
from .layers.route import RouteLayer
from .layers.session import Sessions
from .layers.validate import Validate
from .metrics import Metrics
from .ratelimit import Rules
from .ratelimit_rules import RULES
from .sessions import open_store
from .settings import Settings
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
) -> ASGIApp:
    """The chain, innermost layer first. With the cache on, ``listener`` (when given: the
    superuser credentials are set) feeds it the writes made elsewhere, and ``shared`` (when
    given: ``HAPTA_REDIS_URL``) is the tier behind its in-process store; the caller starts
    both. What must be closed at shutdown goes in ``on_close``."""
    streams = StreamSlots.from_settings(settings)
    app: ASGIApp = Forward(upstream, metrics, streams, settings.send_timeout)
    app = Validate(app, settings.max_body_size)
    if settings.cache:
        app = _cache(app, settings, metrics, listener, shared)
    if (settings.sessions or SESSIONS) == "rolling":
        store = open_store(settings.redis_url, settings.redis_timeout, settings.sessions_max)
        app = Sessions(app, store, metrics, settings.session_grace)
        if on_close is not None:
            on_close.append(store.aclose)
    if settings.rate_limit_enabled and RULES:
        app = rate_limit(app, settings, metrics, Rules(RULES))
    app = RouteLayer(app)
    if settings.trusted_proxies:
        app = ClientAddress(app, ClientIP(settings.trusted_proxies))
    return Observe(app, metrics, access_log)


def _cache(
    app: ASGIApp,
    settings: Settings,
    metrics: Metrics,
    listener: Listener | None,
    shared: SharedTier | None,
) -> Cache:
    store = CacheStore(settings.cache_max_bytes)
    metrics.cache_bytes.set_function(lambda: store.bytes)
    ttl = settings.cache_lifetime
    if listener is None:
        layer = Cache(app, store, metrics, lambda: ttl, shared)
        msg = (
            f"response cache on: entries live at most {ttl:g} s (HAPTA_CACHE_TTL), because "
            "writes made outside this gateway are not observed without PB_SUPERUSER_EMAIL / "
            "PB_SUPERUSER_PASSWORD"
        )
    else:
        short = min(ttl, SHORT_TTL)
        layer = Cache(app, store, metrics, lambda: ttl if listener.up else short, shared)
        listener.attach(layer.invalidate if shared is None else _everywhere(layer, shared))
        msg = (
            f"response cache on: entries live at most {ttl:g} s (HAPTA_CACHE_TTL); writes made "
            "outside this gateway arrive through a realtime subscription (while it is down: "
            f"at most {short:g} s)"
        )
    if shared is not None:
        shared.attach(layer.invalidate)
        msg += "; shared with other processes through HAPTA_REDIS_URL"
    logs.log.info(msg, extra={"fields": {"msg": msg, "max_bytes": settings.cache_max_bytes}})
    return layer


def _everywhere(layer: Cache, shared: SharedTier) -> Invalidate:
    def invalidate(tags: frozenset[str] | None) -> None:
        layer.invalidate(tags)
        shared.invalidate_soon(tags)

    return invalidate
