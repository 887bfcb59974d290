"""Upstream faults PocketBase never produces, through the gateway: interim (1xx) answers, a
drip, a slow client on a large answer, and a full pool. The upstream is a scripted server; the
gateway has one pooled connection, so anything that held it would show."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gateway_support import GatewayProcess
from scripted_upstream import Conn, ServerThread, response

RECORD = "/api/collections/posts/records/"
BIG = hashlib.sha256(b"big").digest() * (16 * 1024 * 1024 // 32)  # past any socket buffer
HELD = threading.Event()


async def _drip(conn: Conn, data: bytes) -> None:
    for i in range(len(data)):
        await conn.send(data[i : i + 1])
        await asyncio.sleep(0.05)  # pacing of the scripted drip, well inside the read timeout


async def _pocketbase(conn: Conn) -> None:
    """Answers by the last path segment; anything else echoes the path as JSON."""
    while (req := await conn.request()) is not None:
        name = req.target.rsplit("/", 1)[-1]
        if name == "interim":
            await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await conn.send(b"HTTP/1.1 103 Early Hints\r\nlink: </evil>; rel=preload\r\n\r\n")
            await conn.send(response(b'{"id":"interim"}', headers=("content-type: application/json",)))
        elif name == "drip-head":
            await _drip(conn, b"HTTP/1.1 200 OK\r\n" + b"x-pad: 0123456789\r\n" * 1000)
        elif name == "drip-body":
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
            await _drip(conn, b"x" * 1_000_000)
        elif name == "big":
            await conn.send(response(BIG, headers=("content-type: application/octet-stream",)))
        elif name == "hold":
            HELD.set()
            await conn.closed_by_client()
            return
        else:
            body = b'{"path":"%s"}' % req.target.encode()
            await conn.send(response(body, headers=("content-type: application/json",)))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {
        "HAPTA_MAX_CONNECTIONS": "1",
        "HAPTA_POOL_TIMEOUT": "0.5",
        "HAPTA_UPSTREAM_TIMEOUT": "3",
        "HAPTA_UPSTREAM_DEADLINE": "2",
        "HAPTA_SEND_TIMEOUT": "8",  # the slow-client test reads only after a second request
    }
    with ServerThread(_pocketbase) as upstream:
        gateway = GatewayProcess(upstream.url, env=env, tmp=tmp_path_factory.mktemp("faults")).start()
        try:
            yield gateway
        finally:
            gateway.stop()


@pytest.fixture
def client(faulty: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=faulty.url, timeout=15) as c:
        yield c


def test_interim_answers_never_reach_the_client(client: httpx.Client) -> None:
    for _ in range(2):
        resp = client.get(RECORD + "interim")
        assert resp.status_code == 200
        assert resp.json() == {"id": "interim"}
        assert "link" not in resp.headers
        after = client.get(RECORD + "after")  # the same pooled connection, its own answer
        assert after.json() == {"path": RECORD + "after"}


@pytest.mark.parametrize("where", ["drip-head", "drip-body"])
def test_an_answer_that_drips_is_a_504(client: httpx.Client, where: str) -> None:
    resp = client.get(RECORD + where)
    assert resp.status_code == 504
    assert resp.json() == {"data": {}, "message": "PocketBase did not answer in time.", "status": 504}
    assert client.get(RECORD + "next").json() == {"path": RECORD + "next"}


def test_a_slow_client_does_not_hold_the_pooled_connection(client: httpx.Client) -> None:
    with client.stream("GET", RECORD + "big") as big:
        assert big.status_code == 200
        # Not a byte of the large answer read yet; the one pooled connection is free anyway.
        other = client.get(RECORD + "meanwhile")
        assert other.status_code == 200, other.text
        assert other.json() == {"path": RECORD + "meanwhile"}
        assert big.read() == BIG


def test_a_full_pool_is_a_503(client: httpx.Client, faulty: GatewayProcess) -> None:
    HELD.clear()
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(client.get, RECORD + "hold")
        assert HELD.wait(10)  # the gateway's one pooled connection is busy now
        busy = client.get(RECORD + "turned-away")
        assert busy.status_code == 503
        assert busy.json() == {"data": {}, "message": "The gateway is busy; try again shortly.", "status": 503}
        assert holder.result().status_code == 504  # the held request ends by its own bounds
    metrics = httpx.get(f"{faulty.url}/metrics", timeout=5).text
    assert 'hapta_upstream_requests_total{outcome="busy",route="records.view"} 1.0' in metrics
    assert client.get(RECORD + "later").status_code == 200


def test_a_client_that_stops_reading_is_dropped(faulty: GatewayProcess) -> None:
    """After ``HAPTA_SEND_TIMEOUT`` without progress the gateway closes the connection: the
    client then finds the answer cut short, and the gateway said why in its log."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", faulty.port))
    sock.sendall(f"GET {RECORD}big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    deadline = time.monotonic() + 30
    while "client stopped reading" not in faulty.log():
        assert time.monotonic() < deadline, faulty.log()[-2000:]
        time.sleep(0.1)  # polling the log for the event, with a deadline
    received = 0
    sock.settimeout(10)
    with sock:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    assert 0 < received < len(BIG)
