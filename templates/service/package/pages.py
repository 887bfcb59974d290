"""Pages the gateway serves itself, outside ``/api``: the Datastar client (``/static/datastar.js``,
vendored, so no CDN is needed) and, with ``HAPTA_DEMO_PAGES``, ``/demo/live/<collection>``: a
live list of a collection's records fed by its Datastar stream (``/datastar/<collection>``)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import orjson

from .asgi import Receive, Scope, Send
from .catalog import BY_NAME
from .errors import JSON_HEADERS, NOT_FOUND, envelope
from .layers.sse import list_id

SCRIPT = "/static/datastar.js"
DEMO = "/demo/live/"
PREFIXES = (SCRIPT, DEMO)
_HERE = Path(__file__).resolve().parent
_NOT_FOUND = envelope(404, NOT_FOUND)


class Pages:
    def __init__(self, demo: bool) -> None:
        self.demo = demo
        self._script = (_HERE / "static" / "datastar.js").read_bytes()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(_HERE / "pages")), autoescape=True
        )
        self._live = env.get_template("live.html")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 404, JSON_HEADERS, _NOT_FOUND)
        elif path == SCRIPT:
            headers = [
                (b"content-type", b"text/javascript; charset=utf-8"),
                (b"cache-control", b"public, max-age=86400"),
            ]
            await _send(send, 200, headers, self._script)
        elif self.demo and path.startswith(DEMO) and path[len(DEMO) :] in BY_NAME:
            body = self._page(BY_NAME[path[len(DEMO) :]].name).encode()
            await _send(send, 200, [(b"content-type", b"text/html; charset=utf-8")], body)
        else:
            await _send(send, 404, JSON_HEADERS, _NOT_FOUND)

    def _page(self, collection: str) -> str:
        stream = f"/datastar/{collection}"
        return self._live.render(
            collection=collection,
            script=SCRIPT,
            stream=stream,
            list_id=list_id(collection),
            signals=orjson.dumps({collection: {"count": 0}}).decode(),
            count_expression=f"${collection}.count",
            init=f"@get('{stream}')",
        )


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
