"""PocketBase down or slow: 502 / 504 in PocketBase's envelope, the gateway stays up, and it
recovers by itself when PocketBase is back."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import GatewayProcess

from hapta_gen.dev.pbserver import PocketBaseServer, free_port
from hapta_gen.dev.seed import postly_schema

POSTS = "/api/collections/posts/records"


def _wait_status(client: httpx.Client, path: str, status: int, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(path)
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)  # poll interval against the deadline


def test_pocketbase_down_then_back(tmp_path: Path, gw_tmp: Path) -> None:
    data_dir, port = tmp_path / "pb_data", free_port()
    first = PocketBaseServer(data_dir=data_dir, port=port).start()
    try:
        first.import_collections(postly_schema())
        gateway = GatewayProcess(first.url, tmp=gw_tmp).start()
    except BaseException:
        first.stop()
        raise
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            assert client.get(POSTS).status_code == 200
            first.stop()
            down = client.get(POSTS + "?perPage=5")  # not cached: PocketBase must be asked
            assert down.status_code == 502
            assert down.json() == {"data": {}, "message": "PocketBase is unreachable.", "status": 502}
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["upstream"]["status"] == "down"
            assert client.get("/metrics").status_code == 200  # the gateway itself is fine
            with PocketBaseServer(data_dir=data_dir, port=port):
                back = _wait_status(client, POSTS, 200)
                assert back.status_code == 200, back.text
                assert client.get("/health").status_code == 200
    finally:
        gateway.stop()
        first.stop()


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """An address that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_slow_pocketbase_is_a_504(silent_upstream: str, gw_tmp: Path) -> None:
    gateway = GatewayProcess(silent_upstream, env={"HAPTA_UPSTREAM_TIMEOUT": "0.5"}, tmp=gw_tmp).start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            started = time.monotonic()
            resp = client.get(POSTS)
            assert resp.status_code == 504
            assert resp.json() == {"data": {}, "message": "PocketBase did not answer in time.", "status": 504}
            assert time.monotonic() - started < 5
            assert client.get("/metrics").status_code == 200
    finally:
        gateway.stop()
