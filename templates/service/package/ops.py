"""The gateway's own endpoints, on FastAPI: ``/docs``, ``/openapi.json``, ``/health``,
``/metrics``. None of them is on the proxy path (``app`` dispatches before FastAPI)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from . import __version__

if TYPE_CHECKING:
    from .app import Gateway

#: Paths FastAPI serves; everything else outside ``/api/`` is a 404 in PocketBase's envelope.
PATHS = frozenset({"/docs", "/openapi.json", "/health", "/metrics", "/docs/oauth2-redirect"})


def openapi_path() -> Path:
    """``openapi.json`` inside the installed package (wheel) or next to it (source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "openapi.json", here.parent / "openapi.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("openapi.json is missing: rebuild the gateway with hapta-gen build")


def create_ops_app(gateway: Gateway) -> FastAPI:
    spec = openapi_path().read_bytes()
    title = str(orjson.loads(spec).get("info", {}).get("title", "PocketBase gateway"))
    api = FastAPI(title=title, version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return Response(spec, media_type="application/json")

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{title} - docs")

    @api.get("/health", include_in_schema=False)
    async def health() -> Response:
        started = time.perf_counter()
        upstream = await gateway.upstream_health()
        ok = upstream.get("status") == "ok"
        body = {
            "status": "ok" if ok else "degraded",
            "gateway": {"status": "ok", "version": __version__},
            "upstream": upstream | {"ms": round((time.perf_counter() - started) * 1000, 2)},
        }
        return Response(
            orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json"
        )

    @api.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=gateway.metrics.content_type)

    return api
