"""The real client IP reaches PocketBase; ``X-Forwarded-For`` is believed only from a trusted proxy.

The session gateway trusts 127.0.0.2 only. PocketBase (told to read ``X-Forwarded-For``) reports
the IP it settled on in ``/api/health`` for superusers (``data.realIP``).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from gateway_support import TRUSTED_PROXY, GatewayProcess, auth


@pytest.fixture(scope="module")
def from_proxy(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """A client whose connections come from the trusted proxy address."""
    transport = httpx.HTTPTransport(local_address=TRUSTED_PROXY)
    with httpx.Client(base_url=gateway.url, transport=transport, timeout=10) as client:
        yield client


def _real_ip(client: httpx.Client, token: str, forwarded: str | None = None) -> str:
    headers = auth(token) | ({"X-Forwarded-For": forwarded} if forwarded else {})
    resp = client.get("/api/health", headers=headers)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["data"]["realIP"])


def test_untrusted_peer_cannot_choose_its_ip(gw: httpx.Client, tokens: dict[str, str]) -> None:
    assert _real_ip(gw, tokens["superuser"]) == "127.0.0.1"
    assert _real_ip(gw, tokens["superuser"], "203.0.113.9") == "127.0.0.1"
    assert _real_ip(gw, tokens["superuser"], "203.0.113.9, 198.51.100.1") == "127.0.0.1"


def test_trusted_proxy_forwards_the_client(from_proxy: httpx.Client, tokens: dict[str, str]) -> None:
    assert _real_ip(from_proxy, tokens["superuser"]) == TRUSTED_PROXY
    assert _real_ip(from_proxy, tokens["superuser"], "203.0.113.9") == "203.0.113.9"
    # the rightmost address that is not a trusted proxy is the client; spoofed entries to its
    # left are ignored
    assert _real_ip(from_proxy, tokens["superuser"], "1.2.3.4, 203.0.113.9") == "203.0.113.9"
    assert _real_ip(from_proxy, tokens["superuser"], f"203.0.113.9, {TRUSTED_PROXY}") == "203.0.113.9"
    assert _real_ip(from_proxy, tokens["superuser"], "not-an-ip") == TRUSTED_PROXY


def test_several_forwarded_for_lines_are_one_list(
    from_proxy: httpx.Client, tokens: dict[str, str]
) -> None:
    """Two ``X-Forwarded-For`` lines are one list in order (RFC 9110): the client is the
    rightmost untrusted hop of the joined list, not of the first line."""
    headers = [
        ("Authorization", tokens["superuser"]),
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-For", "203.0.113.9"),
    ]
    resp = from_proxy.get("/api/health", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["realIP"] == "203.0.113.9"
