"""Your own code in the gateway: the modules ``hapta.yaml``'s ``extensions`` names, imported at
start (the catalog's ``EXTENSIONS``; ``EXTENSION_PATHS`` are searched first). A module may
define any of:

* ``router``: a FastAPI ``APIRouter``, served outside ``/api/`` (its paths may not start with
  ``/api/`` nor take the gateway's own ``/docs``, ``/health``, ``/metrics``...). A handler
  finds its ``Context`` as ``request.state.hapta``.
* ``before_write``: ``{"<collection>:<create|update|*>": async fn(ctx, body) -> body}``, run on a
  JSON record write (also inside ``/api/batch``) before the gateway checks it: return the body
  to send (changed or not), or ``raise ctx.error(400, "...")`` to refuse it in PocketBase's
  envelope. A write with another content type to such a collection is refused (400).
* ``after_read``: ``{"<collection>:<list|view|*>": async fn(ctx, data) -> data}``, run on a
  ``200`` list page or record before the caller gets it (on cache hits too).

``Context`` never holds the superuser credential: ``ctx.pocketbase`` sends requests through the
gateway's own ``/api`` chain with the caller's ``Authorization`` (so PocketBase's rules, the
rate limits, hidden fields and the cache apply as to the caller's own requests);
``ctx.cached`` keeps a computed answer in the response cache, under the caller's scope and the
tags of the reads it made, so a write that would change those reads drops it too;
``ctx.models`` is the generated ``models`` package and ``ctx.collections`` the catalog.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from . import models
from .asgi import ASGIApp, Headers, Message, Scope
from .cachepolicy import read_plan
from .cachestore import Entry
from .catalog import BY_NAME, EXTENSION_PATHS, EXTENSIONS
from .errors import ApiError
from .metrics import Metrics
from .routing import match
from .spec import CollectionSpec

if TYPE_CHECKING:
    from fastapi import APIRouter

    from .layers.cache import Cache

BeforeWrite = Callable[["Context", dict[str, Any]], Awaitable[dict[str, Any]]]
AfterRead = Callable[["Context", Any], Awaitable[Any]]
WRITE_OPERATIONS = ("create", "update")
READ_OPERATIONS = ("list", "view")
#: Request headers an extension's calls carry over from the caller's request.
_CARRIED = frozenset({b"authorization", b"x-forwarded-for", b"x-real-ip"})


class ExtensionError(Exception):
    """An extension cannot be loaded (one line, for the operator)."""


@dataclass(frozen=True)
class Answer:
    """PocketBase's answer (through the gateway) to an extension's request."""

    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class PocketBase:
    """Requests through the gateway's ``/api`` chain, as the caller: with the caller's own
    ``Authorization`` (none for a guest) and address, never a credential of the gateway's."""

    def __init__(self, api: ASGIApp, caller: Scope) -> None:
        self._api = api
        self._headers = [(k, v) for k, v in caller.get("headers", []) if k in _CARRIED]
        self._client = caller.get("client")
        #: The cache tags of the reads made so far; ``None`` once one could not be cached.
        self.tags: set[str] | None = set()
        self.ttl: float | None = None

    @property
    def authenticated(self) -> bool:
        """The caller sent a credential (PocketBase decides whether it is any good)."""
        return any(k == b"authorization" and v.strip() for k, v in self._headers)

    @property
    def claimed_id(self) -> str:
        """The record id the caller's token claims, ``""`` without one. **Unverified**: use it
        only to choose what to ask PocketBase for (which still decides with the real token;
        PocketBase lets only superusers filter by ``@request.auth``), never to grant anything."""
        for key, value in self._headers:
            if key != b"authorization":
                continue
            parts = value.removeprefix(b"Bearer ").strip().split(b".")
            if len(parts) != 3:
                return ""
            padded = parts[1] + b"=" * (-len(parts[1]) % 4)
            try:
                claims = orjson.loads(base64.urlsafe_b64decode(padded))
            except (ValueError, orjson.JSONDecodeError):
                return ""
            found = claims.get("id") if isinstance(claims, dict) else None
            return found if isinstance(found, str) and found.isalnum() else ""
        return ""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Answer:
        query = urlencode({k: str(v) for k, v in (params or {}).items()}).encode()
        headers = list(self._headers)
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            headers.append((b"content-type", b"application/json"))
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "headers": headers,
            "client": self._client,
            "server": None,
        }
        self._track(scope)
        return await _call(self._api, scope, body)

    async def get(self, path: str, **params: Any) -> Answer:
        return await self.request("GET", path, params=params)

    async def records(self, collection: str, **params: Any) -> dict[str, Any]:
        """One page of ``collection``'s records as the caller may list them; an error answer
        is raised as it came (``ApiError``)."""
        answer = await self.get(f"/api/collections/{collection}/records", **params)
        if answer.status != 200:
            data = _json_or_empty(answer.body)
            raise ApiError(answer.status, str(data.get("message", "")), data.get("data"))
        page: dict[str, Any] = answer.json()
        return page

    def _track(self, scope: Scope) -> None:
        if self.tags is None:
            return
        try:
            route = match(scope["method"], scope["path"])
        except ApiError:
            return  # answered by the gateway itself: depends on nothing cached
        plan = read_plan(route, scope) if scope["method"] == "GET" else None
        if plan is None:
            self.tags = None
            return
        self.tags |= plan.tags
        if plan.ttl is not None:
            self.ttl = plan.ttl if self.ttl is None else min(self.ttl, plan.ttl)


