"""The gateway's own streams in the OpenAPI document: typed SSE per collection
(``/sse/<collection>``, ``/sse/<collection>/<id>``), Datastar streams (``/datastar/<collection>``)
and their tickets (``POST /sse/ticket``). Outside PocketBase's ``/api``: PocketBase has none of
them."""

from __future__ import annotations

from typing import Any

from ..ir.model import CollectionIR, SchemaIR
from .paths import (
    OPTIONAL_AUTH,
    REQUIRED_AUTH,
    UPSTREAM,
    error_responses,
    expand_param,
    json_response,
    operation,
    param,
)
from .schemas import event_name, ref

_TICKET = {
    "name": "ticket",
    "in": "query",
    "required": False,
    "description": "A single-use ticket from `POST /sse/ticket`, for clients that cannot send "
    "`Authorization` (a browser's `EventSource`). Never put a token in a URL.",
    "schema": {"type": "string"},
}
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "The `id` of the last event received (an `EventSource` sends it when it "
    "reconnects): the stream resumes after it while the gateway still holds the events, else "
    "it starts with a `reset` event.",
    "schema": {"type": "string"},
}


def stream_paths(ir: SchemaIR, tag: str) -> dict[str, Any]:
    # what the gateway serves as a stream: not a view (no events), not left out by the
    # collection's operations (a 405), not with hidden fields (refused: events are relayed whole)
    live = [
        c for c in ir.collections if c.type != "view" and "realtime" in c.operations and not c.withheld
    ]
    out: dict[str, Any] = {}
    if not live:
        return out
    out["/sse/ticket"] = {
        "post": operation(
            "sseTicket",
            tag,
            "Get a single-use stream ticket",
            "A ticket standing for the caller's `Authorization`, for one `/sse/...` or "
            "`/datastar/...` URL (`?ticket=`), usable once before `expires` (HAPTA_SSE_TICKET_TTL).",
            {
                "200": json_response(
                    {
                        "type": "object",
                        "properties": {
                            "ticket": {"type": "string"},
                            "expires": {"type": "string", "format": "date-time"},
                        },
                        "required": ["ticket", "expires"],
                    },
                    "The ticket and when it expires.",
                ),
                **error_responses("401", *UPSTREAM),
            },
            security=REQUIRED_AUTH,
        )
    }
    for c in live:
        out |= _collection_streams(c, tag)
    return out


def _collection_streams(c: CollectionIR, tag: str) -> dict[str, Any]:
    prefix = c.class_prefix
    events = {"oneOf": [ref(event_name(c)), ref("StreamReset")]}
    shape = [param("filter"), expand_param(c), param("fields"), _TICKET]
    typed = {
        "200": {
            "description": "Server-sent events `create`, `update`, `delete` (each with an `id:`; "
            "`data:` PocketBase's `{action, record}`, see `x-event-data`), `reset` when the list "
            "must be read again, and `: heartbeat` comment lines.",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "x-event-data": events,
                }
            },
        },
        **error_responses("400", "401", *UPSTREAM),
    }
    rule = f"the collection's {{}} rule, as PocketBase's realtime applies it to `{c.name}`"
    return {
        f"/sse/{c.name}": {
            "get": operation(
                f"sse{prefix}List",
                tag,
                f"Stream `{c.name}` record events",
                "Typed server-sent events for every record change the caller could list "
                f"({rule.format('list')}); `filter`, `expand` and `fields` as on the list.",
                typed,
                security=OPTIONAL_AUTH,
                parameters=[*shape, _LAST_EVENT_ID],
            )
        },
        f"/sse/{c.name}/{{id}}": {
            "get": operation(
                f"sse{prefix}View",
                tag,
                f"Stream one `{c.name}` record's events",
                f"Like `/sse/{c.name}`, for one record ({rule.format('view')}).",
                typed,
                security=OPTIONAL_AUTH,
                parameters=[param("recordId"), *shape, _LAST_EVENT_ID],
            )
        },
        f"/datastar/{c.name}": {
            "get": operation(
                f"datastar{prefix}",
                tag,
                f"Datastar stream of `{c.name}`",
                f"`datastar-patch-elements` events that fill `#{c.name}-records` with the list "
                "(each record rendered by its fragment template) and then add, morph or remove "
                "one record element per change; `datastar-patch-signals` with "
                f"`{{\"{c.name}\": {{\"count\": n}}}}`.",
                {
                    "200": {
                        "description": "Datastar server-sent events.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **error_responses("400", "401", *UPSTREAM),
                },
                security=OPTIONAL_AUTH,
                parameters=shape,
            )
        },
    }


def reset_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The `data` of a `reset` event: events may have been missed; read the "
        "list again.",
    }
