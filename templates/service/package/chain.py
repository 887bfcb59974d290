"""The request path for ``/api/...``, assembled in one place from the settings.

    observe → client IP → route → [rate limit] → [session] → [cache] → validate → forward

A layer that is switched off is not in the chain, so a request pays nothing for it: the session
layer is there only in rolling mode (``HAPTA_SESSIONS``, else ``hapta.yaml``'s ``sessions``, the
catalog's ``SESSIONS``). Layers still to come (rate limits, the cache) go between ``route`` and
``validate`` too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import logs
from .asgi import ASGIApp
from .catalog import SESSIONS
from .clientip import ClientIP
from .layers.clientip import ClientAddress
from .layers.forward import Forward
from .layers.observe import Observe
from .layers.route import RouteLayer
from .layers.session import Sessions
from .layers.validate import Validate
from .metrics import Metrics
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
    if (settings.sessions or SESSIONS) == "rolling":
        store = open_store(settings.redis_url)
        app = Sessions(app, store, metrics, settings.session_grace)
        if on_close is not None:
            on_close.append(store.aclose)
    app = RouteLayer(app)
    if settings.trusted_proxies:
        app = ClientAddress(app, ClientIP(settings.trusted_proxies))
    return Observe(app, metrics, access_log)
