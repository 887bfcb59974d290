"""Bounds on realtime streams (``GET /api/realtime``): in total, and per client IP.

A stream costs up to two file handles for as long as it lives (the client's connection, and its
own upstream one while it holds a topic that cannot be shared, see ``fanout``), so unbounded
streams let a few hundred guests exhaust the gateway's handles and
every client fails. A slot is taken before any upstream connection is opened and given back when
the stream ends; past a bound the stream is refused in PocketBase's envelope: 429 when this
client IP (as resolved from trusted proxies) holds ``HAPTA_MAX_STREAMS_PER_IP`` already, 503
when the gateway holds ``HAPTA_MAX_STREAMS`` (clamped to the open-file budget, ``filelimit``).
Counts are per gateway process.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from . import logs
from .errors import ApiError
from .filelimit import budget, open_file_limit
from .settings import Settings

TOO_MANY_FROM_IP = "Too Many Requests."
TOO_MANY_IN_TOTAL = "Too many realtime connections, try again later."


class StreamSlots:
    """Counts open streams; ``acquire`` (or ``with slots.slot(ip):``) takes one or refuses."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self.open = 0
        self._by_ip: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamSlots:
        files = open_file_limit()
        fit = budget(files, settings.max_connections, settings.max_clients, settings.max_streams)
        if (fit.clients, fit.streams) != (settings.max_clients, settings.max_streams):
            msg = (
                f"the open-file limit ({files}) allows {fit.clients} connections and "
                f"{fit.streams} realtime streams: HAPTA_MAX_CLIENTS / HAPTA_MAX_STREAMS lowered"
            )
            logs.log.warning(msg, extra={"fields": {"msg": msg}})
        return cls(fit.streams, settings.max_streams_per_ip)

    def held(self, ip: str) -> int:
        return self._by_ip.get(ip, 0)

    def acquire(self, ip: str) -> Callable[[], None]:
        """Take a slot for ``ip`` or raise the 429 / 503 ``ApiError``; returns the release
        (calling it more than once gives the slot back once)."""
        held = self._by_ip.get(ip, 0)
        if held >= self.per_ip:
            raise ApiError(429, TOO_MANY_FROM_IP)
        if self.open >= self.total:
            raise ApiError(503, TOO_MANY_IN_TOTAL)
        self._by_ip[ip] = held + 1
        self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.open -= 1
            left = self._by_ip[ip] - 1
            if left:
                self._by_ip[ip] = left
            else:
                del self._by_ip[ip]

        return release

    def slot(self, ip: str) -> _Slot:
        """``with slots.slot(ip): ...``: the slot is held for the block."""
        return _Slot(self.acquire(ip))


class _Slot:
    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()
