"""Realtime, ``/api/realtime``: PocketBase's realtime protocol, answered by the gateway.

``GET`` opens a stream the gateway writes itself (``serve``): PocketBase's headers, a
``PB_CONNECT`` with a client id of the gateway's, then the events of the client's
subscriptions, in PocketBase's format byte for byte (``id:<clientId>``, ``event:<topic>``,
``data:<PocketBase's JSON>``), plus heartbeat comment lines. Which upstream stream serves which
topic is ``fanout``'s business: one shared subscription per process for public topics, the
client's own upstream stream (its credential, its IP) for the rest.

``POST`` (the subscriptions) is checked first (``check_subscribe``): ``clientId`` and the topic
limits as PocketBase checks them, and every topic's collection must be one the gateway exposes
(with ``expand`` and ``filter`` inside ``?options=`` checked as on the list path; a collection
whose ``hapta.yaml`` policy leaves out ``realtime`` or hides fields is refused, since events are
relayed as PocketBase sends them). It is then answered as PocketBase answers it
(``subscribe``): 404 for an unknown client id, 400 from another IP than the stream's, 403 when
the caller is not who the client's earlier subscriptions were made as (a guest may sign in
once), else the topics replace the client's and 204.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .asgi import Headers, Receive, Send
from .catalog import BY_NAME
from .errors import BAD_REQUEST, NOT_ALLOWED, UPSTREAM_DOWN, ApiError, field_error, invalid
from .fanout import Client, Hub
from .feed import Refused
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
from .offload import run_checked
from .pbstream import StreamDown
from .relay import TOKEN_LENGTH, RelayUnavailable
from .sessions import bare_key, token_claims
from .upstream import UpstreamError
from .validation import check_expand, check_filter, expanded

#: PocketBase's limits (``apis/realtime.go``).
MAX_CLIENT_ID = 255
MAX_TOPICS = 1000
MAX_TOPIC = 2500
_FORM_KEYS = ("clientId", "subscriptions")
_OPTION_KEYS = ("query", "headers")
MISSING_CLIENT = "Missing or invalid client id."
INVALID_CLIENT = "Invalid realtime client."
AUTH_MISMATCH = "The current and the previous request authorization don't match."
_STREAM_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
    (b"vary", b"Origin"),
]


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


async def serve(hub: Hub, client: Client, origin: bool, receive: Receive, send: Send) -> int:
    """Write ``client``'s stream until it ends; returns the bytes sent.

    PocketBase's headers and its ``PB_CONNECT`` first; then the client's events as they come,
    and heartbeats (``Hub``). The client leaving, a shutdown or a revoked session end it
    (cleanly: the SDKs reconnect); a client whose buffer fills, or whose write waits past the
    send timeout, is dropped: the write is cancelled and the response left unfinished, so the
    server closes the connection.
    """
    loop = asyncio.get_running_loop()
    client.task = asyncio.current_task()
    watcher = asyncio.ensure_future(_disconnected(receive))
    watcher.add_done_callback(lambda _: hub.leave(client))
    size = 0
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _headers(origin)})
        while (data := await client.take()) is not None:
            client.sending = loop.time()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            client.last_sent = loop.time()
            client.sending = 0.0
            size += len(data)
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not client.dropped:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        watcher.cancel()
        hub.leave(client)
    return size


def _headers(origin: bool) -> Headers:
    headers = [*_STREAM_HEADERS]
    if origin:
        headers.append((b"access-control-allow-origin", b"*"))
    return headers


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# ----------------------------------------------------------------------------- POST, answered


async def subscribe(
    hub: Hub,
    raw: bytes,
    content_type: bytes,
    query: bytes,
    authorization: bytes | None,
    client_ip: str,
    session: str | None,
) -> tuple[int, Headers, bytes]:
    """Answer ``POST /api/realtime`` as PocketBase does (the body was checked already):
    ``(status, headers, body)``. A client of another worker on this host is answered by that
    worker (``relay``)."""
    client_id, topics = await run_checked(_form, raw, content_type, query, size=len(raw))
    request: dict[str, Any] = {
        "clientId": client_id,
        "topics": topics,
        "authorization": authorization.decode("latin-1") if authorization else None,
        "ip": client_ip,
        "session": session,
    }
    token = client_id[:TOKEN_LENGTH]
    if hub.find(client_id) is not None or token == hub.relay.token:
        status, kind, body = await apply(hub, request)
    else:
        try:
            status, kind, body = await hub.relay.forward(token, request)
        except RelayUnavailable:
            raise ApiError(404, MISSING_CLIENT) from None
        except (OSError, ValueError, KeyError):
            raise ApiError(502, UPSTREAM_DOWN) from None
    return status, [(b"content-type", kind)] if kind else [], body


async def apply(hub: Hub, request: dict[str, Any]) -> tuple[int, bytes, bytes]:
    """Make a client of this process's subscriptions what ``request`` says, as PocketBase
    does: 404 for an unknown client id, 400 from another IP than the stream's, 403 when the
    caller is not who the earlier subscriptions were made as, else 204; PocketBase's refusal
    of a private topic is passed on. ``(status, content type, body)``."""
    given = request["authorization"]
    authorization = given.encode("latin-1") if given else None
    try:
        client = hub.find(request["clientId"])
        if client is None:
            raise ApiError(404, MISSING_CLIENT)
        if client.ip != request["ip"]:
            raise ApiError(400, INVALID_CLIENT)
        identity = _identity(authorization)
        if client.identity and identity != client.identity:
            raise ApiError(403, AUTH_MISMATCH)
        try:
            await hub.set_subscriptions(
                client, request["topics"], authorization, client.ip, request["session"]
            )
        except Refused as exc:
            kind = next((v for k, v in exc.headers if k == b"content-type"), b"")
            return exc.status, kind, exc.body
        except (UpstreamError, StreamDown):
            raise ApiError(502, UPSTREAM_DOWN) from None
    except ApiError as exc:
        return exc.status, b"application/json", exc.body()
    client.identity = identity
    client.subscribed = True
    return 204, b"", b""


def _identity(authorization: bytes | None) -> str:
    """Who a token says it is (``collectionId/id``; unverified: PocketBase verifies it on the
    client's own stream, and a shared topic is the same for everyone)."""
    if not authorization:
        return ""
    claims = token_claims(bare_key(authorization).decode("latin-1"))
    return f"{claims.get('collectionId', '')}/{claims.get('id', '')}"
