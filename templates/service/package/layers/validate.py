"""Checks the query and reads and checks the body, exactly as PocketBase will read them
(``bodies``, ``gorequest``), before PocketBase is touched; the body to forward goes into the
request's state (bytes, or a spooled multipart upload, closed when the request is over).
Checks of large bodies run in a worker process (``offload``), so they stall no other request."""

from __future__ import annotations

from ..asgi import ASGIApp, Receive, Scope, Send, chunks, header, read_body, state
from ..bodies import check_body, multipart_record, streams_multipart
from ..files import MultipartReader, upload_limit
from ..gorequest import multipart_boundary
from ..offload import run_checked
from ..routing import Route
from ..upstream import Body, FileBody
from ..validation import check_query

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
        """The body to forward, read and checked; a multipart record write streams into a
        spooled file, checked part by part as it arrives."""
        st = state(scope)
        content_type = header(scope, b"content-type") or b""
        if streams_multipart(route, content_type):
            return await self._multipart(route, scope, receive, multipart_boundary(content_type))
        raw = await read_body(receive, self.max_body_size)
        collection = route.collection.name if route.collection is not None else None
        operations = await run_checked(
            check_body,
            route.name,
            collection,
            content_type,
            raw,
            scope["query_string"],
            size=len(raw),
        )
        if operations and st.charge is not None:
            await st.charge(operations)  # each item counts, as PocketBase counts it
        return raw

    async def _multipart(
        self, route: Route, scope: Scope, receive: Receive, boundary: bytes
    ) -> Body:
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
            await run_checked(
                multipart_record,
                route.name,
                spec.name,
                parsed.fields,
                [u.key for u in parsed.uploads],
                scope["query_string"],
                size=parsed.length - sum(u.size for u in parsed.uploads),
            )
        except BaseException:
            reader.body.close()
            raise
        return FileBody(reader.body.spool, reader.body.length)
