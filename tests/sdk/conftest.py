"""Fixtures for the real-client tests: the official SDKs and schemathesis, no mocks.

* ``sdk_pb``: a PocketBase of its own (the SDK sessions create users and posts) with the postly
  schema and ``examples/postly/seed.json``; started once per session, stopped at the end.
* ``sdk_gateway``: the generated gateway (``python -m gateway``) in front of ``sdk_pb``.
* ``sdk_rolling_gateway``: the same with rolling sessions (``HAPTA_SESSIONS=rolling``): clients
  hold the gateway's session keys, never PocketBase's tokens.
* ``target``: parametrised over ``pocketbase`` (the control: every client flow must pass
  against PocketBase itself), ``gateway`` and ``gateway-rolling``; the base URL of the one
  under test.
* ``node`` / ``js_sdk_dir``: the Node executable and ``tests/sdk/js`` with its ``node_modules``
  (installed with ``npm ci`` from the committed lockfile when a package of ``package.json`` is
  missing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_support import Target

from bench.servers import GatewayProcess
from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import postly_schema, seed_postly

JS_DIR = Path(__file__).resolve().parent / "js"
TARGETS = ("pocketbase", "gateway", "gateway-rolling")


@pytest.fixture(scope="session")
def sdk_pb() -> Iterator[tuple[PocketBaseServer, dict[str, list[dict[str, Any]]]]]:
    """A seeded postly PocketBase for the SDK tests only."""
    with PocketBaseServer() as server:
        server.import_collections(postly_schema())
        seed = seed_postly(server)
        yield server, seed


@pytest.fixture(scope="session")
def sdk_gateway(sdk_pb: tuple[PocketBaseServer, Any]) -> Iterator[GatewayProcess]:
    """The generated gateway in front of ``sdk_pb``, its rate limits off (the SDK and
    schemathesis suites send far more than postly's limits allow from one IP; they are
    tested in ``tests/gateway/test_ratelimit.py``)."""
    server, _ = sdk_pb
    env = {
        "PB_SUPERUSER_EMAIL": server.email,
        "PB_SUPERUSER_PASSWORD": server.password,
        "HAPTA_RATE_LIMIT_ENABLED": "false",
    }
    with GatewayProcess(server.url, env=env) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def sdk_rolling_gateway(sdk_pb: tuple[PocketBaseServer, Any]) -> Iterator[GatewayProcess]:
    """The generated gateway in front of ``sdk_pb``, with rolling sessions (kept in memory) and,
    as ``sdk_gateway``, its rate limits off."""
    server, _ = sdk_pb
    env = {"HAPTA_SESSIONS": "rolling", "HAPTA_RATE_LIMIT_ENABLED": "false"}
    with GatewayProcess(server.url, env=env) as gateway:
        yield gateway


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, sdk_pb: tuple[PocketBaseServer, Any]) -> Target:
    server, seed = sdk_pb
    if request.param == "gateway":
        gateway: GatewayProcess = request.getfixturevalue("sdk_gateway")
        return Target("gateway", gateway.url, server, seed)
    if request.param == "gateway-rolling":
        rolling: GatewayProcess = request.getfixturevalue("sdk_rolling_gateway")
        return Target("gateway-rolling", rolling.url, server, seed)
    return Target("pocketbase", server.url, server, seed)


@pytest.fixture(scope="session")
def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not installed (Node 20+ is needed for the JS SDK tests)")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < 20:
        pytest.fail(f"node {version.stdout.strip()} is too old: the JS SDK tests need Node 20+")
    return exe


@pytest.fixture(scope="session")
def js_sdk_dir() -> Path:
    """``tests/sdk/js`` with ``node_modules`` (``npm ci`` from the lockfile when one is missing)."""
    manifest = json.loads((JS_DIR / "package.json").read_text("utf-8"))
    wanted = {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}
    if not all((JS_DIR / "node_modules" / name / "package.json").is_file() for name in wanted):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("tests/sdk/js/node_modules is missing and npm is not installed; "
                        "run: npm ci --prefix tests/sdk/js")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True,
            timeout=300, check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/sdk/js failed:\n{done.stderr[-2000:]}")
    return JS_DIR
