"""The process's open-file budget, and the connection and stream bounds that fit in it.

Every client connection holds one file handle; a realtime stream holds two (the client's and
its own upstream connection); the upstream pool holds up to ``HAPTA_MAX_CONNECTIONS``; a few
more go to logs, the listening socket and spooled uploads (``RESERVE``). When the handles run
out, every client fails, so the bounds are clamped to what ``RLIMIT_NOFILE`` allows, after the
soft limit has been raised to the hard one where the system permits.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

#: Handles kept for everything that is neither a client nor a pooled upstream connection.
RESERVE = 64


@dataclass(frozen=True)
class Budget:
    clients: int
    streams: int


def open_file_limit() -> int:
    """The soft ``RLIMIT_NOFILE``, raised to the hard limit first when possible."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # not allowed here (a container's policy): live with the soft limit
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def budget(files: int, pool: int, clients: int, streams: int) -> Budget:
    """The client and stream bounds that fit in ``files`` handles next to a pool of ``pool``."""
    spare = max(files - RESERVE - pool, 2)
    fit_streams = max(1, min(streams, spare // 2))
    fit_clients = max(1, min(clients, spare - fit_streams))
    return Budget(fit_clients, fit_streams)
