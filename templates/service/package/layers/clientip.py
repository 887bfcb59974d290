"""Sets the request's client address from ``X-Forwarded-For`` when the TCP peer is a trusted
proxy (``HAPTA_TRUSTED_PROXIES``); in the chain only when trusted proxies are configured, else
the peer (set by ``observe``) is the client."""

from __future__ import annotations

from ..asgi import ASGIApp, Receive, Scope, Send, state
from ..clientip import ClientIP


class ClientAddress:
    def __init__(self, app: ASGIApp, resolver: ClientIP) -> None:
        self.app = app
        self.resolver = resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        st.client = self.resolver.resolve_scope(st.client, scope["headers"])
        await self.app(scope, receive, send)
