"""PocketBase's error envelope, ``{"data": {...}, "message": "...", "status": N}``, as bytes.

Every answer the gateway makes itself uses this shape, so SDKs read the gateway's errors the way
they read PocketBase's. ``ApiError`` carries one up the request path to the single place that
sends it.
"""

from __future__ import annotations

from typing import Any

import orjson

NOT_FOUND = "The requested resource wasn't found."
BAD_REQUEST = "Something went wrong while processing your request."
UPSTREAM_DOWN = "PocketBase is unreachable."
UPSTREAM_TIMEOUT = "PocketBase did not answer in time."
BUSY = "The gateway is busy; try again shortly."
TOO_LARGE = "Request entity too large."
#: An operation ``hapta.yaml`` does not expose for the collection (``collections: <name>:``).
NOT_ALLOWED = "The operation is not allowed for this collection."

JSON_HEADERS = [(b"content-type", b"application/json")]


class ApiError(Exception):
    """An answer in PocketBase's envelope; ``data`` maps a field to ``{code, message}``."""

    def __init__(
        self,
        status: int,
        message: str,
        data: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data or {}
        #: Headers of the answer besides the JSON ones (``Retry-After``...).
        self.headers = headers or []

    def body(self) -> bytes:
        return envelope(self.status, self.message, self.data)


def envelope(status: int, message: str, data: dict[str, Any] | None = None) -> bytes:
    """The bytes PocketBase would send: keys sorted, as Go's JSON encoder sorts map keys."""
    return orjson.dumps(
        {"data": data or {}, "message": message, "status": status}, option=orjson.OPT_SORT_KEYS
    )


def field_error(code: str, message: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of ``data``: PocketBase's ``{code, message[, params]}``."""
    entry: dict[str, Any] = {"code": code, "message": message}
    if params:
        entry["params"] = params
    return entry


def invalid(message: str, field: str, code: str, detail: str, **params: Any) -> ApiError:
    """A 400 naming one field (a body key or a query parameter)."""
    return ApiError(400, message, {field: field_error(code, detail, params or None)})
