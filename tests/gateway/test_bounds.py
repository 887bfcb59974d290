"""Bounded inputs (issue 6.4): what one client sends cannot grow the gateway without limit.

* request heads: size (431, 414 for a URL alone) and header count (431), and an unfinished
  head is cut at the bound, so a header flood leaves the gateway's memory where it was;
* client connections past ``HAPTA_MAX_CLIENTS``: 503;
* a head not whole within ``HAPTA_HEADER_TIMEOUT`` (nothing sent, or a header never ended): 408;
  a body whose next piece does not come within ``HAPTA_BODY_TIMEOUT``: the connection closed;
* realtime streams per client IP (429) and in total (503), refused before PocketBase is asked,
  and the slot given back when a client leaves;
* a huge body being checked does not stop other clients from being answered.

Every refusal is PocketBase's envelope. The gateways here run with small bounds of their own.
"""

from __future__ import annotations

import re
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from gateway_support import GENERATED, TRUSTED_PROXY, EventStream, GatewayProcess, wait_until

from hapta_gen.dev.pbserver import PocketBaseServer

MiB = 1024 * 1024


def _memory(pid: int, key: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} for {pid}")


def _envelope(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status and body["data"] == {} and body["message"], body
    return dict(body)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or the deadline)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def _flood_header(url: str, limit: int) -> tuple[int, bytes]:
    """Send one header that never ends, up to ``limit`` bytes, stopping as soon as the server
    answers; returns (bytes of header value sent, the answer)."""
    sock = _connect(url)
    try:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: gw\r\nX-Flood: ")
        chunk = b"a" * (64 * 1024)
        sent = 0
        while sent < limit:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        return sent, _read_response(sock)
    finally:
        sock.close()


@pytest.fixture(scope="module")
def bounded(gw_pb: PocketBaseServer, gw_tmp: Path) -> Iterator[GatewayProcess]:
    """A gateway with small stream and connection bounds (the trusted proxy is 127.0.0.2)."""
    env = {
        "HAPTA_TRUSTED_PROXIES": f"{TRUSTED_PROXY}/32",
        "HAPTA_MAX_STREAMS": "3",
        "HAPTA_MAX_STREAMS_PER_IP": "2",
    }
    process = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
    yield process
    process.stop()


# ----------------------------------------------------------------------------- heads


def test_header_flood_is_cut_and_memory_stays_bounded(
    gw_pb: PocketBaseServer, gw_tmp: Path
) -> None:
    """Three headers that never end: each is cut at the bound with a 431, and the gateway's
    peak memory (a fresh process, so its ``VmHWM`` is this test's) hardly moves."""
    process = GatewayProcess(gw_pb.url, tmp=gw_tmp).start()
    try:
        assert process.proc is not None
        pid = process.proc.pid
        before = _memory(pid, "VmRSS")
        answers: list[tuple[int, bytes]] = []
        floods = [
            threading.Thread(target=lambda: answers.append(_flood_header(process.url, 64 * MiB)))
            for _ in range(3)
        ]
        for flood in floods:
            flood.start()
        for flood in floods:
            flood.join(timeout=120)
        assert len(answers) == 3
        grown = _memory(pid, "VmHWM") - before
        assert grown < 100 * MiB, f"the gateway grew by {grown / MiB:.0f} MiB under the floods"
        for sent, answer in answers:
            assert sent < 8 * MiB, f"the server read {sent} bytes of one header"
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
            assert b"connection: close" in answer.lower()
            body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert body == {
                "data": {},
                "message": "Request header fields too large.",
                "status": 431,
            }
        assert httpx.get(f"{process.url}/api/health", timeout=10).status_code == 200
    finally:
        process.stop()