class Context:
    """What an extension's code is given: see the module's docstring."""

    def __init__(
        self,
        api: ASGIApp,
        caller: Scope,
        cache: Cache | None,
        metrics: Metrics,
        collection: str = "",
        operation: str = "",
        record_id: str = "",
    ) -> None:
        self.pocketbase = PocketBase(api, caller)
        self.models = models
        self.collections: Mapping[str, CollectionSpec] = BY_NAME
        self.collection = collection
        self.operation = operation
        self.record_id = record_id
        self._caller = caller
        self._cache = cache
        self._metrics = metrics

    @staticmethod
    def error(status: int, message: str, data: dict[str, Any] | None = None) -> ApiError:
        """An answer in PocketBase's envelope: ``raise ctx.error(400, "...")``."""
        return ApiError(status, message, data)

    async def cached(self, key: tuple[object, ...], compute: Callable[[], Awaitable[Any]]) -> bytes:
        """``compute()``'s answer as JSON bytes, from the response cache when there; kept under
        ``key``, the caller's credential and the tags of the reads ``compute`` made through
        ``ctx.pocketbase`` (a write that changes one of them drops it). Not kept when one of
        those reads could not be cached, or the cache is off or its shared tier is down."""
        layer = self._cache
        if layer is None or (layer.shared is not None and not layer.shared.up):
            return _encode(await compute())
        full = ("ext", self._caller.get("path", ""), key, _credential(self._caller))
        entry = layer.store.get(full)
        if entry is not None:
            self._metrics.cache_hits.inc()
            return entry.body
        self._metrics.cache_misses.inc()
        started = layer.store.epoch
        pb = self.pocketbase
        pb.tags, pb.ttl = set(), None
        body = _encode(await compute())
        if pb.tags is not None:
            etag = b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'
            headers = [(b"content-type", b"application/json"), (b"etag", etag)]
            expires = time.monotonic() + layer.ttl(pb.ttl)
            layer.store.put(full, Entry(headers, body, etag, frozenset(pb.tags), expires), started)
        return body


def _encode(value: Any) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _credential(scope: Scope) -> bytes:
    values = [v for k, v in scope.get("headers", []) if k == b"authorization"]
    return hashlib.blake2b(b"\n".join(values), digest_size=20).digest() if values else b""


async def _call(app: ASGIApp, scope: Scope, body: bytes) -> Answer:
    sent = False
    status = 500
    headers: Headers = []
    parts: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    return Answer(status, headers, b"".join(parts))


# ----------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    """The extensions' routers and hooks (``hooks``: by ``(collection, operation)``)."""

    modules: tuple[ModuleType, ...] = ()
    routers: tuple[APIRouter, ...] = ()
    before_write: dict[tuple[str, str], list[BeforeWrite]] = field(default_factory=dict)
    after_read: dict[tuple[str, str], list[AfterRead]] = field(default_factory=dict)


def load(names: tuple[str, ...] = EXTENSIONS, paths: tuple[str, ...] = EXTENSION_PATHS) -> Loaded:
    """Import the extensions; an ``ExtensionError`` line when one cannot be used."""
    base = Path(__file__).resolve().parent.parent
    for entry in reversed(paths):
        found = (base / entry).resolve()
        if found.is_dir() and str(found) not in sys.path:
            sys.path.insert(0, str(found))
    loaded = Loaded()
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # anything the module raises: one line, the gateway stops
            raise ExtensionError(
                f"extension {name} cannot be imported ({type(exc).__name__}: {exc}); install it "
                "or put its directory on PYTHONPATH"
            ) from None
        loaded.modules += (module,)
        router = getattr(module, "router", None)
        if router is not None:
            _check_router(name, router)
            loaded.routers += (router,)
        _hooks(name, module, "before_write", WRITE_OPERATIONS, loaded.before_write)
        _hooks(name, module, "after_read", READ_OPERATIONS, loaded.after_read)
    return loaded


#: Paths of the gateway's own that an extension's router may not take.
RESERVED = (
    "/api/",
    "/docs",
    "/openapi.json",
    "/health",
    "/metrics",
    "/sse/",
    "/datastar/",
    "/demo/live/",
    "/static/datastar.js",
)


def _check_router(name: str, router: Any) -> None:
    routes = getattr(router, "routes", None)
    if not isinstance(routes, list):
        raise ExtensionError(f"extension {name}: router is not a FastAPI APIRouter")
    for route in routes:
        path = str(getattr(route, "path", ""))
        if any(path == r.rstrip("/") or path.startswith(r) for r in RESERVED):
            raise ExtensionError(
                f"extension {name}: route {path} is reserved (extensions live outside /api/)"
            )


def _hooks(
    name: str,
    module: ModuleType,
    attribute: str,
    operations: tuple[str, ...],
    into: dict[tuple[str, str], list[Any]],
) -> None:
    table = getattr(module, attribute, None)
    if table is None:
        return
    if not isinstance(table, dict):
        raise ExtensionError(f"extension {name}: {attribute} must be a dict of hooks")
    for label, hook in table.items():
        collection, _, operation = str(label).partition(":")
        spec = BY_NAME.get(collection)
        if spec is None or operation not in (*operations, "*") or not callable(hook):
            raise ExtensionError(
                f"extension {name}: {attribute} key {label!r} is not '<collection>:<"
                f"{'|'.join(operations)}|*>' of an exposed collection with a function"
            )
        for op in operations if operation == "*" else (operation,):
            into.setdefault((spec.name, op), []).append(hook)
