"""``clientip.ClientIP``: whom ``X-Forwarded-For`` is believed from, and which hop is the client."""

from __future__ import annotations

import ipaddress

from gateway.clientip import ClientIP

PROXY = "10.0.0.5"
TRUSTED = ClientIP([ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/8")])


def test_nothing_trusted_means_the_peer() -> None:
    assert ClientIP().resolve("192.0.2.1", b"203.0.113.9") == "192.0.2.1"


def test_untrusted_peer_is_the_client() -> None:
    assert TRUSTED.resolve("192.0.2.1", b"203.0.113.9") == "192.0.2.1"
    assert TRUSTED.resolve_scope("192.0.2.1", [(b"x-forwarded-for", b"203.0.113.9")]) == "192.0.2.1"


def test_rightmost_untrusted_hop() -> None:
    assert TRUSTED.resolve(PROXY, b"1.2.3.4, 203.0.113.9") == "203.0.113.9"
    assert TRUSTED.resolve(PROXY, b"203.0.113.9, 10.0.0.7") == "203.0.113.9"
    assert TRUSTED.resolve(PROXY, b"10.0.0.7, 10.0.0.8") == PROXY  # only proxies: the peer
    assert TRUSTED.resolve(PROXY, None) == PROXY


def test_ports_and_ipv6() -> None:
    assert TRUSTED.resolve(PROXY, b"203.0.113.9:4711") == "203.0.113.9"
    assert TRUSTED.resolve(PROXY, b"[2001:db8::1]:443") == "2001:db8::1"
    assert TRUSTED.resolve(PROXY, b"2001:db8::1") == "2001:db8::1"
    assert TRUSTED.resolve("fd00::1", b"203.0.113.9") == "203.0.113.9"


def test_garbage_in_the_chain_believes_nothing_beyond_the_peer() -> None:
    assert TRUSTED.resolve(PROXY, b"203.0.113.9, not-an-ip") == PROXY
    assert TRUSTED.resolve(PROXY, b"203.0.113.9, , 198.51.100.2") == "198.51.100.2"


def test_header_lines_join_in_order() -> None:
    headers = [
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"203.0.113.9"),
    ]
    assert TRUSTED.resolve_scope(PROXY, headers) == "203.0.113.9"
    assert TRUSTED.resolve_scope(PROXY, [(b"accept", b"*/*")]) == PROXY
