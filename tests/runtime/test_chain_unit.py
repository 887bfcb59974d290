"""``chain.build``: the layers in their order, a switched-off layer absent, and a request run
through the chain in-process (answers the gateway makes itself, counted and in the envelope)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
from gateway import chain
from gateway.asgi import Message
from gateway.layers.cache import Cache
from gateway.layers.clientip import ClientAddress
from gateway.layers.forward import Forward
from gateway.layers.observe import Observe
from gateway.layers.ratelimit import RateLimit
from gateway.layers.route import RouteLayer
from gateway.layers.session import Sessions
from gateway.layers.sse import SseStreams
from gateway.layers.validate import Validate
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream import Upstream


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def layers(app: Any) -> list[type]:
    out = []
    while app is not None:
        out.append(type(app))
        app = getattr(app, "app", None)
    return out


def settings(**extra: Any) -> Settings:
    return Settings(POCKETBASE_URL=f"http://127.0.0.1:{closed_port()}", **extra)


def test_order_and_switched_off_layers() -> None:
    plain = settings()  # the postly example has rate limits; the cache is on by default
    up = Upstream(plain.pocketbase_url)
    assert layers(chain.build(plain, up, Metrics(), None)) == [
        Observe,
        RouteLayer,
        RateLimit,
        Cache,
        Validate,
        SseStreams,
        Forward,
    ]
    proxied = settings(
        HAPTA_TRUSTED_PROXIES="10.0.0.0/8", HAPTA_CACHE="off", HAPTA_RATE_LIMIT_ENABLED="false"
    )
    assert layers(chain.build(proxied, up, Metrics(), None)) == [
        Observe,
        ClientAddress,
        RouteLayer,
        Validate,
        SseStreams,
        Forward,
    ]


def test_sessions_layer_only_in_rolling_mode() -> None:
    plain = settings()
    up = Upstream(plain.pocketbase_url)
    assert Sessions not in layers(chain.build(plain, up, Metrics(), None))  # postly: passthrough
    closers: list[Any] = []
    rolling = chain.build(settings(HAPTA_SESSIONS="rolling"), up, Metrics(), None, on_close=closers)
    assert layers(rolling) == [Observe, RouteLayer, RateLimit, Sessions, Cache, Validate, SseStreams, Forward]
    assert len(closers) == 3  # the stream feeds, their tickets and the session store
    assert Sessions not in layers(chain.build(settings(HAPTA_SESSIONS="passthrough"), up, Metrics(), None))


def run(app: Any, method: str, path: str, query: bytes = b"", body: bytes = b"") -> list[Message]:
    sent: list[Message] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"content-type", b"application/json")],
        "client": ("192.0.2.7", 5000),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def answer(sent: list[Message]) -> tuple[int, dict[str, Any]]:
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_answers_made_by_the_chain_are_counted() -> None:
    s = settings()
    metrics = Metrics()
    app = chain.build(s, Upstream(s.pocketbase_url, connect_timeout=1.0), metrics, None)

    status, body = answer(run(app, "GET", "/api/collections/nope/records"))
    assert (status, body["message"]) == (404, "Missing collection context.")
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    assert count(metrics, "hapta_requests_total", **labels) == 1

    status, body = answer(run(app, "GET", "/api/collections/posts/records", b"perPage=5000"))
    assert status == 400 and "perPage" in body["data"]

    status, body = answer(run(app, "POST", "/api/collections/posts/records", body=b"{nope"))
    assert status == 400

    status, body = answer(run(app, "GET", "/api/collections/posts/records"))
    assert (status, body["message"]) == (502, "PocketBase is unreachable.")
    assert count(metrics, "hapta_upstream_requests_total", route="records.list", outcome="error") == 1
    labels = {"route": "records.list", "method": "GET", "status": "502"}
    assert count(metrics, "hapta_requests_total", **labels) == 1
