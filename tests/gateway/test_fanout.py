"""Realtime fan-out (``fanout``, ``feed``): public topics are served from one upstream stream
per gateway process whatever the number of clients; a slow client is dropped without holding
the others; upstream rotation loses and repeats nothing; every stream gets heartbeats.

Connections are counted at PocketBase's end (``bench.tcpconns``, from ``/proc``); many clients
are asyncio streams in one thread (``bench.sseclient``). Waiting is against deadlines on what
the streams deliver, never with sleeps. Also: ``--workers 2`` and two nodes sharing a Valkey
(a subscription reaching another process than its stream's is passed to it), and a PocketBase
restart (clients get ``PB_CONNECT`` again, events resume).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from gateway_support import USER_IDS, GatewayProcess, auth, metric, wait_until
from valkey_support import valkey_server

from bench.sseclient import SSEClient, StreamEnded
from bench.tcpconns import client_ends, connections_between
from hapta_gen.dev.pbserver import PocketBaseServer, free_port
from hapta_gen.dev.seed import postly_schema, seed_postly

POSTS = "/api/collections/posts/records"
ATTACHMENTS = "/api/collections/attachments/records"


def pb_port(server: PocketBaseServer) -> int:
    port = urlsplit(server.url).port
    assert port is not None
    return port


@pytest.fixture
def fanout_gateway(gw_pb: PocketBaseServer, gw_tmp: Path, request: pytest.FixtureRequest) -> Iterator[GatewayProcess]:
    """A gateway of its own (no cache listener: its connections are the realtime ones and the
    pool's), with room for many streams from 127.0.0.1; ``request.param``: more settings."""
    env = {"HAPTA_CACHE": "off", "HAPTA_MAX_STREAMS_PER_IP": "400", "HAPTA_MAX_STREAMS": "400"}
    env |= getattr(request, "param", {})
    process = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
    yield process
    process.stop()


async def subscribe(client: httpx.AsyncClient, stream: SSEClient, topics: list[str], token: str | None = None) -> None:
    resp = await client.post("/api/realtime", json={"clientId": stream.client_id, "subscriptions": topics},
                             headers=auth(token))
    assert resp.status_code == 204, resp.text


async def record_event(stream: SSEClient, topic: str, record_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The next event of ``topic`` about ``record_id`` (others skipped), against a deadline."""
    async with asyncio.timeout(timeout):
        while True:
            name, data = await stream.next_event()
            message: dict[str, Any] = json.loads(data)
            if name == topic and message["record"]["id"] == record_id:
                return message


def write_post(pb: httpx.Client, token: str, title: str, **extra: Any) -> str:
    """A post written directly in PocketBase (as the superuser), never through the gateway."""
    body = {"title": title, "status": "draft", "author": USER_IDS["alice"], **extra}
    resp = pb.post(POSTS, json=body, headers=auth(token))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def test_two_hundred_clients_share_one_upstream_stream(
    fanout_gateway: GatewayProcess, gw_pb: PocketBaseServer, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    assert fanout_gateway.proc is not None
    port, pid = pb_port(gw_pb), fanout_gateway.proc.pid

    events_before = metric(fanout_gateway, "hapta_sse_events_total")

    async def scenario() -> tuple[int, int, int, list[dict[str, Any]]]:
        async with httpx.AsyncClient(base_url=fanout_gateway.url, timeout=30) as client:
            first = await SSEClient.open(fanout_gateway.url)
            await subscribe(client, first, ["posts/*"])
            one = connections_between(port, pid)
            rest = await asyncio.gather(*(SSEClient.open(fanout_gateway.url) for _ in range(199)))
            streams = [first, *rest]
            await asyncio.gather(*(subscribe(client, s, ["posts/*"]) for s in rest))
            many = connections_between(port, pid)
            upstream = int(metric(fanout_gateway, "hapta_upstream_streams"))
            post = await asyncio.to_thread(write_post, pb, tokens["superuser"], f"fan {secrets.token_hex(4)}")
            events = await asyncio.gather(*(record_event(s, "posts/*", post) for s in streams))
            for stream in streams:
                stream.close()
            assert pb.delete(f"{POSTS}/{post}", headers=auth(tokens["superuser"])).status_code == 204
            return one, many, upstream, events

    one, many, upstream, events = asyncio.run(scenario())
    assert upstream == 1  # one upstream realtime stream for 200 clients
    assert 1 <= many <= one  # PocketBase holds no more connections with 200 clients than with 1
    assert len(events) == 200 and all(e["action"] == "create" for e in events)
    assert metric(fanout_gateway, "hapta_sse_events_total") - events_before >= 200
    wait_until(lambda: metric(fanout_gateway, "hapta_sse_clients") == 0, what="every client released")


def test_one_client_naming_many_records_cannot_fill_the_shared_subscription(
    fanout_gateway: GatewayProcess, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """PocketBase takes 1,000 topics per subscription: a client naming 1,000 public records gets
    the ones past the shared subscription's bound on a stream of its own, and another client's
    ``posts/*`` is still shared and served."""

    async def scenario() -> tuple[dict[str, Any], float]:
        async with httpx.AsyncClient(base_url=fanout_gateway.url, timeout=30) as client:
            greedy = await SSEClient.open(fanout_gateway.url)
            await subscribe(client, greedy, [f"posts/{n:015d}" for n in range(1000)])
            other = await SSEClient.open(fanout_gateway.url)
            await subscribe(client, other, ["posts/*"])
            post = await asyncio.to_thread(write_post, pb, tokens["superuser"], "past the greedy")
            event = await record_event(other, "posts/*", post)
            upstream = metric(fanout_gateway, "hapta_upstream_streams", endpoint="realtime")
            greedy.close()
            other.close()
            assert pb.delete(f"{POSTS}/{post}", headers=auth(tokens["superuser"])).status_code == 204
            return event, upstream

    event, upstream = asyncio.run(scenario())
    assert event["action"] == "create"
    assert upstream == 2  # the shared stream, and the greedy client's own for what did not fit


@pytest.mark.parametrize("fanout_gateway", [{"HAPTA_SSE_BUFFER": "65536", "HAPTA_SEND_TIMEOUT": "3"}],
                         indirect=True)
def test_a_slow_client_is_dropped_and_the_others_keep_receiving(
    fanout_gateway: GatewayProcess, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """A client that stops reading (a 4 KiB receive buffer, never read) is dropped once more
    than ``HAPTA_SSE_BUFFER`` waits for it; a client that reads gets every event meanwhile."""
    pad = {"meta": {"pad": "x" * 100_000}}

    async def scenario() -> tuple[int, bool, float, float]:
        async with httpx.AsyncClient(base_url=fanout_gateway.url, timeout=30) as client:
            good = await SSEClient.open(fanout_gateway.url)
            slow = await SSEClient.open(fanout_gateway.url, rcvbuf=4096)
            await subscribe(client, good, ["posts/*"])
            await subscribe(client, slow, ["posts/*"])
            written: list[str] = []
            for n in range(60):
                post = await asyncio.to_thread(write_post, pb, tokens["superuser"], f"big {n}", **pad)
                written.append(post)
                await record_event(good, "posts/*", post)  # the reader keeps up throughout
                if metric(fanout_gateway, "hapta_sse_dropped_total") >= 1:
                    break
            after = await asyncio.to_thread(write_post, pb, tokens["superuser"], "after the drop")
            written.append(after)
            await record_event(good, "posts/*", after)
            ended = False
            try:
                async with asyncio.timeout(20):
                    while True:  # what was sent before the drop, then the end
                        await slow.next_event()
            except StreamEnded:
                ended = True
            dropped = metric(fanout_gateway, "hapta_sse_dropped_total")
            clients = metric(fanout_gateway, "hapta_sse_clients")
            good.close()
            slow.close()
            for post in written:
                pb.delete(f"{POSTS}/{post}", headers=auth(tokens["superuser"]))
            return len(written), ended, dropped, clients

    writes, ended, dropped, clients = asyncio.run(scenario())
    assert dropped == 1
    assert clients == 1  # the reader's stream is still open
    assert ended, "the slow client's connection stayed open"
    assert writes < 61


@pytest.mark.parametrize("fanout_gateway", [{"HAPTA_SSE_ROTATE": "1"}], indirect=True)
def test_rotation_loses_and_repeats_nothing(
    fanout_gateway: GatewayProcess, gw_pb: PocketBaseServer, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """Upstream streams rotated every second (shared, and a client's own): records written
    all along reach each client exactly once each. (Not necessarily in order: PocketBase itself
    may deliver two quick writes to one stream in either order.)"""
    assert fanout_gateway.proc is not None
    port, pid = pb_port(gw_pb), fanout_gateway.proc.pid
    private = "posts/*?options=" + json.dumps({"query": {"fields": "id"}}).replace(" ", "")

    async def scenario() -> tuple[list[str], list[str], list[str], set[str], set[str]]:
        async with httpx.AsyncClient(base_url=fanout_gateway.url, timeout=30) as client:
            shared = await SSEClient.open(fanout_gateway.url)
            own = await SSEClient.open(fanout_gateway.url)
            await subscribe(client, shared, ["posts/*"])
            await subscribe(client, own, [private])
            before = client_ends(port, pid)
            written: list[str] = []
            started = time.monotonic()
            while time.monotonic() - started < 3.5:  # a workload over several rotations
                written.append(await asyncio.to_thread(write_post, pb, tokens["superuser"], "rotating"))
            got: dict[str, list[str]] = {"posts/*": [], private: []}
            for stream, topic in ((shared, "posts/*"), (own, private)):
                async with asyncio.timeout(15):
                    while len(got[topic]) < len(written):
                        name, data = await stream.next_event()
                        if name == topic:
                            got[topic].append(json.loads(data)["record"]["id"])
            after = client_ends(port, pid)
            marker = await asyncio.to_thread(write_post, pb, tokens["superuser"], "marker")
            written.append(marker)
            for stream, topic in ((shared, "posts/*"), (own, private)):  # nothing more came
                async with asyncio.timeout(15):
                    while True:
                        name, data = await stream.next_event()
                        if name == topic:
                            got[topic].append(json.loads(data)["record"]["id"])
                            if got[topic][-1] == marker:
                                break
            shared.close()
            own.close()
            for post in written:
                pb.delete(f"{POSTS}/{post}", headers=auth(tokens["superuser"]))
            return written, got["posts/*"], got[private], before, after

    written, shared_got, own_got, before, after = asyncio.run(scenario())
    assert before - after, "no upstream connection was replaced"
    assert sorted(shared_got) == sorted(written), _difference(written, shared_got)
    assert sorted(own_got) == sorted(written), _difference(written, own_got)
    assert metric(fanout_gateway, "hapta_sse_dropped_total") == 0


@pytest.mark.parametrize("fanout_gateway", [{"HAPTA_SSE_HEARTBEAT": "0.2"}], indirect=True)
def test_idle_streams_get_heartbeats(fanout_gateway: GatewayProcess) -> None:
    async def scenario() -> tuple[str, str]:
        stream = await SSEClient.open(fanout_gateway.url)
        async with asyncio.timeout(10):
            found = await stream.next_event(comments=True)
        stream.close()
        return found

    assert asyncio.run(scenario()) == (":", "")


def _difference(written: list[str], got: list[str]) -> str:
    missing = [w for w in written if w not in got]
    repeated = sorted({g for g in got if got.count(g) > 1})
    first = next((i for i, (w, g) in enumerate(zip(written, got, strict=False)) if w != g), None)
    return f"missing {missing}, repeated {repeated}, first difference at {first} of {len(written)}"


def test_with_two_workers_a_subscription_reaches_the_worker_holding_the_stream(
    gw_pb: PocketBaseServer, gw_tmp: Path, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """``--workers 2``: a client's ``POST`` may be accepted by the other worker (a new
    connection each time here); it is passed to the stream's worker (``relay``), and every
    client receives its events. An unknown client id is still PocketBase's 404."""
    env = {"HAPTA_CACHE": "off", "HAPTA_MAX_STREAMS_PER_IP": "100"}
    gateway = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp, args=("--workers", "2")).start()

    async def scenario() -> tuple[list[int], int, list[dict[str, Any]]]:
        streams = await asyncio.gather(*(SSEClient.open(gateway.url) for _ in range(16)))
        statuses = []
        for stream in streams:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as fresh:  # a new connection
                resp = await fresh.post("/api/realtime", json={"clientId": stream.client_id, "subscriptions": ["posts/*"]})
                statuses.append(resp.status_code)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as fresh:
            unknown = await fresh.post("/api/realtime", json={"clientId": "x" * 40, "subscriptions": ["posts/*"]})
        post = await asyncio.to_thread(write_post, pb, tokens["superuser"], "two workers")
        events = await asyncio.gather(*(record_event(s, "posts/*", post) for s in streams))
        for stream in streams:
            stream.close()
        assert pb.delete(f"{POSTS}/{post}", headers=auth(tokens["superuser"])).status_code == 204
        return statuses, unknown.status_code, events

    try:
        statuses, unknown, events = asyncio.run(scenario())
    finally:
        gateway.stop()
    assert statuses == [204] * 16
    assert unknown == 404
    assert len(events) == 16
    assert len({e["record"]["id"] for e in events}) == 1


def test_across_nodes_a_subscription_reaches_the_node_holding_the_stream(
    gw_pb: PocketBaseServer, gw_tmp: Path, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """Two nodes sharing a Valkey (each its own temporary directory, so no Unix socket of the
    other's is in reach): a subscription made through the other node is passed on through
    Valkey, public and private topics alike; an id no node holds is PocketBase's 404."""
    with valkey_server() as url:
        nodes = []
        for name in ("a", "b"):
            tmp = gw_tmp / f"node-{name}-{secrets.token_hex(3)}"
            tmp.mkdir()
            env = {"HAPTA_CACHE": "off", "HAPTA_REDIS_URL": url, "TMPDIR": str(tmp)}
            nodes.append(GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start())
        a, b = nodes

        async def scenario() -> tuple[int, int, int, dict[str, Any], dict[str, Any]]:
            async with httpx.AsyncClient(base_url=b.url, timeout=30) as other:
                guest = await SSEClient.open(a.url)
                bob = await SSEClient.open(a.url)
                body = {"clientId": guest.client_id, "subscriptions": ["posts/*"]}
                public = (await other.post("/api/realtime", json=body)).status_code
                body = {"clientId": bob.client_id, "subscriptions": ["attachments/*"]}
                private = (await other.post("/api/realtime", json=body, headers=auth(tokens["bob"]))).status_code
                body = {"clientId": "ZZZZZZZZ" + "z" * 32, "subscriptions": ["posts/*"]}
                unknown = (await other.post("/api/realtime", json=body)).status_code
            post = await asyncio.to_thread(write_post, pb, tokens["superuser"], "across nodes")
            resp = await asyncio.to_thread(
                pb.post, ATTACHMENTS, data={"title": "bob's", "owner": USER_IDS["bob"]},
                files={"file": ("n.txt", b"for bob", "text/plain")}, headers=auth(tokens["bob"]))
            assert resp.status_code == 200, resp.text
            attachment = resp.json()["id"]
            seen_post = await record_event(guest, "posts/*", post)
            seen_attachment = await record_event(bob, "attachments/*", attachment)
            guest.close()
            bob.close()
            pb.delete(f"{POSTS}/{post}", headers=auth(tokens["superuser"]))
            pb.delete(f"{ATTACHMENTS}/{attachment}", headers=auth(tokens["bob"]))
            return public, private, unknown, seen_post, seen_attachment

        try:
            public, private, unknown, seen_post, seen_attachment = asyncio.run(scenario())
        finally:
            a.stop()
            b.stop()
    assert (public, private, unknown) == (204, 204, 404)
    assert seen_post["action"] == "create" and seen_attachment["action"] == "create"


def test_after_an_upstream_gap_clients_get_pb_connect_again_and_events_resume(
    tmp_path: Path, gw_tmp: Path
) -> None:
    """PocketBase restarted (its streams end from its side): the gateway resubscribes, shared
    and private, and then sends each client ``PB_CONNECT`` again with its same client id (the
    SDKs resubmit and re-read on it); a record written afterwards reaches both clients."""
    private = "posts/*?options=" + json.dumps({"query": {"fields": "id"}}).replace(" ", "")
    with PocketBaseServer(data_dir=tmp_path / "pb_data", port=free_port()) as server:
        server.import_collections(postly_schema())
        seed_postly(server)
        gateway = GatewayProcess(server.url, env={"HAPTA_CACHE": "off"}, tmp=gw_tmp).start()

        async def until_connect(stream: SSEClient) -> str:
            async with asyncio.timeout(60):
                while True:
                    name, data = await stream.next_event()
                    if name == "PB_CONNECT":
                        return str(json.loads(data)["clientId"])

        async def scenario() -> tuple[list[str], list[str], list[dict[str, Any]]]:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
                shared = await SSEClient.open(gateway.url)
                own = await SSEClient.open(gateway.url)
                await subscribe(client, shared, ["posts/*"])
                await subscribe(client, own, [private])
                ids = [shared.client_id, own.client_id]
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
                again = list(await asyncio.gather(until_connect(shared), until_connect(own)))
                with httpx.Client(base_url=server.url, timeout=30) as pb:
                    post = await asyncio.to_thread(write_post, pb, server.superuser_token(), "after the gap")
                events = list(await asyncio.gather(record_event(shared, "posts/*", post),
                                                   record_event(own, private, post)))
                shared.close()
                own.close()
                return ids, again, events

        try:
            ids, again, events = asyncio.run(scenario())
        finally:
            gateway.stop()
    assert again == ids
    assert [e["action"] for e in events] == ["create", "create"]
