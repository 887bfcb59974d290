"""Runs the extensions' hooks (``extensions``): ``before_write`` on a JSON record write (and on
each item of a JSON ``/api/batch``) before the gateway checks the body, ``after_read`` on a
``200`` list page or record before the caller gets it. In the chain only when an extension has
hooks; before the session layer, so a hook's ``ctx.pocketbase`` acts with the caller's own key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..asgi import ASGIApp, Message, Receive, Scope, Send, header, read_body, state
from ..errors import BAD_REQUEST, ApiError
from ..extensions import AfterRead, Context, Loaded
from ..gorequest import JSON, body_kind
from ..reshape import Change, Reshape
from ..routing import BATCH
from ..spec import CollectionSpec

UNSUPPORTED = "Unsupported Content-Type."
_WRITES = {"records.create": "create", "records.update": "update"}
_READS = {"records.list": "list", "records.view": "view"}
_BATCH_METHODS = {"POST": "create", "PATCH": "update"}
#: A batch write a hook could not see whole: PocketBase merges the item's URL query into its
#: fields, and an upsert (``PUT``) may create or update.
HOOKED_BATCH_ITEM = (
    "A batch write to a collection with write hooks must be POST or PATCH, with its fields in "
    "the body only."
)


@dataclass
class HookTable:
    """The hooks, and how a hook's ``Context`` is made for a request."""

    loaded: Loaded
    context: Callable[[Scope, str, str, str], Context]
    max_body_size: int

    @property
    def any(self) -> bool:
        return bool(self.loaded.before_write or self.loaded.after_read)


class Hooked:
    def __init__(self, app: ASGIApp, hooks: HookTable) -> None:
        self.app = app
        self.hooks = hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = state(scope).route
        assert route is not None
        spec = route.collection
        loaded = self.hooks.loaded
        if spec is not None and route.name in _WRITES:
            hooks = loaded.before_write.get((spec.name, _WRITES[route.name]))
            if hooks:
                body = await self._read_json(scope, receive)
                ctx = self.hooks.context(scope, spec.name, _WRITES[route.name], route.record_id)
                for hook in hooks:
                    body = await hook(ctx, body)
                await self.app(*_replaced(scope, orjson.dumps(body)), send)
                return
        elif route is BATCH and scope["method"] == "POST" and loaded.before_write:
            raw = await self._batch(scope, receive)
            await self.app(*_replaced(scope, raw), send)
            return
        elif spec is not None and route.name in _READS and scope["method"] == "GET":
            read_hooks = loaded.after_read.get((spec.name, _READS[route.name]))
            if read_hooks:
                ctx = self.hooks.context(scope, spec.name, _READS[route.name], route.record_id)
                await self.app(scope, receive, Reshape(send, _after_read(ctx, read_hooks), False))
                return
        await self.app(scope, receive, send)

    async def _read_json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        raw = await read_body(receive, self.hooks.max_body_size)
        if not raw.strip():
            return {}
        if body_kind(header(scope, b"content-type") or b"") != JSON:
            raise ApiError(400, UNSUPPORTED)  # hooks see JSON bodies only: nothing slips past
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, BAD_REQUEST) from None
        if not isinstance(data, dict):
            raise ApiError(400, BAD_REQUEST)
        return data

    async def _batch(self, scope: Scope, receive: Receive) -> bytes:
        data = await self._read_json(scope, receive)
        requests = data.get("requests")
        if not isinstance(requests, list):
            return orjson.dumps(data)  # the gateway's check answers it
        for item in requests:
            if not isinstance(item, dict):
                continue
            method = str(item.get("method", "")).upper()
            url = str(item.get("url", ""))
            spec, record_id = _batch_target(url)
            if spec is None or not any(c == spec.name for c, _ in self.hooks.loaded.before_write):
                continue
            operation = _BATCH_METHODS.get(method)
            if method == "PUT" or ("?" in url and operation):
                raise ApiError(400, HOOKED_BATCH_ITEM)
            hooks = self.hooks.loaded.before_write.get((spec.name, operation or ""))
            if not hooks:
                continue
            body = item.get("body")
            body = dict(body) if isinstance(body, dict) else {}
            ctx = self.hooks.context(scope, spec.name, operation or "", record_id)
            for hook in hooks:
                body = await hook(ctx, body)
            item["body"] = body
        return orjson.dumps(data)


def _batch_target(url: str) -> tuple[CollectionSpec | None, str]:
    from ..catalog import BY_NAME

    parts = url.partition("?")[0].split("/")  # /api/collections/<name>/records[/<id>]
    if len(parts) < 5 or parts[1:3] != ["api", "collections"] or parts[4] != "records":
        return None, ""
    return BY_NAME.get(parts[3]), parts[5] if len(parts) > 5 else ""


def _replaced(scope: Scope, body: bytes) -> tuple[Scope, Receive]:
    """The request with ``body`` in place of the one read (as JSON, its length recomputed)."""
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type")]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    given = False

    async def receive() -> Message:
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return {**scope, "headers": headers}, receive


def _after_read(ctx: Context, hooks: list[AfterRead]) -> Change:
    """The ``after_read`` hooks, one after the other, as one change of the answer."""

    async def change(data: Any) -> Any:
        for hook in hooks:
            data = await hook(ctx, data)
        return data

    return change
