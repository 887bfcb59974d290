"""Which PocketBase endpoint a request is for: method + path → ``Route``, or a 404/405.

Only PocketBase's own paths for exposed collections are routes; anything else is answered
here and never reaches PocketBase. Collections may be named by name or id, as in PocketBase.
An operation ``hapta.yaml`` leaves out for a collection (``collections: <name>: operations``)
is a 405 with ``Allow``, also before PocketBase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .catalog import BY_NAME
from .errors import NOT_ALLOWED, NOT_FOUND, ApiError
from .spec import CollectionSpec

#: POST endpoints of auth collections (``GET auth-methods`` is separate).
AUTH_ACTIONS = frozenset(
    {
        "auth-with-password",
        "auth-refresh",
        "auth-with-otp",
        "request-otp",
        "auth-with-oauth2",
        "request-password-reset",
        "confirm-password-reset",
        "request-verification",
        "confirm-verification",
        "request-email-change",
        "confirm-email-change",
    }
)
MISSING_COLLECTION = "Missing collection context."
MISSING_FILE_COLLECTION = "Missing or invalid collection context."
MISSING_AUTH_COLLECTION = "Missing or invalid auth collection context."
_READ = ("GET", "HEAD", "OPTIONS")
_ENCODED_SEPARATOR = re.compile(rb"%(2[fFeE]|5[cC])")
#: A record id in a stream path (``/sse/<collection>/<id>``): it becomes part of a PocketBase
#: topic, so nothing that topic syntax reads (``?options=``, ``#``, ``/``) may come with it.
_STREAM_RECORD_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


@dataclass(frozen=True, slots=True)
class Route:
    """A recognised endpoint. ``name`` labels metrics and logs (``records.list``...)."""

    name: str
    collection: CollectionSpec | None = None
    record_id: str = ""


HEALTH = Route("health")
#: A request to an extension's router (served outside ``/api/``: ``extapp``).
EXTENSION = Route("extension")
BATCH = Route("batch")
FILE_TOKEN = Route("files.token")
REALTIME_CONNECT = Route("realtime.connect")
REALTIME_SUBSCRIBE = Route("realtime.subscribe")
#: The gateway's own endpoint (rolling sessions; see ``layers.session``), never PocketBase's.
LOGOUT = Route("hapta.logout")
#: The gateway's own streams outside ``/api`` (``layers.sse``): the route names; a matched one
#: carries its collection (and record id).
SSE_TICKET = Route("sse.ticket")
SSE_LIST = Route("sse.list")
SSE_VIEW = Route("sse.view")
DATASTAR_LIST = Route("datastar.list")
#: Path prefixes of those streams (``app`` sends them through the chain too).
STREAM_PREFIXES = ("/sse/", "/datastar/")


#: Routes already matched, by (method, path): a cache hit is cheap enough that matching again
#: showed. Bounded in entries and in path length (a client chooses both); emptied when full.
_MATCHED: dict[tuple[str, str], Route] = {}
_MATCHED_SIZE = 4096
_MATCHED_LENGTH = 512


def match(method: str, path: str) -> Route:
    """The route for ``method path`` (``path`` starts with ``/api/``, or is one of the
    gateway's streams, ``STREAM_PREFIXES``); raises ``ApiError``."""
    key = (method, path)
    route = _MATCHED.get(key)
    if route is None:
        route = _match(method, path)
        if len(path) <= _MATCHED_LENGTH:
            if len(_MATCHED) >= _MATCHED_SIZE:
                _MATCHED.clear()
            _MATCHED[key] = route
    return route


def _match(method: str, path: str) -> Route:
    if not path.startswith("/api/"):
        return _stream_route(method, path)
    parts = path[5:].split("/")
    if "." in parts or ".." in parts:  # never let PocketBase resolve dot-segments for us
        raise ApiError(404, NOT_FOUND)
    n = len(parts)
    head = parts[0]
    if head == "collections" and n >= 3:
        spec = _collection(parts[1], MISSING_COLLECTION)
        kind = parts[2]
        if kind == "records":
            if n == 3:
                return _allow(
                    method,
                    ("GET", "POST"),
                    Route("records.list" if method in _READ else "records.create", spec),
                )
            if n == 4 and parts[3]:
                name = {"PATCH": "records.update", "DELETE": "records.delete"}.get(
                    method, "records.view"
                )
                return _allow(method, ("GET", "PATCH", "DELETE"), Route(name, spec, parts[3]))
            raise ApiError(404, NOT_FOUND)
        if spec.kind != "auth":
            raise ApiError(404, MISSING_AUTH_COLLECTION)
        if n == 3 and kind == "auth-methods":
            return _allow(method, ("GET",), Route("auth.methods", spec))
        if n == 3 and kind in AUTH_ACTIONS:
            return _allow(method, ("POST",), Route("auth." + kind, spec))
        if n == 4 and kind == "impersonate" and parts[3]:
            return _allow(method, ("POST",), Route("auth.impersonate", spec, parts[3]))
        raise ApiError(404, NOT_FOUND)
    if head == "files":
        if n == 2 and parts[1] == "token":
            return _allow(method, ("POST",), FILE_TOKEN)
        if n == 4 and all(parts[1:]):
            spec = _collection(parts[1], MISSING_FILE_COLLECTION)
            return _allow(method, ("GET",), Route("files.download", spec, parts[2]))
        raise ApiError(404, NOT_FOUND)
    if n == 1 and head == "health":
        return _allow(method, ("GET",), HEALTH)
    if n == 1 and head == "batch":
        return _allow(method, ("POST",), BATCH)
    if n == 2 and head == "hapta" and parts[1] == "logout":
        return _allow(method, ("POST",), LOGOUT)
    if n == 1 and head == "realtime":
        return _allow(
            method, ("GET", "POST"), REALTIME_SUBSCRIBE if method == "POST" else REALTIME_CONNECT
        )
    raise ApiError(404, NOT_FOUND)


def _stream_route(method: str, path: str) -> Route:
    """``POST /sse/ticket``, ``GET /sse/<collection>[/<id>]``, ``GET /datastar/<collection>``."""
    parts = path.split("/")[1:]
    if "." in parts or ".." in parts or not all(parts):
        raise ApiError(404, NOT_FOUND)
    head, n = parts[0], len(parts)
    if head == "sse" and n == 2 and parts[1] == "ticket" and method == "POST":
        return SSE_TICKET
    if head == "sse" and n in (2, 3):
        spec = _collection(parts[1], MISSING_COLLECTION)
        if n == 3:
            if not _STREAM_RECORD_ID.fullmatch(parts[2]):
                raise ApiError(404, NOT_FOUND)
            return _allow(method, ("GET",), Route(SSE_VIEW.name, spec, parts[2]))
        return _allow(method, ("GET",), Route(SSE_LIST.name, spec))
    if head == "datastar" and n == 2:
        return _allow(
            method, ("GET",), Route(DATASTAR_LIST.name, _collection(parts[1], MISSING_COLLECTION))
        )
    raise ApiError(404, NOT_FOUND)


def check_raw_path(raw_path: bytes | None) -> None:
    """404 for a path with an encoded ``/``, ``.`` or ``\\``: the server decodes it before
    ``match`` sees the path, PocketBase's router would not split on it; never read it twice."""
    if raw_path and b"%" in raw_path and _ENCODED_SEPARATOR.search(raw_path):
        raise ApiError(404, NOT_FOUND)


def _collection(key: str, missing: str) -> CollectionSpec:
    spec = BY_NAME.get(key)
    if spec is None:  # unknown or not exposed: the same answer, and PocketBase never asked
        raise ApiError(404, missing)
    return spec


def _allow(method: str, methods: tuple[str, ...], route: Route) -> Route:
    if method in methods or method == "OPTIONS" or (method == "HEAD" and "GET" in methods):
        spec = route.collection
        if spec is not None and method != "OPTIONS":
            operation = _OPERATIONS.get(route.name, route.name.partition(".")[0])
            if operation in _CHECKED and operation not in spec.operations:
                raise not_allowed(spec, route)
        return route
    raise ApiError(404, NOT_FOUND)  # PocketBase answers a wrong method like a wrong path


#: Route names → the operation ``hapta.yaml``'s ``collections: <name>: operations`` names
#: (``auth.*``: ``auth``); a route of another kind is not checked here.
_OPERATIONS = {
    "records.list": "list",
    "records.view": "view",
    "records.create": "create",
    "records.update": "update",
    "records.delete": "delete",
    "files.download": "file",
    "sse.list": "realtime",
    "sse.view": "realtime",
    "datastar.list": "realtime",
}
_CHECKED = frozenset({*_OPERATIONS.values(), "auth"})
#: The methods of a records path, by operation (for a 405's ``Allow``).
_METHODS = {"list": "GET", "create": "POST", "view": "GET", "update": "PATCH", "delete": "DELETE"}


def not_allowed(spec: CollectionSpec, route: Route) -> ApiError:
    """The 405 for ``route``, with ``Allow`` naming what the path does serve."""
    ops: tuple[str, ...]
    if route.name in ("records.list", "records.create"):
        ops = ("list", "create")
    elif route.name.startswith("records."):
        ops = ("view", "update", "delete")
    else:
        ops = ()
    allow = ", ".join(_METHODS[op] for op in ops if op in spec.operations)
    return ApiError(405, NOT_ALLOWED, headers=[(b"allow", allow.encode())])
