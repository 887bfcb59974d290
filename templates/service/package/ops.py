"""The gateway's own endpoints, on FastAPI: ``/docs``, ``/openapi.json``, ``/health``,
``/metrics``. None of them is on the request chain for ``/api/`` (``app`` dispatches before
FastAPI)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fastapi_offline
import orjson
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from . import __version__
from .metrics import Metrics

#: PocketBase's health as the gateway sees it: ``{"status": "ok" | "down", ...}``.
UpstreamHealth = Callable[[], Awaitable[dict[str, Any]]]

#: Swagger UI's own files, served from the ``fastapi-offline`` package: /docs needs no CDN, so
#: it works on a machine without internet access.
DOCS_ASSETS = {
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "application/javascript"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css"),
    "/docs/favicon.png": ("favicon.png", "image/png"),
}
#: Paths FastAPI serves; everything else outside ``/api/`` is a 404 in PocketBase's envelope.
PATHS = frozenset(
    {"/docs", "/openapi.json", "/health", "/metrics", "/docs/oauth2-redirect", *DOCS_ASSETS}
)


def openapi_path() -> Path:
    """``openapi.json`` inside the installed package (wheel) or next to it (source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "openapi.json", here.parent / "openapi.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("openapi.json is missing: rebuild the gateway with hapta-gen build")


_ASSET_HEADERS = {"Cache-Control": "public, max-age=86400"}


def _docs_assets() -> dict[str, tuple[bytes, str]]:
    static = Path(fastapi_offline.__file__).resolve().parent / "static"
    return {url: ((static / name).read_bytes(), kind) for url, (name, kind) in DOCS_ASSETS.items()}


def _static(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def asset() -> Response:
        return Response(body, media_type=media_type, headers=_ASSET_HEADERS)

    return asset


def create_ops_app(metrics: Metrics, upstream_health: UpstreamHealth) -> FastAPI:
    spec = openapi_path().read_bytes()
    title = str(orjson.loads(spec).get("info", {}).get("title", "PocketBase gateway"))
    api = FastAPI(title=title, version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return Response(spec, media_type="application/json")

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - docs",
            swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="/docs/favicon.png",
        )

    for url, (body, media_type) in _docs_assets().items():
        api.add_api_route(url, _static(body, media_type), methods=["GET"], include_in_schema=False)

    @api.get("/health", include_in_schema=False)
    async def health() -> Response:
        started = time.perf_counter()
        upstream = await upstream_health()
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
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return api
