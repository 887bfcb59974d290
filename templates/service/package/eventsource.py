"""Where the typed SSE and Datastar streams get their record events: a tiny interface, and its
implementation on PocketBase's own realtime.

An ``EventSource`` is opened with ``(topic, authorization, client ip, session)`` (``session``:
the rolling session key's hash the credential came from, or ``None``) and is an async
iterator of ``(event name, data bytes)``: first ``(READY, b"")`` once the subscription is live
(events written from then on are delivered), then ``("create" | "update" | "delete",
PocketBase's payload)``. It ends when the upstream stream ends (the caller reconnects), raises
``Stopping`` when no source may be opened again for this credential (the gateway stops, or the
session was revoked) and ``EventSourceError`` when the subscription cannot be made. Closing the iterator
(``aclose``) frees everything it holds.

``hub_source`` takes the events from the process's realtime hub (``fanout``): a public topic
is served from the hub's one shared upstream subscription, any other on an upstream stream made
with the caller's own credential, so PocketBase alone decides which events arrive, exactly as
on ``/api/realtime`` (the same rule decides what is shared there and here).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import orjson

from .errors import ApiError
from .fanout import GAP, Hub
from .feed import Refused
from .pbstream import StreamDown
from .upstream import UpstreamError

#: The first item of every source: the subscription is live.
READY = ""
ACTIONS = frozenset({"create", "update", "delete"})

EventSource = Callable[
    [str, bytes | None, str, str | None], AsyncGenerator[tuple[str, bytes], None]
]


class Stopping(Exception):
    """The gateway is shutting down, or the credential's session was revoked: no source will be
    opened again for it."""


class EventSourceError(Exception):
    """The subscription could not be made (PocketBase refused it or is unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        #: PocketBase's HTTP status when it answered (403 / 404 ...), else 0.
        self.status = status


def hub_source(hub: Hub) -> EventSource:
    """The ``EventSource`` on the realtime ``hub``."""

    def open_source(
        topic: str, authorization: bytes | None, client_ip: str, session: str | None
    ) -> AsyncGenerator[tuple[str, bytes], None]:
        return hub_events(hub, topic, authorization, client_ip, session)

    return open_source


async def hub_events(
    hub: Hub, topic: str, authorization: bytes | None, client_ip: str, session: str | None
) -> AsyncGenerator[tuple[str, bytes], None]:
    """``topic``'s events from ``hub`` as the caller (``authorization``: PocketBase's token;
    ``client_ip`` forwarded; ``session``: ended by the hub when that session is revoked). Ends
    after an upstream gap or a drop for not reading (events may have been missed: the caller
    opens a new source and tells its clients to re-read); raises ``Stopping`` when the hub
    ended it otherwise (a revoked session, a shutdown)."""
    if hub.closed:
        raise Stopping("the gateway is stopping")
    try:
        sub = await hub.subscribe(topic, authorization, client_ip, session)
    except Refused as exc:
        raise EventSourceError(str(exc), exc.status) from None
    except (StreamDown, UpstreamError) as exc:
        raise EventSourceError(f"cannot subscribe: {exc}") from None
    except ApiError:
        raise Stopping("the gateway is stopping") from None
    try:
        yield READY, b""
        async for name, data in sub:
            if name == GAP:
                return
            action = _action(data)
            if action:
                yield action, data
        if not sub.dropped:
            raise Stopping("the subscription was ended (a revoked session, or a shutdown)")
    finally:
        sub.close()


def _action(data: bytes) -> str:
    """The event's ``action`` when PocketBase's payload is understood, else ``""``."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(message, dict) or not isinstance(message.get("record"), dict):
        return ""
    action = message.get("action")
    return action if isinstance(action, str) and action in ACTIONS else ""
