"""Puts the matched ``Route`` in the request's state, or answers 404 (``routing.match``, and
``routing.check_raw_path`` for encoded separators) before anything else is read."""

from __future__ import annotations

from ..asgi import ASGIApp, Receive, Scope, Send, state
from ..routing import check_raw_path, match


class RouteLayer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state(scope).route = match(scope["method"], scope["path"])
        check_raw_path(scope.get("raw_path"))
        await self.app(scope, receive, send)
