"""Typed SSE (``/sse/<collection>[/<id>]``) and Datastar (``/datastar/<collection>``) streams,
against a real PocketBase: events parse with the generated models, delivery follows the rules,
``Last-Event-ID`` resumes (or ``reset``), an upstream reconnect loses nothing written after it,
tickets are single-use and short-lived, slow clients are dropped, and the demo page updates in a
real (headless) browser."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import USER_IDS, GatewayProcess, auth, metric, wait_until
from sse_support import SseReader

from hapta_gen.dev.pbserver import PocketBaseServer, free_port

GENERATED = Path(__file__).resolve().parents[2] / "generated"
POSTS = "/api/collections/posts/records"
ATTACHMENTS = "/api/collections/attachments/records"
HEARTBEAT = 0.3
TICKET_TTL = 2.0
SETTINGS = {
    "HAPTA_SSE_HEARTBEAT": str(HEARTBEAT),
    "HAPTA_SSE_CLIENT_BUFFER": "4",
    "HAPTA_SSE_RESUME_WINDOW": "3",
    "HAPTA_SSE_TICKET_TTL": str(TICKET_TTL),
    "HAPTA_SEND_TIMEOUT": "5",
    "HAPTA_DEMO_PAGES": "true",
    "HAPTA_CACHE": "off",
}


@pytest.fixture(scope="module")
def sse_gw(gw_pb: PocketBaseServer, gw_tmp: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(gw_pb.url, env=SETTINGS, tmp=gw_tmp).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def gwc(sse_gw: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sse_gw.url, timeout=30) as client:
        yield client


def opened(reader: SseReader) -> str:
    """The id the stream starts at (its first block: an ``id:`` alone)."""
    assert reader.response.status_code == 200, reader.response.text
    assert reader.response.headers["content-type"] == "text/event-stream"
    block = reader.next(lambda b: "id" in b and "event" not in b)
    return block["id"]


def create_post(client: httpx.Client, token: str, author: str, title: str, body: str = "") -> dict[str, Any]:
    resp = client.post(POSTS, json={"title": title, "status": "draft", "author": USER_IDS[author], "body": body},
                       headers=auth(token))
    assert resp.status_code == 200, resp.text
    record: dict[str, Any] = resp.json()
    return record


def models() -> Any:
    import sys

    if str(GENERATED) not in sys.path:
        sys.path.insert(0, str(GENERATED))
    import gateway.models as generated

    return generated


# ----------------------------------------------------------------------------- typed SSE


def test_typed_events_parse_with_the_generated_models(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    posts_record = models().PostsRecord
    with SseReader(f"{sse_gw.url}/sse/posts") as stream:
        start = opened(stream)
        post = create_post(gwc, tokens["alice"], "alice", f"typed {secrets.token_hex(4)}")
        with SseReader(f"{sse_gw.url}/sse/posts/{post['id']}") as one:
            opened(one)
            block, data = stream.record_event(post["id"])
            assert block["event"] == "create" and data["action"] == "create"
            assert block["id"].split("-")[0] == start.split("-")[0] and block["id"] != start
            record = posts_record.model_validate(data["record"])
            assert record.id == post["id"] and record.title == post["title"]
            resp = gwc.patch(f"{POSTS}/{post['id']}", json={"title": "typed, renamed"},
                             headers=auth(tokens["alice"]))
            assert resp.status_code == 200, resp.text
            for reader in (stream, one):
                block, data = reader.record_event(post["id"])
                assert block["event"] == "update" and "id" in block
                assert posts_record.model_validate(data["record"]).title == "typed, renamed"
            assert gwc.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"])).status_code == 204
            block, data = stream.record_event(post["id"])
            assert block["event"] == "delete" and data["action"] == "delete"
            posts_record.model_validate(data["record"])
            assert metric(sse_gw, "hapta_sse_events_total", endpoint="sse") >= 4  # 3 on one stream, 1 (at least) on the other
            # a heartbeat comment comes when nothing happens
            assert stream.next(lambda b: "comment" in b, timeout=HEARTBEAT * 20)["comment"] == "heartbeat"


def test_owner_only_events_reach_the_owner_only(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    url = f"{sse_gw.url}/sse/attachments"
    with SseReader(url) as guest, SseReader(url, headers=auth(tokens["alice"])) as other, \
            SseReader(url, headers=auth(tokens["bob"])) as owner:
        for reader in (guest, other, owner):
            opened(reader)
        resp = gwc.post(ATTACHMENTS, data={"title": "mine", "owner": USER_IDS["bob"]},
                        files={"file": ("note.txt", b"only for bob", "text/plain")}, headers=auth(tokens["bob"]))
        assert resp.status_code == 200, resp.text
        attachment = resp.json()
        block, data = owner.record_event(attachment["id"])
        assert block["event"] == "create"
        assert models().AttachmentsRecord.model_validate(data["record"]).owner == USER_IDS["bob"]
        for reader in (guest, other):  # two heartbeats after the owner had it: nothing else came
            reader.next(lambda b: "comment" in b, timeout=HEARTBEAT * 20)
            reader.next(lambda b: "comment" in b, timeout=HEARTBEAT * 20)
            assert [b for b in reader.received() if "event" in b] == []
    assert gwc.delete(f"{ATTACHMENTS}/{attachment['id']}", headers=auth(tokens["bob"])).status_code == 204


def test_queries_are_checked_like_a_list(sse_gw: GatewayProcess, gwc: httpx.Client) -> None:
    resp = gwc.get("/sse/posts", params={"filter": "@collection.nope.id != ''"})
    assert resp.status_code == 400 and "filter" in resp.json()["data"]
    resp = gwc.get("/sse/posts", params={"expand": "nope"})
    assert resp.status_code == 400 and "expand" in resp.json()["data"]
    assert gwc.get("/sse/nope").status_code == 404  # unknown or excluded: never reachable
    assert gwc.get("/datastar/nope").status_code == 404
    assert gwc.get("/sse/posts/x/y").status_code == 404
    # a record id carrying topic syntax (decoded from %3F) would smuggle ?options= past the checks
    smuggled = '/sse/posts/abc%3Foptions=%7B%22query%22:%7B%22expand%22:%22nope%22%7D%7D'
    before = sse_gw.upstream_calls()
    assert gwc.get(smuggled).status_code == 404
    assert gwc.get("/sse/posts/abc%23x").status_code == 404
    assert sse_gw.upstream_calls() == before


def test_filter_and_fields_shape_the_events(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    tag = secrets.token_hex(4)
    query = f"filter=title~'{tag}'&fields=id,title"
    with SseReader(f"{sse_gw.url}/sse/posts?{query}") as stream:
        opened(stream)
        other = create_post(gwc, tokens["alice"], "alice", "not matching")
        mine = create_post(gwc, tokens["alice"], "alice", f"matching {tag}")
        _, data = stream.record_event(mine["id"])
        assert data["record"] == {"id": mine["id"], "title": mine["title"]}
        assert [b for b in stream.received() if other["id"] in b.get("data", "")] == []
    for post in (other, mine):
        assert gwc.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"])).status_code == 204


def test_last_event_id_resumes_or_resets(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    with SseReader(f"{sse_gw.url}/sse/posts") as first:
        start = opened(first)
    post = create_post(gwc, tokens["alice"], "alice", f"while away {secrets.token_hex(4)}")
    epoch, seq = start.split("-")
    with SseReader(f"{sse_gw.url}/sse/posts", headers={"Last-Event-ID": start}) as again:
        block = again.next()  # (earlier tests' deletes may still be arriving: any event counts)
        assert block["event"] != "reset" and block["id"] == f"{epoch}-{int(seq) + 1}"  # resumed
        if post["id"] not in block["data"]:
            block = again.record_event(post["id"])[0]
        assert block["event"] == "create" and block["id"].startswith(epoch + "-")
    with SseReader(f"{sse_gw.url}/sse/posts", headers={"Last-Event-ID": "gone-7"}) as lost:
        block = lost.next()
        assert block["event"] == "reset" and block["id"].startswith(epoch + "-")
    with SseReader(f"{sse_gw.url}/sse/posts?lastEventId={epoch}-999999") as ahead:
        assert ahead.next()["event"] == "reset"
    with SseReader(f"{sse_gw.url}/sse/posts") as watcher:
        mark = opened(watcher)
        more = [create_post(gwc, tokens["alice"], "alice", f"many {i}") for i in range(5)]
        for one in more:
            watcher.record_event(one["id"])  # the feed has them all
    with SseReader(f"{sse_gw.url}/sse/posts", headers={"Last-Event-ID": mark}) as behind:
        assert behind.next()["event"] == "reset"  # more than its buffer (4) missed: re-read
    for one in [post, *more]:
        assert gwc.delete(f"{POSTS}/{one['id']}", headers=auth(tokens["alice"])).status_code == 204


def test_tickets_are_single_use_and_expire(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    assert gwc.post("/sse/ticket").status_code == 401
    # tickets are bounded in number; a credential far longer than any token is refused
    huge = gwc.post("/sse/ticket", headers={"Authorization": "x" * 5000})
    assert huge.status_code == 400 and huge.json()["message"] == "The authorization token is too long for a stream ticket."
    resp = gwc.post("/sse/ticket", headers=auth(tokens["bob"]))
    assert resp.status_code == 200, resp.text
    ticket = resp.json()["ticket"]
    assert set(resp.json()) == {"ticket", "expires"} and tokens["bob"] not in resp.text
    assert tokens["bob"].split(".")[1] not in ticket
    with SseReader(f"{sse_gw.url}/sse/attachments?ticket={ticket}") as owner:
        opened(owner)
        resp = gwc.post(ATTACHMENTS, data={"title": "ticketed", "owner": USER_IDS["bob"]},
                        files={"file": ("t.txt", b"x", "text/plain")}, headers=auth(tokens["bob"]))
        assert resp.status_code == 200, resp.text
        attachment = resp.json()
        assert owner.record_event(attachment["id"])[0]["event"] == "create"  # bob's credential
    reused = gwc.get("/sse/attachments", params={"ticket": ticket})
    assert reused.status_code == 401 and reused.json()["status"] == 401
    both = gwc.post("/sse/ticket", headers=auth(tokens["bob"])).json()["ticket"]
    assert gwc.get("/sse/posts", params={"ticket": both}, headers=auth(tokens["bob"])).status_code == 400
    late = gwc.post("/sse/ticket", headers=auth(tokens["bob"])).json()
    expires = time.time() + TICKET_TTL
    wait_until(lambda: time.time() > expires + 0.2, timeout=TICKET_TTL + 5, what="the ticket's expiry")
    assert gwc.get("/sse/posts", params={"ticket": late["ticket"]}).status_code == 401
    assert gwc.delete(f"{ATTACHMENTS}/{attachment['id']}", headers=auth(tokens["bob"])).status_code == 204


def test_a_slow_client_is_dropped_and_the_others_keep_receiving(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    dropped = metric(sse_gw, "hapta_sse_dropped_total", endpoint="sse")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", sse_gw.port))
    slow.sendall(b"GET /sse/posts HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
    created: list[dict[str, Any]] = []
    try:
        with SseReader(f"{sse_gw.url}/sse/posts") as good:
            opened(good)
            body = "x" * 90_000
            for i in range(150):
                created.append(create_post(gwc, tokens["alice"], "alice", f"flood {i}", body))
                good.record_event(created[-1]["id"])  # every one arrives
                if metric(sse_gw, "hapta_sse_dropped_total", endpoint="sse") > dropped:
                    break
            wait_until(lambda: metric(sse_gw, "hapta_sse_dropped_total", endpoint="sse") > dropped,
                       what="the slow client dropped")
            last = create_post(gwc, tokens["alice"], "alice", "after the drop")
            created.append(last)
            assert good.record_event(last["id"])[0]["event"] == "create"
    finally:
        slow.close()
        for post in created:
            gwc.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"]))


def test_disconnects_free_the_clients_and_then_the_upstream(
    sse_gw: GatewayProcess, gwc: httpx.Client
) -> None:
    with SseReader(f"{sse_gw.url}/sse/comments") as stream:
        opened(stream)
        assert metric(sse_gw, "hapta_sse_clients", endpoint="sse") >= 1
        assert metric(sse_gw, "hapta_upstream_streams", endpoint="sse") >= 1
    wait_until(lambda: metric(sse_gw, "hapta_sse_clients", endpoint="sse") == 0, what="the client gone")
    wait_until(lambda: metric(sse_gw, "hapta_upstream_streams", endpoint="sse") == 0, timeout=20,
               what="the upstream streams closed after the resume window")


# ----------------------------------------------------------------------------- reconnect


class CuttingProxy:
    """A TCP proxy to PocketBase on a thread of its own; ``cut_streams`` closes every proxied
    connection that carries a realtime stream (``GET /api/realtime``), as a network fault or
    PocketBase's own 30-minute cap would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._streams: set[asyncio.StreamWriter] = set()
        #: Realtime streams opened through the proxy so far.
        self.opened = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, watch: bool) -> None:
            try:
                while data := await src.read(65536):
                    if watch and data.startswith(b"GET /api/realtime"):
                        self._streams.update({writer, up_writer})
                        self.opened += 1
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def cut_streams(self) -> int:
        async def cut() -> int:
            streams, self._streams = self._streams, set()
            for writer in streams:
                writer.transport.abort()
            return len(streams)

        return asyncio.run_coroutine_threadsafe(cut(), self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def test_the_stream_survives_an_upstream_reconnect(
    gw_pb: PocketBaseServer, gw_tmp: Path, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    proxy = CuttingProxy(int(gw_pb.url.rsplit(":", 1)[1]))
    gateway = GatewayProcess(f"http://127.0.0.1:{proxy.port}", env=SETTINGS, tmp=gw_tmp).start()
    created: list[dict[str, Any]] = []
    try:
        with SseReader(f"{gateway.url}/sse/posts") as stream:
            opened(stream)
            before = create_post(pb, tokens["alice"], "alice", "before the cut")
            created.append(before)
            assert stream.record_event(before["id"])[0]["event"] == "create"
            assert proxy.cut_streams() >= 2
            reset = stream.next()  # the feed subscribed again: events may have been missed
            assert reset["event"] == "reset" and "id" in reset
            after = create_post(pb, tokens["alice"], "alice", "after the cut")  # written in PocketBase
            created.append(after)
            block, data = stream.record_event(after["id"])
            assert block["event"] == "create" and data["record"]["title"] == "after the cut"
            assert not stream.ended.is_set()
    finally:
        gateway.stop()
        proxy.close()
        for post in created:
            pb.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"]))


# ----------------------------------------------------------------------------- Datastar


def datastar_event(block: dict[str, str]) -> dict[str, Any]:
    """A Datastar event's data lines as ``{key: value}`` (``elements`` joined by newlines)."""
    out: dict[str, Any] = {}
    for line in block["data"].split("\n"):
        key, _, value = line.partition(" ")
        out[key] = out[key] + "\n" + value if key in out else value
    return out


def test_datastar_events_are_valid_datastar_sse(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    total = gwc.get(POSTS, params={"perPage": 1}).json()["totalItems"]
    with SseReader(f"{sse_gw.url}/datastar/posts") as stream:
        assert stream.response.headers["content-type"] == "text/event-stream"
        first = stream.next()
        assert first["event"] == "datastar-patch-elements"
        patch = datastar_event(first)
        assert patch["selector"] == "#posts-records" and patch["mode"] == "inner"
        assert patch["elements"].count('class="hapta-record"') == min(total, 100)
        signals = stream.next()
        assert signals["event"] == "datastar-patch-signals"
        assert json.loads(datastar_event(signals)["signals"]) == {"posts": {"count": total}}
        post = create_post(gwc, tokens["alice"], "alice", "<b>escaped</b> live")
        created = stream.next(lambda b: post["id"] in b.get("data", ""))
        patch = datastar_event(created)
        assert created["event"] == "datastar-patch-elements" and patch["mode"] == "prepend"
        assert f'id="posts-{post["id"]}"' in patch["elements"]
        assert "&lt;b&gt;escaped&lt;/b&gt; live" in patch["elements"] and "<b>" not in patch["elements"]
        counted = stream.next(lambda b: b.get("event") == "datastar-patch-signals")
        assert json.loads(datastar_event(counted)["signals"]) == {"posts": {"count": total + 1}}
        assert gwc.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"])).status_code == 204
        removed = stream.next(lambda b: post["id"] in b.get("data", ""))
        patch = datastar_event(removed)
        assert patch["mode"] == "remove" and patch["selector"] == f"#posts-{post['id']}"
        counted = stream.next(lambda b: b.get("event") == "datastar-patch-signals")
        assert json.loads(datastar_event(counted)["signals"]) == {"posts": {"count": total}}


def test_datastar_keeps_record_ids_when_fields_leave_them_out(
    sse_gw: GatewayProcess, gwc: httpx.Client, tokens: dict[str, str]
) -> None:
    total = min(gwc.get(POSTS, params={"perPage": 1}).json()["totalItems"], 100)
    with SseReader(f"{sse_gw.url}/datastar/posts?fields=title") as stream:
        elements = datastar_event(stream.next())["elements"]
        assert len(re.findall(r'id="posts-[a-z0-9]+"', elements)) == total
        post = create_post(gwc, tokens["alice"], "alice", "fields without id")
        created = datastar_event(stream.next(lambda b: post["id"] in b.get("data", "")))
        assert f'id="posts-{post["id"]}"' in created["elements"]
        assert gwc.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"])).status_code == 204


def test_the_demo_page_updates_in_a_headless_browser(
    sse_gw: GatewayProcess, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    from playwright.sync_api import sync_playwright

    script = httpx.get(f"{sse_gw.url}/static/datastar.js", timeout=5)
    assert script.status_code == 200 and "datastar-patch-elements" in script.text
    title = f"seen in a browser {secrets.token_hex(4)}"
    post: dict[str, Any] | None = None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{sse_gw.url}/demo/live/posts")
            page.wait_for_selector("#posts-records li.hapta-record", timeout=15_000)
            count = int(page.inner_text("#hapta-count"))
            assert count == pb.get(POSTS, params={"perPage": 1}).json()["totalItems"]
            post = create_post(pb, tokens["alice"], "alice", title)  # written in PocketBase directly
            page.wait_for_selector(f"#posts-{post['id']}", timeout=15_000)
            assert title in page.inner_text(f"#posts-{post['id']}")
            page.wait_for_function(f"document.getElementById('hapta-count').innerText == '{count + 1}'",
                                   timeout=15_000)
            assert pb.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"])).status_code == 204
            page.wait_for_selector(f"#posts-{post['id']}", state="detached", timeout=15_000)
            post = None
        finally:
            browser.close()
            if post is not None:
                pb.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"]))


# ----------------------------------------------------------------------------- rotation, sessions


def test_rotation_replaces_the_upstream_subscription_unnoticed(
    gw_pb: PocketBaseServer, gw_tmp: Path, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """With ``HAPTA_SSE_ROTATE=1`` the feed makes a fresh upstream subscription every second
    (both read for a moment): posts written all along arrive once each, in order, no ``reset``."""
    proxy = CuttingProxy(int(gw_pb.url.rsplit(":", 1)[1]))
    gateway = GatewayProcess(f"http://127.0.0.1:{proxy.port}", env={**SETTINGS, "HAPTA_SSE_ROTATE": "1"},
                             tmp=gw_tmp).start()
    created: list[dict[str, Any]] = []
    try:
        with SseReader(f"{gateway.url}/sse/posts") as stream:
            opened(stream)
            deadline = time.monotonic() + 4.5  # several rotations
            while time.monotonic() < deadline:
                created.append(create_post(pb, tokens["alice"], "alice", f"rotating {len(created)}"))
                stream.record_event(created[-1]["id"])  # each arrives before the next is written
            last = create_post(pb, tokens["alice"], "alice", "the last")
            created.append(last)
            stream.record_event(last["id"])
            events = [b for b in stream.received() if "event" in b]
            ids = [json.loads(b["data"])["record"]["id"] for b in events if b["event"] == "create"]
            assert ids == [post["id"] for post in created], events  # each once, in order
            assert all(b["event"] == "create" for b in events), events  # no reset came along
            assert len(created) >= 5
            assert proxy.opened >= 3  # the subscription was replaced, twice at least
    finally:
        gateway.stop()
        proxy.close()
        for post in created:
            pb.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"]))


def test_rolling_session_keys_open_streams_and_get_tickets(
    gw_pb: PocketBaseServer, gw_tmp: Path, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    from gateway_support import PASSWORDS

    gateway = GatewayProcess(gw_pb.url, env={**SETTINGS, "HAPTA_SESSIONS": "rolling"}, tmp=gw_tmp).start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            login = client.post("/api/collections/users/auth-with-password",
                                json={"identity": "bob@postly.test", "password": PASSWORDS["bob"]})
            assert login.status_code == 200, login.text
            key = login.json()["token"]
            assert key != tokens["bob"]
            assert client.post("/sse/ticket", headers=auth("not-a-key")).status_code == 401
            assert client.get("/sse/attachments", headers=auth(tokens["bob"])).status_code == 401  # raw token
            ticket = client.post("/sse/ticket", headers=auth(key)).json()["ticket"]
            url = f"{gateway.url}/sse/attachments"
            with SseReader(url, headers=auth(key)) as by_key, SseReader(f"{url}?ticket={ticket}") as by_ticket:
                opened(by_key)
                opened(by_ticket)
                resp = pb.post(ATTACHMENTS, data={"title": "rolling", "owner": USER_IDS["bob"]},
                               files={"file": ("r.txt", b"r", "text/plain")}, headers=auth(tokens["bob"]))
                assert resp.status_code == 200, resp.text
                attachment = resp.json()
                for reader in (by_key, by_ticket):
                    assert reader.record_event(attachment["id"])[0]["event"] == "create"
                # a logout revokes the family: both streams made with it end (not re-opened with
                # the PocketBase token the gateway still holds for them)
                assert client.post("/api/hapta/logout", headers=auth(key)).status_code == 204
                for reader in (by_key, by_ticket):
                    assert reader.ended.wait(15), "a stream outlived its session's logout"
            assert pb.delete(f"{ATTACHMENTS}/{attachment['id']}", headers=auth(tokens["bob"])).status_code == 204
    finally:
        gateway.stop()


def test_tickets_in_valkey_are_redeemed_on_any_node_once(
    gw_pb: PocketBaseServer, gw_tmp: Path, tokens: dict[str, str]
) -> None:
    from valkey_support import valkey_server

    with valkey_server() as url:
        env = {**SETTINGS, "HAPTA_REDIS_URL": url}
        one = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
        two = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
        try:
            resp = httpx.post(f"{one.url}/sse/ticket", headers=auth(tokens["bob"]), timeout=10)
            assert resp.status_code == 200, resp.text
            ticket = resp.json()["ticket"]
            with SseReader(f"{two.url}/sse/posts?ticket={ticket}") as stream:  # the other node
                opened(stream)
            for node in (one, two):  # spent, everywhere
                assert httpx.get(f"{node.url}/sse/posts", params={"ticket": ticket}, timeout=10).status_code == 401
        finally:
            one.stop()
            two.stop()


def test_streams_end_at_once_on_shutdown(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    """A SIGTERM ends typed and Datastar streams at once (clients reconnect elsewhere), not after
    the graceful timeout."""
    import signal

    gateway = GatewayProcess(gw_pb.url, env=SETTINGS, tmp=gw_tmp).start()
    assert gateway.proc is not None
    readers = [SseReader(f"{gateway.url}/sse/posts"), SseReader(f"{gateway.url}/datastar/posts")]
    try:
        opened(readers[0])
        readers[1].next()
        gateway.proc.send_signal(signal.SIGTERM)
        for reader in readers:
            assert reader.ended.wait(5), "the stream stayed open after SIGTERM"
        assert gateway.proc.wait(timeout=8) in (0, -signal.SIGTERM)
    finally:
        for reader in readers:
            reader.close()
        gateway.stop()


def test_fragment_templates_can_be_overridden(gw_pb: PocketBaseServer, gw_tmp: Path) -> None:
    """``HAPTA_FRAGMENTS_DIR/<collection>.html`` shadows the generated fragment; ``fields``
    leaving a key out prints nothing for it."""
    own = gw_tmp / "fragments"
    own.mkdir(exist_ok=True)
    (own / "posts.html").write_text('<li id="{{ element_id }}" class="mine">{{ record.title | value }}'
                                    '|{{ record.views | value }}|{{ record.tags | value }}</li>')
    gateway = GatewayProcess(gw_pb.url, env={**SETTINGS, "HAPTA_FRAGMENTS_DIR": str(own)}, tmp=gw_tmp).start()
    try:
        with SseReader(f"{gateway.url}/datastar/posts?fields=id,title,tags&filter=slug='go-vs-python'") as stream:
            elements = datastar_event(stream.next())["elements"]
            assert elements == '<li id="posts-pst000000000002" class="mine">Go vs Python for gateways||[&#34;go&#34;,&#34;python&#34;]</li>'
    finally:
        gateway.stop()
