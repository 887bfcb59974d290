"""The parts of the OpenAPI document every gateway has: the error envelope and other shared
objects, and the health, batch, file and realtime endpoints (and, with ``sessions: rolling``,
the gateway's logout).
"""

from __future__ import annotations

from typing import Any

from ..ir.model import CollectionIR, SchemaIR
from .paths import (
    NO_CONTENT,
    OPTIONAL_AUTH,
    REQUIRED_AUTH,
    UPSTREAM,
    error_responses,
    json_response,
    operation,
    rule_words,
)
from .schemas import JsonSchema, event_name, has_files, obj, ref
from .streams import reset_schema, stream_paths

#: Shared tags; renamed when a collection already has the name.
SHARED_TAGS: dict[str, str] = {
    "files": "Files: downloads, thumbnails and file tokens.",
    "realtime": "Realtime: PocketBase's server-sent events and subscriptions.",
    "batch": "Batch: several record writes in one transaction.",
    "health": "Health of the gateway and of PocketBase.",
    "streams": "Streams: the gateway's typed server-sent events and Datastar streams per collection.",
}

SESSIONS_TAG = "Sessions: the gateway's rolling session keys."


def shared_tags(ir: SchemaIR) -> dict[str, str]:
    """``SHARED_TAGS``, with ``sessions`` when the gateway issues rolling session keys."""
    return SHARED_TAGS | ({"sessions": SESSIONS_TAG} if ir.sessions == "rolling" else {})


def shared_tag_names(ir: SchemaIR) -> dict[str, str]:
    taken = {c.name.lower() for c in ir.collections}
    return {key: key if key not in taken else f"{key} (api)" for key in shared_tags(ir)}


# ---------------------------------------------------------------------------------------------
# shared objects


def shared_schemas(ir: SchemaIR) -> dict[str, JsonSchema]:
    """Schemas every gateway has (``Error``...), plus those its collections need."""
    out: dict[str, JsonSchema] = {
        "Error": {
            "type": "object",
            "description": "PocketBase's error envelope; validation errors are keyed by field in `data`.",
            "properties": {
                "status": {"type": "integer"},
                "message": {"type": "string"},
                "data": {"type": "object", "additionalProperties": ref("ErrorDetail")},
            },
            "required": ["status", "message", "data"],
            "examples": [
                {
                    "status": 400,
                    "message": "Failed to create record.",
                    "data": {
                        "title": {"code": "validation_required", "message": "Cannot be blank."}
                    },
                }
            ],
        },
        "ErrorDetail": {
            "type": "object",
            "description": "Why one field was refused (`params` holds the limit, when there is one).",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "params": {"type": "object"},
            },
        },
    }
    if any(f.type == "geoPoint" for c in ir.collections for f in c.fields):
        out["GeoPoint"] = {
            "type": "object",
            "description": "A geo point; `{lon: 0, lat: 0}` when unset.",
            "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}},
        }
        out["GeoPointInput"] = {
            "type": "object",
            "properties": {
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
            },
            "required": ["lon", "lat"],
            "additionalProperties": False,
        }
    return out | _api_schemas()


_STR: JsonSchema = {"type": "string"}


