"""Fixtures for the gateway's own tests: a real PocketBase and the generated gateway, no mocks.

* ``gw_pb``: a PocketBase of its own with the postly schema and seed, batch enabled and
  ``X-Forwarded-For`` trusted (as the README tells operators to configure it); once per session.
* ``gateway``: ``python -m gateway`` from ``generated/`` in front of ``gw_pb``, with
  ``PB_SUPERUSER_*`` set (to prove they never serve a user) and ``127.0.0.2`` as the trusted
  proxy (tests reach it from 127.0.0.1, untrusted, or from 127.0.0.2, trusted).
* ``pb`` / ``gw`` clients: ``httpx.Client`` on PocketBase and on the gateway; ``tokens``: auth
  tokens of the seed users, obtained from PocketBase directly.
* ``GatewayProcess``: start more gateways (other settings, a PocketBase that goes down).

Servers are polled until ready against a deadline, never slept for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import PASSWORDS, TRUSTED_PROXY, GatewayProcess

from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import postly_schema, seed_postly


@pytest.fixture(scope="session")
def gw_pb() -> Iterator[PocketBaseServer]:
    with PocketBaseServer() as server:
        server.import_collections(postly_schema())
        seed_postly(server)
        server.patch_settings(
            {
                "batch": {"enabled": True, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
                "trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": False},
            }
        )
        yield server


@pytest.fixture(scope="session")
def gw_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="session")
def gateway(gw_pb: PocketBaseServer, gw_tmp: Path) -> Iterator[GatewayProcess]:
    env = {
        "PB_SUPERUSER_EMAIL": gw_pb.email,
        "PB_SUPERUSER_PASSWORD": gw_pb.password,
        "HAPTA_TRUSTED_PROXIES": f"{TRUSTED_PROXY}/32",
    }
    process = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def pb(gw_pb: PocketBaseServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw_pb.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def gw(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def tokens(pb: httpx.Client, gw_pb: PocketBaseServer) -> dict[str, str]:
    """Auth tokens by seed user name (``alice``, ``bob``...) plus ``superuser``."""
    out = {"superuser": gw_pb.superuser_token()}
    for name in ("alice", "bob", "carol"):
        resp = pb.post(
            "/api/collections/users/auth-with-password",
            json={"identity": f"{name}@postly.test", "password": PASSWORDS[name]},
        )
        assert resp.status_code == 200, resp.text
        out[name] = resp.json()["token"]
    return out
