"""Checks the query and reads and checks the body before PocketBase is touched; the body to
forward goes into the request's state (bytes, or a spooled multipart upload that is closed when
the request is over)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

from ..asgi import ASGIApp, Receive, Scope, Send, chunks, header, read_body, state
from ..errors import BAD_REQUEST, ApiError, invalid
from ..files import MultipartReader, boundary_of, multipart_fields, upload_limit
from ..realtime import check_subscribe
from ..routing import BATCH, REALTIME_SUBSCRIBE, Route
from ..upstream import Body, FileBody
from ..validation import (
    check_batch_requests,
    check_data,
    check_json_body,
    check_query,
    form_data,
    required_files,
)

_BODY_ROUTES = frozenset({"records.create", "records.update"})
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class Validate:
    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = state(scope)
        route = st.route
        assert route is not None
        if scope["query_string"]:
            check_query(route.name, route.collection, scope["query_string"])
        if scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        body = st.body = await self._body(route, scope, receive)
        try:
            await self.app(scope, receive, send)
        finally:
            if isinstance(body, FileBody):
                body.file.close()

    async def _body(self, route: Route, scope: Scope, receive: Receive) -> bytes | Body:
        """The body to forward, read and checked; multipart arrives as a spooled file."""
        content_type = header(scope, b"content-type") or b""
        spec = route.collection
        if route.name in _BODY_ROUTES and spec is not None:
            boundary = boundary_of(content_type)
            if boundary is not None:
                return await self._multipart(route, receive, boundary)
        raw = await read_body(receive, self.max_body_size)
        if route.name in _BODY_ROUTES and spec is not None:
            if content_type.startswith(b"application/x-www-form-urlencoded"):
                pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
                data = form_data(spec, pairs)
                check_data(route.name, spec, data)
                required_files(route.name, spec, data.keys())
            else:
                check_json_body(route.name, spec, raw)
                if route.name == "records.create":
                    required_files(route.name, spec, _json_keys(raw))
        elif route is BATCH:
            _check_batch(raw, content_type)
        elif route is REALTIME_SUBSCRIBE:
            check_subscribe(raw, content_type)
        return raw

    async def _multipart(self, route: Route, receive: Receive, boundary: bytes) -> Body:
        spec = route.collection
        assert spec is not None
        reader = MultipartReader(
            boundary,
            spec,
            route.name,
            limit=upload_limit(spec, self.max_body_size),
            text_limit=self.max_body_size,
        )
        try:
            async for chunk in chunks(receive):
                reader.feed(chunk)
            parsed = reader.finish()
            data = form_data(spec, parsed.fields)
            check_data(route.name, spec, data)
            required_files(
                route.name,
                spec,
                {*data.keys(), *(u.key.strip("+") for u in parsed.uploads)},
            )
        except BaseException:
            reader.body.close()
            raise
        return FileBody(parsed.spool, parsed.length)


def _json_keys(raw: bytes) -> set[str]:
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return set()
    return set(data) if isinstance(data, dict) else set()


def _check_batch(raw: bytes, content_type: bytes) -> None:
    """Each sub-request of ``/api/batch`` must be a record write to an exposed collection with
    a valid body; failures use PocketBase's batch envelope (``data.requests.<i>``)."""
    if boundary_of(content_type) is not None:
        payload = _multipart_json_payload(raw, content_type)
    else:
        try:
            payload = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise ApiError(400, BAD_REQUEST) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise invalid(
            "Batch transaction failed.",
            "requests",
            "validation_required",
            "Cannot be blank.",
        )
    check_batch_requests(payload["requests"])


def _multipart_json_payload(raw: bytes, content_type: bytes) -> object:
    boundary = boundary_of(content_type)
    assert boundary is not None
    for name, value in multipart_fields(raw, boundary):
        if name == "@jsonPayload":
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ApiError(400, BAD_REQUEST) from None
    return {}
