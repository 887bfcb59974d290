"""The real client IP: the TCP peer, unless the peer is a trusted proxy.

``X-Forwarded-For`` is read only when the peer is in ``HAPTA_TRUSTED_PROXIES``; then the
rightmost address that is not itself a trusted proxy is the client; several header lines are one
list, joined in order (RFC 9110 section 5.3), so a second line cannot hide behind the first. From
anyone else the header is ignored, and the gateway always overwrites it: PocketBase receives
exactly one address (set ``trustedProxy.headers = ["X-Forwarded-For"]`` in PocketBase so its own
limits are per user).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientIP:
    """Decides the client address of a request from its peer and headers."""

    def __init__(self, trusted: Iterable[Network] = ()) -> None:
        self.trusted = tuple(trusted)
        self._cache: dict[str, bool] = {}

    def is_trusted(self, address: str) -> bool:
        known = self._cache.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            result = False
        else:
            result = any(ip in net for net in self.trusted)
        if len(self._cache) < 10_000:
            self._cache[address] = result
        return result

    def resolve_scope(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client IP for a request from ``peer`` with these (lower-case) headers."""
        if not self.trusted or not self.is_trusted(peer):
            return peer
        lines = [value for key, value in headers if key == b"x-forwarded-for"]
        return self.resolve(peer, b",".join(lines) if lines else None)

    def resolve(self, peer: str, forwarded_for: bytes | None) -> str:
        """The client IP for a request from ``peer`` carrying ``X-Forwarded-For`` (or None)."""
        if not self.trusted or forwarded_for is None or not self.is_trusted(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.decode("latin-1").split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            candidate = _strip_port(hop)
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                return peer  # garbage in the chain: believe nothing beyond the trusted peer
            if not self.is_trusted(candidate):
                return candidate
        return peer


@lru_cache(maxsize=10_000)
def network_of(address: str) -> str:
    """Who a per-IP count is for: an IPv4 address; an IPv6 address's /64 (one subscriber line
    holds 2**64 addresses, so counting each would be no limit); an IPv4-mapped IPv6 address
    (``::ffff:198.51.100.7``) is its IPv4 address. Anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _strip_port(hop: str) -> str:
    if hop.startswith("["):  # [v6]:port
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:  # v4:port
        return hop.split(":", 1)[0]
    return hop