def _api_schemas() -> dict[str, JsonSchema]:
    return {
        "HealthResponse": obj(
            "PocketBase's health answer.",
            {"code": {"type": "integer"}, "message": _STR, "data": {"type": "object"}},
            ("code", "message"),
        ),
        "BatchRequest": obj(
            "Record writes run in one transaction (all or nothing); batch must be enabled in "
            "PocketBase's settings.",
            {
                "requests": {
                    "type": "array",
                    "items": obj(
                        "One record write: POST / PATCH / DELETE, or PUT (upsert by `body.id`).",
                        {
                            "method": {
                                "type": "string",
                                "enum": ["POST", "PATCH", "DELETE", "PUT"],
                            },
                            "url": {
                                "type": "string",
                                "description": "`/api/collections/{collection}/records[/{id}][?expand=&fields=]`",
                            },
                            "headers": {"type": "object", "additionalProperties": _STR},
                            "body": {"type": "object"},
                        },
                        ("method", "url"),
                    ),
                }
            },
            ("requests",),
        ),
        "BatchResult": obj(
            "The answer to one request of the batch, in order.",
            {"status": {"type": "integer"}, "body": {}, "headers": {"type": "object"}},
            ("status",),
        ),
        "FileToken": obj(
            "A short-lived file token (`?token=` of protected file downloads).",
            {"token": _STR},
            ("token",),
        ),
        "StreamReset": reset_schema(),
        "RealtimeConnect": obj(
            "The `data` of the first event (`PB_CONNECT`) of a realtime stream.",
            {"clientId": _STR},
            ("clientId",),
        ),
        "RealtimeSubscribe": obj(
            "Replaces the client's subscriptions (an empty list unsubscribes from everything).",
            {
                "clientId": {**_STR, "description": "From the `PB_CONNECT` event."},
                "subscriptions": {
                    "type": "array",
                    "maxItems": 1000,
                    "items": {"type": "string", "maxLength": 2500},
                    "description": "Topics: `<collection>/*`, `<collection>/<recordId>`, each "
                    "optionally with `?options=<urlencoded {query, headers}>`.",
                },
            },
            ("clientId",),
        ),
    }


# ---------------------------------------------------------------------------------------------
# shared endpoints


def shared_paths(ir: SchemaIR) -> dict[str, Any]:
    tags = shared_tag_names(ir)
    out: dict[str, Any] = {
        "/api/health": {
            "get": operation(
                "healthCheck",
                tags["health"],
                "Health check",
                "Public.",
                {
                    "200": json_response(ref("HealthResponse"), "Healthy."),
                    **error_responses(*UPSTREAM),
                },
            )
        },
        "/api/batch": {
            "post": operation(
                "batch",
                tags["batch"],
                "Run several record writes in one transaction",
                "Each request is checked like the single call (same rules, same validation); one "
                "failure rolls back all. Batch must be enabled in PocketBase's settings (else 403).",
                {
                    "200": json_response(
                        {"type": "array", "items": ref("BatchResult")}, "One result per request."
                    ),
                    **error_responses("400", "403", *UPSTREAM),
                },
                security=OPTIONAL_AUTH,
                body={
                    "required": True,
                    "content": {"application/json": {"schema": ref("BatchRequest")}},
                },
            )
        },
    }
    file_collections = [c for c in ir.collections if has_files(c)]
    if file_collections:
        out |= _file_paths(file_collections, tags["files"])
    out |= _realtime_paths(ir, tags["realtime"])
    out |= stream_paths(ir, tags["streams"])
    if ir.sessions == "rolling":
        out |= _logout_path(tags["sessions"])
    return out


def _logout_path(tag: str) -> dict[str, Any]:
    return {
        "/api/hapta/logout": {
            "post": operation(
                "logout",
                tag,
                "Log out (revoke the session)",
                "The gateway's own endpoint (PocketBase has none). With rolling sessions every "
                "`auth-with-*` call answers a session key of the gateway's in `token` (PocketBase's "
                "token stays on the server); the key changes on every `auth-refresh`. This revokes "
                "the caller's session: its current key and every earlier one are refused from now "
                "on, on every node.",
                {"204": NO_CONTENT, **error_responses("401", "429")},
                security=REQUIRED_AUTH,
            )
        }
    }


