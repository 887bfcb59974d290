"""Puts the matched ``Route`` in the request's state, or answers 404 (``routing.match``, and
``routing.check_raw_path`` for encoded separators) before anything else is read; for the
extensions' routers, the ``extension`` route (``ExtensionRoute``)."""

from __future__ import annotations

from ..asgi import ASGIApp, Message, Receive, Scope, Send, state
from ..routing import EXTENSION, check_raw_path, match


class RouteLayer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state(scope).route = match(scope["method"], scope["path"])
        check_raw_path(scope.get("raw_path"))
        await self.app(scope, receive, send)


class ExtensionRoute:
    """The ``extension`` route for a request to an extensions' router, and what the router
    answers (status, size) recorded in the request's state for ``observe``: a FastAPI app
    sends its answers itself, not through ``asgi.respond``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        st.route = EXTENSION

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                st.status = message["status"]
                st.responding = True
            elif message["type"] == "http.response.body":
                st.size += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, recorded)
