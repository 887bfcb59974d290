"""Single-use, short-lived stream tickets: how a browser's ``EventSource`` (which cannot send
headers) opens an authenticated stream without the long-lived token ever being in a URL.

``POST /sse/ticket`` with ``Authorization`` answers ``{"ticket", "expires"}``; the ticket then
goes in ``?ticket=`` on one ``/sse/...`` or ``/datastar/...`` URL, within
``HAPTA_SSE_TICKET_TTL`` seconds, once. Only the ticket's SHA-256 is kept (with the credential
it stands for: PocketBase's token, after the session layer swapped a rolling key), in this
process's memory: a ticket is redeemed on the node (and worker) that issued it, which holds for
a browser that asks for the ticket and opens the stream right after, behind sticky routing.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime

#: Expired tickets are swept when this many are held.
_SWEEP_AT = 1024


class Tickets:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._held: dict[str, tuple[float, bytes]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def issue(self, credential: bytes, now: float | None = None) -> tuple[str, str]:
        """A new ticket for ``credential`` and its expiry (RFC 3339, UTC)."""
        now = time.time() if now is None else now
        if len(self._held) >= _SWEEP_AT:
            self._held = {k: v for k, v in self._held.items() if v[0] > now}
        ticket = secrets.token_urlsafe(32)
        expires = now + self.ttl
        self._held[_hash(ticket)] = (expires, credential)
        stamp = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        return ticket, stamp.replace("+00:00", "Z")

    def redeem(self, ticket: str, now: float | None = None) -> bytes | None:
        """The credential of a live ticket, which is then spent; ``None`` otherwise."""
        now = time.time() if now is None else now
        found = self._held.pop(_hash(ticket), None)
        if found is None or found[0] <= now:
            return None
        return found[1]


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