def _file_paths(collections: list[CollectionIR], tag: str) -> dict[str, Any]:
    thumbs = sorted({t for c in collections for f in c.fields if f.file for t in f.file.thumbs})
    sizes = ", ".join(f"`{t}`" for t in thumbs) or "none"
    rules = "; ".join(f"`{c.name}`: {rule_words(c.rules.view)}" for c in collections)
    path_params = [
        {
            "name": "collection",
            "in": "path",
            "required": True,
            "description": "Collection name.",
            "schema": {"type": "string", "enum": [c.name for c in collections]},
        },
        {
            "name": "recordId",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        },
        {
            "name": "filename",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        },
    ]
    query = [
        {
            "name": "thumb",
            "in": "query",
            "required": False,
            "description": f"Thumbnail size of an image (`WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0`). "
            f"Sizes the schema defines: {sizes}; others answer the original.",
            "schema": {"type": "string", "pattern": r"^\d+x\d+[tbf]?$"},
        },
        {
            "name": "download",
            "in": "query",
            "required": False,
            "description": "Send as an attachment.",
            "schema": {"type": "boolean"},
        },
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "A file token (`POST /api/files/token`), needed for protected files.",
            "schema": {"type": "string"},
        },
    ]
    file_bytes = {"schema": {"type": "string", "format": "binary"}}
    binary = {
        "description": "The file (or its thumbnail), with PocketBase's caching headers. Its "
        "`Content-Type` is the file's own (`image/png`...; `application/octet-stream` when "
        "unknown): any type, hence `*/*`, after the concrete one client generators read as bytes.",
        "headers": {
            "Content-Disposition": {"schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
        "content": {"application/octet-stream": file_bytes, "*/*": file_bytes},
    }
    return {
        "/api/files/token": {
            "post": operation(
                "fileToken",
                tag,
                "Get a file token",
                "Signed-in callers only. The token lets protected files be downloaded for about "
                "3 minutes, within the collection's view rule.",
                {
                    "200": json_response(ref("FileToken"), "The file token."),
                    **error_responses("400", "401", *UPSTREAM),
                },
                security=REQUIRED_AUTH,
            )
        },
        "/api/files/{collection}/{recordId}/{filename}": {
            "get": operation(
                "getFile",
                tag,
                "Download a file",
                "Served to callers who may view the record; protected files need `?token=` (the "
                f"`Authorization` header does not count). Rule (the collection's `viewRule`): {rules}.",
                {"200": binary, **error_responses("400", "404", *UPSTREAM)},
                parameters=path_params + query,
            )
        },
    }


def _realtime_paths(ir: SchemaIR, tag: str) -> dict[str, Any]:
    live = [c for c in ir.collections if c.type != "view"]
    topics = ", ".join(f"`{c.sse_topic}`" for c in live) or "none"
    events = [ref("RealtimeConnect"), *(ref(event_name(c)) for c in live)]
    stream = {
        "type": "string",
        "description": "Server-sent events: `id:<clientId>`, `event:<topic>`, `data:<JSON>`. The "
        "first event is `PB_CONNECT` with `{clientId}`; then one event per record change of the "
        "subscribed topics, with `{action, record}` (see `x-event-data`).",
    }
    example = (
        "id:mM0Sr2SRyBtjFSfVqiy15guRjRSYqTbaPaKzgG6A\nevent:PB_CONNECT\n"
        'data:{"clientId":"mM0Sr2SRyBtjFSfVqiy15guRjRSYqTbaPaKzgG6A"}\n\n'
    )
    return {
        "/api/realtime": {
            "get": operation(
                "realtimeConnect",
                tag,
                "Open the realtime event stream",
                f"Then subscribe with `POST /api/realtime`. Topics: {topics} and `<collection>/<id>`; "
                "each event is sent only if the subscriber passes the collection's list rule (`/*`) or "
                "view rule (`/<id>`). View collections send no events.",
                {
                    "200": {
                        "description": "The event stream.",
                        "content": {
                            "text/event-stream": {
                                "schema": stream,
                                "example": example,
                                "x-event-data": {"oneOf": events},
                            }
                        },
                    },
                    **error_responses(*UPSTREAM),
                },
            ),
            "post": operation(
                "realtimeSubscribe",
                tag,
                "Set the subscriptions of a realtime client",
                "Replaces every subscription of `clientId`; the caller's token decides which events "
                "it will receive. Send it from the client IP that opened the stream. A topic for a "
                "collection not listed here (or whose `?options=` expands or filters into one) is "
                "refused with 400 before PocketBase sees it.",
                {"204": NO_CONTENT, **error_responses("400", "403", "404", *UPSTREAM)},
                security=OPTIONAL_AUTH,
                body={
                    "required": True,
                    "content": {"application/json": {"schema": ref("RealtimeSubscribe")}},
                },
            ),
        }
    }
