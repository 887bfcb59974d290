"""The extensions' routers (``extensions``) as one FastAPI app, served outside ``/api/``.

Each request finds its ``Context`` as ``request.state.hapta``; an ``ApiError`` a handler raises
(``ctx.error(...)``, or an error answer ``ctx.pocketbase.records`` passes on), FastAPI's own
405 and a query that does not fit the handler's parameters (400, per parameter) become
PocketBase's envelope.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from .asgi import Message, Receive, Scope, Send
from .errors import BAD_REQUEST, TOO_LARGE, ApiError, field_error
from .extensions import Context, Loaded


class ExtensionApp:
    def __init__(
        self, loaded: Loaded, context: Callable[[Scope], Context], max_body_size: int
    ) -> None:
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

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return await envelope(request, ApiError(exc.status_code, str(exc.detail)))

        async def invalid(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, RequestValidationError)
            data = {
                str(e["loc"][-1]): field_error("validation_invalid_value", str(e["msg"]))
                for e in exc.errors()
                if e.get("loc")
            }
            return await envelope(request, ApiError(400, BAD_REQUEST, data))

        app.add_exception_handler(ApiError, envelope)
        app.add_exception_handler(HTTPException, http_error)
        app.add_exception_handler(RequestValidationError, invalid)
        self.app = app
        self.context = context
        self.max_body_size = max_body_size

    def serves(self, scope: Scope) -> bool:
        """One of the routers has this path (any method: FastAPI answers a wrong one)."""
        return any(route.matches(scope)[0] is not Match.NONE for route in self.app.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = {**scope, "state": {**scope.get("state", {}), "hapta": self.context(scope)}}
        await self.app(scope, _bounded(receive, self.max_body_size), send)


def _bounded(receive: Receive, limit: int) -> Receive:
    """``receive``, refusing a body past ``limit`` bytes with a 413 (``HAPTA_MAX_BODY_SIZE``, as
    on ``/api/``): FastAPI would hold any body whole."""
    total = 0

    async def bounded() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:  # an HTTPException: FastAPI turns any other error here into a 400
                raise HTTPException(413, TOO_LARGE)
        return message

    return bounded
