"""The request path for ``/api/...``, assembled in one place from the settings.

    observe → client IP → route → [rate limit] → [session] → [cache] → validate → forward

A layer that is switched off is not in the chain, so a request pays nothing for it: the session
layer is there only in rolling mode (``HAPTA_SESSIONS``, else ``hapta.yaml``'s ``sessions``, the
catalog's ``SESSIONS``), the rate limits only when there are rules, the cache unless
``HAPTA_CACHE=off``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import logs
from .asgi import ASGIApp
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


def build(
    settings: Settings,
    upstream: Upstream,
    metrics: Metrics,
    access_log: logs.AccessLog | None,
    on_close: list[Callable[[], Awaitable[None]]] | None = None,
) -> ASGIApp:
    """The chain, innermost layer first; what must be closed at shutdown goes in ``on_close``."""
    streams = StreamSlots.from_settings(settings)
    app: ASGIApp = Forward(upstream, metrics, streams, settings.send_timeout)
    app = Validate(app, settings.max_body_size)
    if settings.cache:
        app = Cache(app, _cache_store(settings, metrics), metrics, settings.cache_ttl)
    if (settings.sessions or SESSIONS) == "rolling":
        store = open_store(settings.redis_url, settings.redis_timeout)
        app = Sessions(app, store, metrics, settings.session_grace)
        if on_close is not None:
            on_close.append(store.aclose)
    if settings.rate_limit_enabled and RULES:
        app = rate_limit(app, settings, metrics, Rules(RULES))
    app = RouteLayer(app)
    if settings.trusted_proxies:
        app = ClientAddress(app, ClientIP(settings.trusted_proxies))
    return Observe(app, metrics, access_log)


def _cache_store(settings: Settings, metrics: Metrics) -> CacheStore:
    store = CacheStore(settings.cache_max_bytes)
    metrics.cache_bytes.set_function(lambda: store.bytes)
    msg = (
        f"response cache on: entries live at most {settings.cache_ttl:g} s (HAPTA_CACHE_TTL), "
        "because writes made outside this gateway are not observed yet"
    )
    logs.log.info(msg, extra={"fields": {"msg": msg, "max_bytes": settings.cache_max_bytes}})
    return store
