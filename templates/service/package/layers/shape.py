"""Withholds the fields ``hapta.yaml`` hides (``collections: <name>: hidden``) from PocketBase's
answers: records, lists, auth answers (``record``), batch results, and every record inside
``expand``, however deep. In the chain only when some collection hides a field.

It sits inside the cache layer, so what is cached is already without them. An answer that can
hold a record of such a collection (directly or through an ``expand`` path) is read whole,
decoded, stripped and re-encoded; any other answer passes as it comes.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..asgi import ASGIApp, Message, Receive, Scope, Send, state
from ..catalog import BY_NAME, COLLECTIONS
from ..errors import UPSTREAM_DOWN, ApiError
from ..routing import BATCH
from ..spec import CollectionSpec

_SHAPED = frozenset({"records.list", "records.view", "records.create", "records.update"})


def _reaching() -> frozenset[str]:
    """Collections whose answers can hold a hidden field: their own, or through ``expand``."""
    found = {c.name for c in COLLECTIONS if c.hidden}
    changed = True
    while changed:
        changed = False
        for spec in COLLECTIONS:
            if spec.name not in found and any(e.target in found for e in spec.expands):
                found.add(spec.name)
                changed = True
    return frozenset(found)


#: Collections whose answers are stripped.
REACHING = _reaching()
ANY_HIDDEN = bool(REACHING)


class Shape:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        route = st.route
        assert route is not None
        spec = route.collection
        if route is BATCH:
            await self.app(scope, receive, _Buffer(send, lambda data: _batch(data, st.body)))
        elif (
            spec is not None
            and spec.name in REACHING
            and (route.name in _SHAPED or route.name.startswith("auth."))
        ):
            listing = route.name == "records.list"
            await self.app(scope, receive, _Buffer(send, lambda data: _answer(spec, data, listing)))
        else:
            await self.app(scope, receive, send)


class _Buffer:
    """Holds a ``200`` JSON answer until its last piece, then sends it reshaped."""

    __slots__ = ("change", "parts", "send", "start")

    def __init__(self, send: Send, change: Any) -> None:
        self.send = send
        self.change = change
        self.start: Message | None = None
        self.parts: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] == 200:
                self.start = message
                return
            await self.send(message)
            return
        if self.start is None:
            await self.send(message)
            return
        self.parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(self.parts)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ApiError(502, UPSTREAM_DOWN) from None  # never pass on what cannot be checked
        body = orjson.dumps(self.change(data))
        headers = [(k, v) for k, v in self.start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def strip(spec: CollectionSpec, record: Any) -> None:
    """Drop ``spec``'s hidden fields from ``record`` and from every record it expands."""
    if not isinstance(record, dict):
        return
    for name in spec.hidden:
        record.pop(name, None)
    expand = record.get("expand")
    if not isinstance(expand, dict):
        return
    for key, value in expand.items():
        link = spec.expand_by_key.get(key)
        for item in value if isinstance(value, list) else [value]:
            target = _collection_of(item) or (BY_NAME.get(link.target) if link else None)
            if target is not None:
                strip(target, item)
            elif isinstance(item, dict):
                _strip_all(item)


def _collection_of(item: Any) -> CollectionSpec | None:
    if not isinstance(item, dict):
        return None
    key = item.get("collectionName") or item.get("collectionId")
    return BY_NAME.get(key) if isinstance(key, str) else None


def _strip_all(item: dict[str, Any]) -> None:
    """A record whose collection cannot be told: every hidden name of every collection goes."""
    for spec in COLLECTIONS:
        for name in spec.hidden:
            item.pop(name, None)


def _answer(spec: CollectionSpec, data: Any, listing: bool) -> Any:
    if listing and isinstance(data, dict) and isinstance(data.get("items"), list):
        for item in data["items"]:
            strip(spec, item)
    elif isinstance(data, dict) and isinstance(data.get("record"), dict) and "token" in data:
        strip(spec, data["record"])  # an auth answer
    else:
        strip(spec, data)
    return data


def _batch(data: Any, raw: object) -> Any:
    """Each result's ``body`` is a record of the collection its request named."""
    if not isinstance(data, list):
        return data
    urls = _batch_urls(raw)
    for index, result in enumerate(data):
        body = result.get("body") if isinstance(result, dict) else None
        spec = _collection_of(body)
        if spec is None and index < len(urls):
            parts = urls[index].partition("?")[0].split("/")  # /api/collections/<name>/records
            spec = BY_NAME.get(parts[3]) if len(parts) > 3 else None
        if spec is not None:
            strip(spec, body)
        elif isinstance(body, dict):
            _strip_all(body)
    return data


def _batch_urls(raw: object) -> list[str]:
    if not isinstance(raw, bytes):
        return []
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    requests = found.get("requests") if isinstance(found, dict) else None
    if not isinstance(requests, list):
        return []
    return [str(r.get("url", "")) if isinstance(r, dict) else "" for r in requests]
