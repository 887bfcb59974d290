"""Realtime, ``/api/realtime``: PocketBase's server-sent events through the gateway.

``GET`` opens a connection of its own to PocketBase for each client (never a pooled one: a
stream lives up to PocketBase's 30 minutes) and relays the events unbuffered as they arrive.
When the client goes away the upstream connection is closed; when PocketBase ends the stream,
so does the client's (the SDKs reconnect). Each client has its own stream, so PocketBase alone
decides which events it receives, exactly as without the gateway.

``POST`` (the subscriptions) is checked here first: ``clientId`` and the topic limits as
PocketBase checks them, and every topic's collection must be one the gateway exposes (with
``expand`` and ``filter`` inside ``?options=`` checked as on the list path; a collection whose
``hapta.yaml`` policy leaves out ``realtime`` or hides fields is refused, since events are
relayed as PocketBase sends them). It is then
forwarded unchanged like any request: the caller's own ``Authorization``, and the same
forwarded client IP as the stream.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .asgi import Headers, Receive, Send
from .catalog import BY_NAME
from .errors import BAD_REQUEST, NOT_ALLOWED, ApiError, field_error, invalid
from .gorequest import (
    FORM,
    JSON,
    MULTIPART,
    Unreadable,
    body_kind,
    canonical,
    first,
    form_pairs,
    json_body,
    payload,
    query_pairs,
    strict_json,
)
from .upstream import Response, UpstreamError
from .validation import check_expand, check_filter, expanded

#: PocketBase's limits (``apis/realtime.go``).
MAX_CLIENT_ID = 255
MAX_TOPICS = 1000
MAX_TOPIC = 2500
_FORM_KEYS = ("clientId", "subscriptions")
_OPTION_KEYS = ("query", "headers")


# ----------------------------------------------------------------------------- POST


def check_subscribe(raw: bytes, content_type: bytes, query: bytes = b"") -> None:
    """Raise a 400 in PocketBase's envelope unless PocketBase may have these subscriptions
    (``query``: the URL's, part of a form body as PocketBase reads it)."""
    client_id, topics = _form(raw, content_type, query)
    errors: dict[str, Any] = {}
    if not client_id:
        errors["clientId"] = field_error("validation_required", "Cannot be blank.")
    elif len(client_id) > MAX_CLIENT_ID:
        errors["clientId"] = field_error(
            "validation_length_out_of_range",
            f"The length must be between 1 and {MAX_CLIENT_ID}.",
            {"max": MAX_CLIENT_ID, "min": 1},
        )
    if len(topics) > MAX_TOPICS:
        errors["subscriptions"] = field_error(
            "validation_length_too_long",
            f"The length must be no more than {MAX_TOPICS}.",
            {"max": MAX_TOPICS, "min": 0},
        )
    else:
        refused = {
            str(i): problem for i, topic in enumerate(topics) if (problem := _topic_problem(topic))
        }
        if refused:
            errors["subscriptions"] = refused
    if errors:
        raise ApiError(400, BAD_REQUEST, errors)


def _form(raw: bytes, content_type: bytes, query: bytes) -> tuple[str, list[str]]:
    """``clientId`` and the topics, read as PocketBase binds the body (JSON or a form)."""
    if not raw:
        return "", []  # PocketBase binds nothing from an empty body
    kind = body_kind(content_type)
    if kind == JSON:
        return _fields(json_body(raw, fold=True))
    if kind not in (FORM, MULTIPART):
        raise ApiError(400, BAD_REQUEST)  # PocketBase's XML binding is not read here: refused
    pairs = form_pairs(kind, raw, content_type, query)
    client_id = first(pairs, "clientId")
    topics = [v for k, v in pairs if k == "subscriptions"]
    found = payload(pairs, fold=True)
    if found is not None:
        more_id, more_topics = _fields(found)
        client_id = more_id or client_id
        topics += more_topics
    return client_id, topics


def _fields(data: Any) -> tuple[str, list[str]]:
    if not isinstance(data, dict):
        raise ApiError(400, BAD_REQUEST)
    canonical(data, _FORM_KEYS)
    client_id = data.get("clientId")
    topics = data.get("subscriptions")
    if client_id is None:
        client_id = ""
    if topics is None:
        topics = []
    if not isinstance(client_id, str) or not isinstance(topics, list):
        raise ApiError(400, BAD_REQUEST)
    if not all(isinstance(t, str) or t is None for t in topics):
        raise ApiError(400, BAD_REQUEST)
    return client_id, [t or "" for t in topics]


def _topic_problem(topic: str) -> dict[str, Any] | None:
    """Why a topic is refused (a ``{code, message}``), or ``None``.

    ``<collection>/*``, ``<collection>/<id>`` or ``<collection>``, each maybe with
    ``?options=``; PocketBase matches a topic by its leading ``<collection>/`` or
    ``<collection>?``, so that is the collection checked here.
    """
    if not topic:
        return None  # PocketBase skips empty topics
    if len(topic) > MAX_TOPIC:
        return field_error(
            "validation_length_too_long",
            f"The length must be no more than {MAX_TOPIC}.",
            {"max": MAX_TOPIC, "min": 0},
        )
    path, _, query = topic.partition("#")[0].partition("?")  # Go's url.Parse drops the fragment
    name = path.split("/", 1)[0]
    spec = BY_NAME.get(name)
    if spec is None:
        return field_error(
            "validation_invalid_collection", f"Unknown collection {name!r}.", {"value": name}
        )
    if "realtime" not in spec.operations:
        return field_error("validation_not_allowed", NOT_ALLOWED, {"value": name})
    if spec.hidden:  # events are relayed as PocketBase sends them: they would carry the fields
        return field_error(
            "validation_not_allowed", f"{name!r} has hidden fields: not available in realtime."
        )
    try:
        options = _options(query)
        if isinstance(expand := options.get("expand"), str):
            check_expand(spec, expand)
            for target in expanded(spec, expand):
                if target.hidden:
                    raise invalid(
                        BAD_REQUEST,
                        "expand",
                        "validation_not_allowed",
                        f"{target.name!r} has hidden fields: not expandable in realtime.",
                    )
        if isinstance(filter_ := options.get("filter"), str):
            check_filter(filter_)
    except ApiError as exc:
        fallback = field_error("validation_invalid_value", "Invalid options.")
        found: dict[str, Any] = next(iter(exc.data.values()), fallback)
        return found
    return None


def _options(query: str) -> dict[str, Any]:
    """The ``query`` of a topic's ``?options=`` (Go's ``Get``: the first ``options`` pair Go can
    read), ``{}`` without one; options that could be read two ways are a 400."""
    raw = first(query_pairs(query.encode()), "options")
    if not raw:
        return {}
    try:
        options = strict_json(raw, fold=True)
    except Unreadable:
        raise invalid(
            BAD_REQUEST, "options", "validation_invalid_json", "Must be valid JSON."
        ) from None
    canonical(options, _OPTION_KEYS)
    found = options.get("query") if isinstance(options, dict) else None
    return found if isinstance(found, dict) else {}


# ----------------------------------------------------------------------------- GET


async def relay(response: Response, headers: Headers, receive: Receive, send: Send) -> int:
    """Send PocketBase's stream to the client as it arrives; returns the bytes sent.

    The client leaving closes the upstream connection; PocketBase (or the gateway's shutdown)
    closing it ends the client's response cleanly.
    """
    watcher = asyncio.ensure_future(_disconnected(receive))
    watcher.add_done_callback(lambda _: response.close())
    size = 0
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.iter_body():
                size += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError:
            pass  # the client left, PocketBase ended the stream, or the gateway is stopping
        await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()
    return size


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
