"""The gateway's upstream client (``gateway.upstream``) against scripted servers: keep-alive,
framing, timeouts, the pool's bounds, and the faults that must never hand one client another
client's answer (1xx, unsolicited bytes, garbage)."""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from gateway_support import GENERATED
from scripted_upstream import Conn, Request, ScriptedServer, answer_each, chunked, forever, response

sys.path.insert(0, str(GENERATED))
try:
    from gateway import upstream  # the generated package, as `python -m gateway` runs it
finally:
    sys.path.remove(str(GENERATED))

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run one scenario; a scenario that hangs fails instead of stalling the suite."""
    return asyncio.run(asyncio.wait_for(main, 20))


def pool(url: str, **options: Any) -> upstream.Upstream:
    """A client with small timeouts (a failing test fails fast); ``options`` override them."""
    settings: dict[str, Any] = {"max_connections": 4, "connect_timeout": 2.0, "read_timeout": 5.0}
    return upstream.Upstream(url, **(settings | options))


async def get(client: upstream.Upstream, target: bytes = b"/", method: str = "GET") -> bytes:
    resp = await client.request(method, target, [])
    return await resp.read()


def echo_target(req: Request) -> bytes:
    return response(req.target.encode())


# ---------------------------------------------------------------- framing and keep-alive


def test_content_length_bodies_on_one_kept_alive_connection() -> None:
    async def main() -> None:
        async with ScriptedServer(lambda c: answer_each(c, echo_target)) as server:
            client = pool(server.url)
            resp = await client.request("GET", b"/a?x=1", [(b"x-test", b"yes")])
            assert (resp.status, await resp.read()) == (200, b"/a?x=1")
            assert await get(client, b"/b") == b"/b"
            assert len(server.conns) == 1
            first = server.conns[0].requests[0]
            assert first.headers["x-test"] == "yes"
            assert first.headers["host"] == server.url.removeprefix("http://")
            await client.aclose()

    run(main())


def test_chunked_body_in_several_writes() -> None:
    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            whole = chunked(b"hello ", b"chunked ", b"world")
            for i in range(0, len(whole), 7):  # the client must reassemble any split
                await conn.send(whole[i : i + 7])

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url)
            assert await get(client) == b"hello chunked world"
            assert await get(client) == b"hello chunked world"
            assert len(server.conns) == 1
            await client.aclose()

    run(main())


def test_head_has_no_body_and_the_next_request_is_answered() -> None:
    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            if req.method == "HEAD":
                await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
            else:
                await conn.send(response(b"after"))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url)
            resp = await client.request("HEAD", b"/", [])
            assert resp.status == 200
            assert (b"content-length", b"5") in resp.headers
            assert await resp.read() == b""
            assert await get(client) == b"after"
            await client.aclose()

    run(main())


def _closes_on_second_request(later: bytes) -> Any:
    """Connection 0 answers once, then closes when the next request arrives (the keep-alive
    race: the server dropped an idle connection the client was about to reuse)."""

    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(response(b"first"))
            await conn.request()
            conn.close()
            return
        await answer_each(conn, lambda _: response(later))

    return handler


def test_stale_keepalive_connection_retried_once_for_idempotent_request() -> None:
    async def main() -> None:
        async with ScriptedServer(_closes_on_second_request(b"fresh")) as server:
            client = pool(server.url)
            assert await get(client) == b"first"
            assert await get(client) == b"fresh"
            assert len(server.conns) == 2
            await client.aclose()

    run(main())


def test_stale_keepalive_connection_not_retried_for_post() -> None:
    async def main() -> None:
        async with ScriptedServer(_closes_on_second_request(b"fresh")) as server:
            client = pool(server.url)
            assert await get(client) == b"first"
            with pytest.raises(upstream.UpstreamError):
                await client.request("POST", b"/", [], b"{}")
            assert len(server.conns) == 1  # nothing was sent again
            assert [r.method for r in server.conns[0].requests] == ["GET", "POST"]
            await client.aclose()

    run(main())


# ---------------------------------------------------------------- timeouts and failures


def test_read_timeout() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await forever()

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, read_timeout=0.2)
            with pytest.raises(upstream.UpstreamTimeout):
                await get(client)
            await client.aclose()

    run(main())


def test_connection_refused_is_an_error_not_a_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    async def main() -> None:
        client = pool(f"http://127.0.0.1:{port}")
        with pytest.raises(upstream.UpstreamError) as caught:
            await get(client)
        assert not isinstance(caught.value, upstream.UpstreamTimeout)

    run(main())


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so connecting hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.5)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("the accept queue never filled up on this system")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout(full_backlog: int) -> None:
    async def main() -> None:
        client = pool(f"http://127.0.0.1:{full_backlog}", connect_timeout=0.2)
        with pytest.raises(upstream.UpstreamTimeout):
            await get(client)

    run(main())


def test_connection_closed_mid_body_fails_that_response_only() -> None:
    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
            return  # closed with 90 bytes missing
        await answer_each(conn, echo_target)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1)
            resp = await client.request("GET", b"/", [])
            with pytest.raises(upstream.UpstreamError):
                await resp.read()
            assert await get(client, b"/next") == b"/next"  # the one slot is free again
            await client.aclose()

    run(main())


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n",
    ],
    ids=["not-http", "bad-chunk", "unrequested-upgrade"],
)
def test_garbage_fails_that_request_only(garbage: bytes) -> None:
    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(garbage)
            await conn.closed_by_client()
            return
        await answer_each(conn, echo_target)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1)
            with pytest.raises(upstream.UpstreamError):
                await get(client, b"/bad")
            assert await get(client, b"/good") == b"/good"
            assert await get(client, b"/again") == b"/again"
            assert len(server.conns) == 2
            await client.aclose()

    run(main())


# ---------------------------------------------------------------- never the wrong answer


def test_interim_responses_are_skipped() -> None:
    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await conn.send(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
            await conn.send(response(req.target.encode(), headers=("x-final: yes",)))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url)
            for target in (b"/one", b"/two", b"/three"):
                resp = await client.request("GET", target, [])
                assert resp.status == 200
                assert await resp.read() == target
                names = [name for name, _ in resp.headers]
                assert b"x-final" in names and b"link" not in names
            assert len(server.conns) == 1
            await client.aclose()

    run(main())


def test_interim_response_in_the_same_packet_as_the_answer() -> None:
    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n" + response(req.target.encode()))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url)
            for target in (b"/one", b"/two"):
                resp = await client.request("GET", target, [])
                assert (resp.status, await resp.read()) == (200, target)
            await client.aclose()

    run(main())


def test_bytes_on_an_idle_connection_discard_it() -> None:
    stray = asyncio.Event()
    discarded = asyncio.Event()

    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(response(b"one"))
            await stray.wait()
            await conn.send(response(b"stray answer nobody asked for"))
            await conn.closed_by_client()
            discarded.set()
            return
        await answer_each(conn, lambda _: response(b"two"))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url)
            assert await get(client) == b"one"
            stray.set()
            await asyncio.wait_for(discarded.wait(), 5)  # the client closed that connection
            assert await get(client) == b"two"
            assert len(server.conns) == 2
            await client.aclose()

    run(main())


def test_bytes_after_the_answer_discard_the_connection() -> None:
    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(response(b"one") + response(b"stray"))
            await answer_each(conn, lambda _: response(b"wrong connection"))
            return
        await answer_each(conn, lambda _: response(b"two"))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url)
            resp = await client.request("GET", b"/", [])
            assert await resp.read() == b"one"
            assert [name for name, _ in resp.headers] == [b"content-length"]
            assert await get(client) == b"two"
            await client.aclose()

    run(main())


# ---------------------------------------------------------------- the pool's bounds


async def _holds_first_connection(conn: Conn) -> None:
    """Connection 0 sends a head and part of the body, then nothing; the others answer."""
    if conn.index == 0:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")
        await forever()
    await answer_each(conn, echo_target)


def test_waiting_for_a_pool_slot_is_bounded() -> None:
    async def main() -> None:
        async with ScriptedServer(_holds_first_connection) as server:
            client = pool(server.url, max_connections=1, pool_timeout=0.1)
            held = await client.request("GET", b"/slow", [])
            with pytest.raises(upstream.UpstreamBusy) as caught:
                await get(client)
            assert isinstance(caught.value, upstream.UpstreamError)
            held.close()
            assert await get(client, b"/free") == b"/free"
            await client.aclose()

    run(main())


def test_cancelled_while_waiting_for_the_head_releases_the_slot() -> None:
    asked = asyncio.Event()
    dropped = asyncio.Event()

    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            asked.set()
            await conn.closed_by_client()
            dropped.set()
            return
        await answer_each(conn, echo_target)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            caller = asyncio.create_task(get(client, b"/abandoned"))
            await asyncio.wait_for(asked.wait(), 5)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            await asyncio.wait_for(dropped.wait(), 5)  # that connection is closed, not reused
            assert await get(client, b"/next") == b"/next"
            assert len(server.conns) == 2
            await client.aclose()

    run(main())


def test_cancelled_while_reading_the_body_releases_the_slot() -> None:
    dropped = asyncio.Event()

    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")
            await conn.closed_by_client()
            dropped.set()
            return
        await answer_each(conn, echo_target)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            reading = asyncio.Event()

            async def consume() -> bytes:
                resp = await client.request("GET", b"/", [])
                reading.set()  # runs on into read() without yielding to the loop
                return await resp.read()

            caller = asyncio.create_task(consume())
            await reading.wait()
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            await asyncio.wait_for(dropped.wait(), 5)
            assert await get(client, b"/next") == b"/next"
            await client.aclose()

    run(main())


def test_spool_releases_the_connection_before_the_body_is_read() -> None:
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB: past the in-memory spool and the socket buffers

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            await conn.send(response(big if req.target == "/big" else b"small"))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            resp = await client.request("GET", b"/big", [])
            assert not resp.complete
            await resp.spool()
            assert resp.complete
            # The one pooled connection is free (and reused) while the big body is unread.
            assert await get(client, b"/small") == b"small"
            assert len(server.conns) == 1
            assert await resp.read() == big
            await client.aclose()

    run(main())


def test_spool_of_a_broken_body_fails_and_frees_the_slot() -> None:
    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
            return
        await answer_each(conn, echo_target)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            resp = await client.request("GET", b"/", [])
            with pytest.raises(upstream.UpstreamError):
                await resp.spool()
            assert await get(client, b"/next") == b"/next"
            await client.aclose()

    run(main())


def test_spool_that_cannot_write_its_file_frees_the_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = b"z" * (3 * 1024 * 1024)  # past the in-memory part: the spool needs a file

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            await conn.send(response(big if req.target == "/big" else b"small"))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            resp = await client.request("GET", b"/big", [])
            monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # a full disk, say
            with pytest.raises(OSError):
                await resp.spool()
            monkeypatch.undo()
            assert await get(client, b"/small") == b"small"
            assert len(server.conns) == 2  # the half-read connection was not reused
            await client.aclose()

    run(main())


def test_spool_of_a_complete_answer_keeps_its_body() -> None:
    async def main() -> None:
        async with ScriptedServer(lambda c: answer_each(c, echo_target)) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            resp = await client.request("GET", b"/whole", [])
            await resp.spool()
            assert await get(client, b"/other") == b"/other"
            assert await resp.read() == b"/whole"
            await client.aclose()

    run(main())


def test_read_or_spool_reads_small_answers_whole_and_spools_long_ones() -> None:
    big = bytes(range(256)) * 1024  # 256 KiB, sent in pieces

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            if req.target == "/big":
                await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for i in range(0, len(big), 16384):
                    piece = big[i : i + 16384]
                    await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                await conn.send(b"0\r\n\r\n")
            else:
                await conn.send(response(req.target.encode()))

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, max_connections=1, pool_timeout=1.0)
            small = await client.request("GET", b"/small", [])
            assert await small.read_or_spool(64 * 1024) == b"/small"
            resp = await client.request("GET", b"/big", [])
            assert await resp.read_or_spool(64 * 1024) is None  # past the limit: spooled
            # The one pooled connection is free again while the spooled body is unread.
            assert await get(client, b"/other") == b"/other"
            assert len(server.conns) == 1
            assert await resp.read() == big
            await client.aclose()

    run(main())


# ---------------------------------------------------------------- drip


async def _drip(conn: Conn, data: bytes) -> None:
    for i in range(len(data)):
        await conn.send(data[i : i + 1])
        await asyncio.sleep(0.02)  # pacing of the scripted drip, well inside the read timeout
    await forever()


def test_dripping_body_hits_the_deadline() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
        await _drip(conn, b"x" * 1_000_000)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, read_timeout=2.0, deadline=0.3)
            resp = await client.request("GET", b"/", [])
            with pytest.raises(upstream.UpstreamTimeout):
                await resp.read()
            await client.aclose()

    run(main())


def test_dripping_head_hits_the_deadline() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await _drip(conn, b"HTTP/1.1 200 OK\r\n" + b"x-pad: 0123456789\r\n" * 1000)

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, read_timeout=2.0, deadline=0.3)
            with pytest.raises(upstream.UpstreamTimeout):
                await client.request("GET", b"/", [])
            await client.aclose()

    run(main())


def test_stream_is_not_bound_by_the_deadline() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(30):  # lasts well past the deadline below
            await conn.send(b"1\r\nx\r\n")
            await asyncio.sleep(0.02)
        await conn.send(b"0\r\n\r\n")

    async def main() -> None:
        async with ScriptedServer(handler) as server:
            client = pool(server.url, deadline=0.1)
            resp = await client.stream("GET", b"/api/realtime", [])
            assert await resp.read() == b"x" * 30
            await client.aclose()

    run(main())
