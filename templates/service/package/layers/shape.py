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

from ..asgi import ASGIApp, Receive, Scope, Send, state
from ..catalog import BY_NAME, COLLECTIONS
from ..reshape import Reshape
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
            sent = st.body

            async def change(data: Any) -> Any:
                return _batch(data, sent)

        elif (
            spec is not None
            and spec.name in REACHING
            and (route.name in _SHAPED or route.name.startswith("auth."))
        ):
            read, listing = spec, route.name == "records.list"

            async def change(data: Any) -> Any:
                return _answer(read, data, listing)

        else:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, Reshape(send, change, True))


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
