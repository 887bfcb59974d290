"""Single-use, short-lived stream tickets: how a browser's ``EventSource`` (which cannot send
headers) opens an authenticated stream without the long-lived token ever being in a URL.

``POST /sse/ticket`` with ``Authorization`` answers ``{"ticket", "expires"}``; the ticket then
goes in ``?ticket=`` on one ``/sse/...`` or ``/datastar/...`` URL, within
``HAPTA_SSE_TICKET_TTL`` seconds, once. Only the ticket's SHA-256 is kept, with the credential
it stands for (PocketBase's token, after the session layer swapped a rolling key): in Valkey /
Redis when ``HAPTA_REDIS_URL`` is set (any node redeems it; ``GETDEL`` spends it atomically),
else in this process's memory (the node and worker that issued it must redeem it).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import RedisError

from .errors import ApiError
from .resp import redis_py

STORE_DOWN = "The ticket store is unavailable; try again shortly."
TOO_MANY_TICKETS = "Too many stream tickets are waiting to be used; try again shortly."

#: Live tickets one process holds at most (in memory; each is a few hundred bytes).
MAX_TICKETS = 100_000


class Tickets(Protocol):
    ttl: float

    async def issue(self, credential: bytes) -> tuple[str, str]:
        """A new ticket for ``credential`` and its expiry (RFC 3339, UTC)."""
        ...

    async def redeem(self, ticket: str) -> bytes | None:
        """The credential of a live ticket, which is then spent; ``None`` otherwise."""
        ...

    async def aclose(self) -> None: ...


def open_tickets(ttl: float, redis_url: str | None = None, timeout: float = 1.0) -> Tickets:
    return RedisTickets(redis_url, ttl, timeout) if redis_url else MemoryTickets(ttl)


class MemoryTickets:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._held: dict[str, tuple[float, bytes]] = {}

    def __len__(self) -> int:
        return len(self._held)

    async def issue(self, credential: bytes) -> tuple[str, str]:
        now = time.time()
        held = self._held
        while held:  # one ttl for all: the oldest ticket is the first to expire
            oldest = next(iter(held))
            if held[oldest][0] > now:
                break
            del held[oldest]
        if len(held) >= MAX_TICKETS:
            raise ApiError(503, TOO_MANY_TICKETS)
        ticket = secrets.token_urlsafe(32)
        expires = now + self.ttl
        self._held[_hash(ticket)] = (expires, credential)
        return ticket, _stamp(expires)

    async def redeem(self, ticket: str) -> bytes | None:
        found = self._held.pop(_hash(ticket), None)
        if found is None or found[0] <= time.time():
            return None
        return found[1]

    async def aclose(self) -> None:
        self._held.clear()


class RedisTickets:
    """Tickets in Valkey/Redis under ``hapta:sse:t:<sha256>``, expiring there by themselves."""

    def __init__(self, url: str, ttl: float, timeout: float, prefix: str = "hapta:sse:t:") -> None:
        self._redis: Any = redis_py(url, timeout)
        self._prefix = prefix
        self.ttl = ttl

    async def issue(self, credential: bytes) -> tuple[str, str]:
        ticket = secrets.token_urlsafe(32)
        expires = time.time() + self.ttl
        try:
            await self._redis.set(
                self._prefix + _hash(ticket), credential, px=max(1, int(self.ttl * 1000))
            )
        except (RedisError, OSError):
            raise ApiError(503, STORE_DOWN) from None
        return ticket, _stamp(expires)

    async def redeem(self, ticket: str) -> bytes | None:
        try:
            found = await self._redis.getdel(self._prefix + _hash(ticket))
        except (RedisError, OSError):
            raise ApiError(503, STORE_DOWN) from None
        return bytes(found) if found is not None else None

    async def aclose(self) -> None:
        await self._redis.aclose()


def _stamp(expires: float) -> str:
    return datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