def _refused(base_url: str) -> dict[str, float]:
    """``hapta_refused_total`` by reason, from ``/metrics``."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    found = re.findall(r'^hapta_refused_total\{reason="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


def test_head_size_and_header_count_are_bounded(gw: httpx.Client) -> None:
    before = _refused(str(gw.base_url))
    # within the default bounds (64 KiB head, 100 headers): answered
    assert gw.get("/api/health", headers={"X-Big": "a" * 60_000}).status_code == 200
    many = {f"X-H{i}": "1" for i in range(90)}
    assert gw.get("/api/health", headers=many).status_code == 200
    # past them: 431, a URL alone past them 414
    _envelope(gw.get("/api/health", headers={"X-Big": "a" * 70_000}), 431)
    split = {f"X-Part{i}": "a" * 8_000 for i in range(9)}  # no header too large, the head is
    _envelope(gw.get("/api/health", headers=split), 431)
    _envelope(gw.get("/api/health", headers={f"X-H{i}": "1" for i in range(150)}), 431)
    long_url = b"/api/collections/posts/records?filter=" + b"a" * 70_000  # too long for httpx
    sock = _connect(str(gw.base_url))
    try:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: gw\r\n\r\n" % long_url)
        answer = _read_response(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == 414
    assert gw.get("/api/health").status_code == 200
    after = _refused(str(gw.base_url))  # each refusal counted, by reason
    assert after["head_too_large"] - before["head_too_large"] == 3
    assert after["uri_too_long"] - before["uri_too_long"] == 1


def test_pipelined_request_after_a_large_body_is_not_taken_for_a_large_head(
    gw: httpx.Client,
) -> None:
    """Head bytes are counted per request: a second request sent right behind a 300 KiB body
    (one write, read together with the body's end) is answered, not refused 431."""
    body = b'{"title": "' + b"a" * 300_000 + b'"}'
    first = (
        b"POST /api/collections/posts/records HTTP/1.1\r\nHost: gw\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    second = b"GET /api/health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    sock = _connect(str(gw.base_url))
    try:
        sock.sendall(first + second)
        answer = _read_response(sock)
    finally:
        sock.close()
    lines = answer.split(b"\r\n")
    statuses = [line.split(b" ")[1] for line in lines if line.startswith(b"HTTP/1.1 ")]
    assert statuses == [b"400", b"200"], answer[:500]


def test_connections_past_the_bound_get_503(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    process = GatewayProcess(gw_pb.url, env={"HAPTA_MAX_CLIENTS": "3"}, tmp=gw_tmp).start()
    clients = [httpx.Client(base_url=process.url, timeout=10) for _ in range(3)]
    try:
        for client in clients:  # three keep-alive connections, each served once
            assert client.get("/api/health").status_code == 200
        _envelope(httpx.get(f"{process.url}/api/health", timeout=10), 503)
        # a connection past the bound that sends nothing is answered and closed all the same
        idle = _connect(process.url)
        try:
            idle.settimeout(10)
            answer = b""
            while chunk := idle.recv(65536):  # until the gateway closes it (a timeout fails)
                answer += chunk
        finally:
            idle.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        for client in clients:  # the connections opened in time go on being served
            assert client.get("/api/health").status_code == 200
        clients.pop().close()
        wait_until(
            lambda: httpx.get(f"{process.url}/api/health", timeout=10).status_code == 200,
            what="a connection accepted again once one left",
        )
        assert _refused(process.url)["too_many_clients"] >= 2  # the two above, at least
    finally:
        for client in clients:
            client.close()
        process.stop()


def test_a_head_that_does_not_arrive_in_time_gets_408(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    process = GatewayProcess(gw_pb.url, env={"HAPTA_HEADER_TIMEOUT": "1"}, tmp=gw_tmp).start()
    silent = _connect(process.url)  # sends nothing at all
    slow = _connect(process.url)  # a header that never ends
    try:
        slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: gw\r\nX-Slow: a")
        with httpx.Client(base_url=process.url, timeout=10) as client:
            assert client.get("/api/health").status_code == 200  # others are served meanwhile
            for sock in (silent, slow):
                answer = _read_response(sock)  # until the gateway closes it (10 s at most)
                assert answer.startswith(b"HTTP/1.1 408 "), answer
                assert b"connection: close" in answer.lower()
                body = orjson.loads(answer.partition(b"\r\n\r\n")[2])
                assert body["status"] == 408 and body["data"] == {} and body["message"], body
            # a keep-alive connection idle between two requests (past the head time) is not cut
            assert client.get("/api/health").status_code == 200
        assert _refused(process.url)["head_timeout"] == 2
    finally:
        silent.close()
        slow.close()
        process.stop()


def test_a_body_that_stops_coming_closes_the_connection(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    process = GatewayProcess(gw_pb.url, env={"HAPTA_BODY_TIMEOUT": "1"}, tmp=gw_tmp).start()
    body = b'{"title":"' + b"t" * 38 + b'"}'
    head = b"POST /api/collections/posts/records HTTP/1.1\r\nHost: gw\r\n"
    head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    stalled = _connect(process.url)
    trickled = _connect(process.url)
    try:
        stalled.sendall(head + body[:10])  # and nothing more
        # a body that keeps coming, a piece every 0.4 s (2 s in all), is read to its end
        trickled.sendall(head.replace(b"Host: gw\r\n", b"Host: gw\r\nConnection: close\r\n"))
        for start in range(0, len(body), 10):
            threading.Event().wait(0.4)  # the pace is what is tested, not a readiness wait
            trickled.sendall(body[start : start + 10])
        answer = _read_response(trickled, timeout=10)
        assert re.match(rb"HTTP/1.1 (\d+) ", answer) and not answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"status"' in answer  # PocketBase's (or the gateway's) envelope: the body was read
        stalled.settimeout(10)
        assert stalled.recv(65536) == b""  # closed by the gateway, no answer (a timeout fails)
        wait_until(
            lambda: _refused(process.url).get("body_timeout") == 1, what="the stalled body counted"
        )
    finally:
        stalled.close()
        trickled.close()
        process.stop()


def test_open_file_budget_clamps_the_bounds() -> None:
    code = (
        "from gateway.filelimit import budget, open_file_limit\n"
        "assert open_file_limit() >= 64\n"
        "print(budget(1024, 100, 10000, 1000), budget(1 << 20, 100, 10000, 1000))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=GENERATED, capture_output=True, text=True, check=True
    ).stdout
    # 1024 handles: 64 kept, 100 pooled; a stream takes two (client and upstream)
    assert out.strip() == (
        "Budget(clients=430, streams=430) Budget(clients=10000, streams=1000)"
    )


# ----------------------------------------------------------------------------- streams


def _stream_status(url: str, forwarded: str | None = None) -> httpx.Response:
    """A realtime stream refused at once: its status and envelope (a stream that opens would
    not end, so only refusals are asked for this way)."""
    transport = httpx.HTTPTransport(local_address=TRUSTED_PROXY) if forwarded else None
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with (
        httpx.Client(transport=transport, timeout=10) as client,
        client.stream("GET", f"{url}/api/realtime", headers=headers) as resp,
    ):
        if resp.status_code == 200:
            raise AssertionError("the stream was opened")
        resp.read()
        return resp


def _from(ip: str, url: str) -> EventStream:
    return EventStream(url, headers={"X-Forwarded-For": ip}, local_address=TRUSTED_PROXY)


def test_streams_are_bounded_per_ip_and_in_total(bounded: GatewayProcess) -> None:
    url = bounded.url
    opened: list[EventStream] = []
    try:
        opened += [EventStream(url), EventStream(url)]  # 127.0.0.1 holds its two
        calls = bounded.upstream_calls()
        body = _envelope(_stream_status(url), 429)
        assert body["message"] == "Too Many Requests."
        assert bounded.upstream_calls() == calls  # refused before PocketBase was asked
        # behind the trusted proxy each forwarded client IP has its own two
        opened.append(_from("198.51.100.1", url))
        assert bounded.sse_clients() == 3
        calls = bounded.upstream_calls()
        _envelope(_stream_status(url, "198.51.100.2"), 503)  # the gateway holds its three
        _envelope(_stream_status(url, "198.51.100.1"), 503)
        assert bounded.upstream_calls() == calls
        # a client leaving gives its slot back
        opened.pop(0).close()
        wait_until(lambda: bounded.sse_clients() == 2, what="the stream's slot given back")
        opened.append(_from("198.51.100.2", url))
        assert bounded.sse_clients() == 3
    finally:
        for stream in opened:
            stream.close()
    wait_until(lambda: bounded.sse_clients() == 0, what="every stream closed")
    opened_again = EventStream(url)  # and 127.0.0.1 may open its streams again
    opened_again.close()


# ----------------------------------------------------------------------------- bodies


def _post_raw(url: str, path: str, body: bytes, content_type: bytes) -> socket.socket:
    """Send a whole request on a socket of its own (``Connection: close``, so the answer ends
    with the connection); the caller reads the answer."""
    sock = _connect(url)
    head = (
        b"POST %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: %s\r\n"
        b"Content-Length: %d\r\n\r\n" % (path.encode(), content_type, len(body))
    )
    sock.sendall(head + body)
    return sock


def _unsent(sock: socket.socket) -> int:
    """Bytes the kernel has not yet handed to the peer (``SIOCOUTQ``)."""
    import fcntl
    import struct
    import termios

    return int(struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"application/json", orjson.dumps({f"k{i}": 1 for i in range(2_000_000)})),
        (b"application/x-www-form-urlencoded", b"&".join(b"k%d=v" % i for i in range(2_000_000))),
    ],
    ids=["json-2M-keys", "form-2M-pairs"],
)
def test_others_are_answered_while_a_huge_body_is_checked(
    gateway: GatewayProcess, gw: httpx.Client, content_type: bytes, body: bytes
) -> None:
    """The big body's check (seconds of CPU) runs off the event loop: small requests sent
    after it arrived are answered before it is."""
    big = _post_raw(gateway.url, "/api/collections/posts/records", body, content_type)
    try:
        wait_until(lambda: _unsent(big) == 0, what="the big body delivered")
        answered = 0
        for _ in range(50):
            assert gw.get("/api/collections/posts/records?perPage=1").status_code == 200
            answered += 1
            if select.select([big], [], [], 0)[0]:
                break
        assert not select.select([big], [], [], 0)[0], (
            f"the big body was answered while only {answered} small requests were"
        )
        answer = _read_response(big, timeout=60)
    finally:
        big.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b'"message":"Failed to create record."' in answer


POSTS = "/api/collections/posts/records"
GOOD_POST = {"title": "Valid title", "status": "draft", "author": "usr000000000002"}
PAD = "x" * 100_000  # an unknown key PocketBase ignores, to take a body past 16 KiB


def _same_answer(small: httpx.Response, large: httpx.Response) -> None:
    assert (large.status_code, large.json()) == (small.status_code, small.json()), large.text


def test_large_bodies_get_the_answers_small_ones_get(
    gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str]
) -> None:
    """Checked in a worker (above 16 KiB) or inline, a body gets the same answer, field errors
    included, and a refused one never reaches PocketBase."""
    bob = {"Authorization": tokens["bob"]}
    calls = gateway.upstream_calls()
    cases = [
        ("json", POSTS, GOOD_POST | {"status": "archived"}),
        ("json", POSTS, {"status": "draft", "author": "usr000000000002"}),
        ("json", "/api/collections/attachments/records", {"title": "no file", "owner": "usr000000000002"}),
        ("data", POSTS, GOOD_POST | {"tags": ["go", "nope"]}),
    ]
    for kind, path, body in cases:
        small = gw.post(path, headers=bob, **{kind: body})
        large = gw.post(path, headers=bob, **{kind: body | {"pad": PAD}})
        assert small.status_code == 400, small.text
        _same_answer(small, large)
    upload = {"x": ("x.txt", b"unused")}
    multipart = GOOD_POST | {"status": "bogus"}
    small = gw.post(POSTS, data=multipart, files=upload, headers=bob)
    large = gw.post(POSTS, data=multipart | {"pad": PAD}, files=upload, headers=bob)
    _same_answer(small, large)
    item = {"method": "PATCH", "url": f"{POSTS}/pst000000000001", "body": {"status": "nope"}}
    small = gw.post("/api/batch", json={"requests": [item]}, headers=bob)
    item["body"] = {"status": "nope", "pad": PAD}
    large = gw.post("/api/batch", json={"requests": [item]}, headers=bob)
    _same_answer(small, large)
    topics = {"clientId": "some-id", "subscriptions": ["posts/*", "secrets/*"]}
    small = gw.post("/api/realtime", json=topics)
    large = gw.post("/api/realtime", json=topics | {"pad": PAD})
    _same_answer(small, large)
    assert gateway.upstream_calls() == calls, "PocketBase was asked"
    # and a large body that passes is forwarded as it came
    created = gw.post(POSTS, json=GOOD_POST | {"pad": PAD}, headers=bob)
    assert created.status_code == 200, created.text
    assert created.json()["title"] == GOOD_POST["title"]
    assert gw.delete(f"{POSTS}/{created.json()['id']}", headers=bob).status_code == 204


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            text = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        for child in map(int, text.split()):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_body_check_workers_do_not_outlive_the_gateway(
    gw_pb: PocketBaseServer, gw_tmp: Path, how: str
) -> None:
    process = GatewayProcess(gw_pb.url, tmp=gw_tmp).start()
    try:
        assert process.proc is not None
        body = orjson.dumps({f"k{i}": 1 for i in range(20_000)})  # above 16 KiB: a worker checks
        resp = httpx.post(
            f"{process.url}/api/collections/posts/records",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert resp.status_code == 400 and resp.json()["message"] == "Failed to create record."
        workers = _descendants(process.proc.pid)
        assert workers, "no worker process checked the body"
        if how == "killed":
            process.proc.kill()
            process.proc.wait(timeout=10)
    finally:
        process.stop()
    wait_until(
        lambda: not any(_alive(pid) for pid in workers),
        what=f"the gateway's workers gone once it was {how}",
    )
