"""The extensions' routers (``extensions``) as one FastAPI app, served outside ``/api/``.

Each request finds its ``Context`` as ``request.state.hapta``; an ``ApiError`` a handler raises
(``ctx.error(...)``, or an error answer ``ctx.pocketbase.records`` passes on) becomes
PocketBase's envelope.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Match

from .asgi import Receive, Scope, Send
from .errors import ApiError
from .extensions import Context, Loaded


class ExtensionApp:
    def __init__(self, loaded: Loaded, context: Callable[[Scope], Context]) -> None:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        for router in loaded.routers:
            app.include_router(router)

        async def envelope(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, ApiError)
            return Response(
                exc.body(),
                status_code=exc.status,
                media_type="application/json",
                headers={k.decode(): v.decode() for k, v in exc.headers},
            )

        app.add_exception_handler(ApiError, envelope)
        self.app = app
        self.context = context

    def serves(self, scope: Scope) -> bool:
        """One of the routers has this path (any method: FastAPI answers a wrong one)."""
        return any(route.matches(scope)[0] is not Match.NONE for route in self.app.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = {**scope, "state": {**scope.get("state", {}), "hapta": self.context(scope)}}
        await self.app(scope, receive, send)
