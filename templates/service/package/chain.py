"""The request path for ``/api/...``, assembled in one place from the settings.

    observe → client IP → route → [rate limit] → [session] → [cache] → validate → forward

A layer that is switched off is not in the chain, so a request pays nothing for it. Layers
still to come (sessions) go between ``rate limit`` and ``cache``.
"""

from __future__ import annotations

from . import logs
from .asgi import ASGIApp
from .cachestore import CacheStore
from .clientip import ClientIP
from .layers.cache import Cache
from .layers.clientip import ClientAddress
from .layers.forward import Forward
from .layers.observe import Observe
from .layers.ratelimit import from_settings as rate_limit
from .layers.route import RouteLayer
from .layers.validate import Validate
from .metrics import Metrics
from .ratelimit import Rules
from .ratelimit_rules import RULES
from .settings import Settings
from .streams import StreamSlots
from .upstream import Upstream


def build(
    settings: Settings,
    upstream: Upstream,
    metrics: Metrics,
    access_log: logs.AccessLog | None,
) -> ASGIApp:
    """The chain, innermost layer first."""
    streams = StreamSlots.from_settings(settings)
    app: ASGIApp = Forward(upstream, metrics, streams, settings.send_timeout)
    app = Validate(app, settings.max_body_size)
    if settings.cache:
        app = Cache(app, _cache_store(settings, metrics), metrics, settings.cache_ttl)
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
