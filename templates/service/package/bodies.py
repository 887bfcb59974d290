"""How PocketBase decodes a request body by its declared content type, checked before it is
forwarded: record writes, ``/api/batch`` and realtime subscriptions.

The body is read only the way PocketBase will read it (``gorequest``): JSON when declared JSON,
the form (with the URL's query parameters and ``@jsonPayload`` on top) when declared a form;
any other declared type with a body is refused, as is anything two readers could read apart
(duplicate keys, two payloads, a struct key in another case). Failures are ``ApiError`` 400s in
PocketBase's envelope; the bytes forwarded stay the client's.
"""

from __future__ import annotations

from typing import Any

import orjson

from .catalog import BY_NAME
from .errors import BAD_REQUEST, ApiError, invalid
from .gorequest import (
    FORM,
    JSON,
    MULTIPART,
    XML,
    body_kind,
    canonical,
    form_pairs,
    json_body,
    payload,
    url_form_pairs,
)
from .realtime import check_subscribe
from .routing import BATCH, REALTIME_SUBSCRIBE, Route
from .spec import CollectionSpec
from .validation import check_batch_requests, check_data, check_json_body, form_data, required_files

RECORD_WRITES = frozenset({"records.create", "records.update"})
UNSUPPORTED = "Unsupported Content-Type."
BATCH_UNREADABLE = "Failed to read the submitted batch data."
_BATCH_ITEM = ("method", "url", "body", "headers")


def check_body(
    route_name: str, collection: str | None, content_type: bytes, raw: bytes, query: bytes
) -> list[tuple[str, str]]:
    """Raise unless PocketBase's reading of this (in-memory) body passes the gateway's checks;
    a batch's record operations (``check_batch_requests``), else ``[]``.

    The route is given by names, so the check can run in a worker process (``offload``).
    """
    spec = BY_NAME.get(collection) if collection is not None else None
    if route_name in RECORD_WRITES and spec is not None:
        record_body(route_name, spec, content_type, raw, query)
    elif route_name == BATCH.name:
        return batch_payload(raw, content_type, query)
    elif route_name == REALTIME_SUBSCRIBE.name:
        check_subscribe(raw, content_type, query)
    return []


def streams_multipart(route: Route, content_type: bytes) -> bool:
    """Whether the body is a record's multipart upload, read as it streams in (``MultipartReader``)."""
    return (
        route.name in RECORD_WRITES
        and route.collection is not None
        and body_kind(content_type) == MULTIPART
    )


def record_body(
    route_name: str, spec: CollectionSpec, content_type: bytes, raw: bytes, query: bytes
) -> None:
    """A record create/update body (JSON or urlencoded) as PocketBase reads it."""
    if not raw:
        data: dict[str, Any] = {}  # PocketBase binds nothing from an empty body
    else:
        kind = body_kind(content_type)
        if kind == JSON:
            check_json_body(route_name, spec, raw)
            if route_name == "records.create":
                required_files(route_name, spec, _json_keys(raw))
            return
        if kind not in (FORM, MULTIPART):
            # PocketBase cannot bind XML to a record (its 400), nor any other type
            raise ApiError(400, BAD_REQUEST if kind == XML else UNSUPPORTED)
        data = form_data(spec, form_pairs(kind, raw, content_type, query))
    check_data(route_name, spec, data)
    required_files(route_name, spec, data.keys())


def multipart_record(
    route_name: str,
    collection: str,
    fields: list[tuple[str, str]],
    upload_keys: list[str],
    query: bytes,
) -> None:
    """A streamed multipart record body, once its parts are in (``MultipartReader``): the URL's
    query fields, then the text parts' (Go's order), and the file fields uploaded. By names, so
    it can run in a worker process."""
    spec = BY_NAME[collection]
    data = form_data(spec, url_form_pairs(query) + fields)
    check_data(route_name, spec, data)
    required_files(route_name, spec, {*data.keys(), *(key.strip("+") for key in upload_keys)})


def batch_payload(raw: bytes, content_type: bytes, query: bytes) -> list[tuple[str, str]]:
    """``/api/batch``: the requests PocketBase will run, each checked (``check_batch_requests``);
    their operations."""
    kind = body_kind(content_type)
    if not raw:
        found: Any = {}
    elif kind == JSON:
        found = json_body(raw, fold=True, message=BATCH_UNREADABLE)
    elif kind in (FORM, MULTIPART):
        found = payload(form_pairs(kind, raw, content_type, query), fold=True) or {}
    else:
        raise ApiError(400, UNSUPPORTED)
    if not isinstance(found, dict):
        raise ApiError(400, BATCH_UNREADABLE)
    requests = canonical(found, ("requests",), BATCH_UNREADABLE).get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid(
            "Invalid batch request data.", "requests", "validation_required", "Cannot be blank."
        )
    for item in requests:
        canonical(item, _BATCH_ITEM, BATCH_UNREADABLE)
    return check_batch_requests(requests)


def _json_keys(raw: bytes) -> set[str]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return set()
    return set(data) if isinstance(data, dict) else set()
