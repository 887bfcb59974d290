"""Realtime through the gateway, which answers PocketBase's protocol itself: ``GET /api/realtime``
streams the events (public topics from one shared upstream subscription, other topics from the
client's own upstream stream, made with its token and client IP, so PocketBase decides what it
receives); ``POST /api/realtime`` is checked, then answered as PocketBase answers it.

Waiting is done against deadlines on what the stream delivers, never with sleeps. A negative
("this client got nothing") is read after a later public event has reached the same client.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from gateway_support import (
    TRUSTED_PROXY,
    USER_IDS,
    EventStream,
    GatewayProcess,
    auth,
    metric,
    same,
    wait_until,
)

from hapta_gen.dev.pbserver import PocketBaseServer

POSTS = "/api/collections/posts/records"
ATTACHMENTS = "/api/collections/attachments/records"


@pytest.fixture
def stream(gateway: GatewayProcess) -> Iterator[EventStream]:
    with EventStream(gateway.url) as opened:
        yield opened


def subscribe(client: httpx.Client, stream: EventStream, topics: list[str], token: str | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/api/realtime", json={"clientId": stream.client_id, "subscriptions": topics},
                       headers=auth(token) | (headers or {}))


def create_post(gw: httpx.Client, token: str, author: str, title: str) -> dict[str, Any]:
    resp = gw.post(POSTS, json={"title": title, "status": "draft", "author": USER_IDS[author]},
                   headers=auth(token))
    assert resp.status_code == 200, resp.text
    record: dict[str, Any] = resp.json()
    return record


def next_for(stream: EventStream, topic: str, record_id: str) -> dict[str, Any]:
    """The next event of ``topic`` about ``record_id`` (other events are skipped)."""
    deadline = time.monotonic() + 10
    while True:
        event = stream.next_event(timeout=max(0.01, deadline - time.monotonic()))
        data: dict[str, Any] = json.loads(event["data"])
        if event["event"] == topic and data["record"]["id"] == record_id:
            return data


def test_stream_has_pocketbases_headers(stream: EventStream) -> None:
    headers = stream.response.headers
    assert stream.response.status_code == 200
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-store"
    assert headers["x-accel-buffering"] == "no"
    assert "content-length" not in headers
    assert len(stream.client_id) == 40


def test_guest_receives_a_create_made_through_the_gateway(
    gw: httpx.Client, stream: EventStream, tokens: dict[str, str]
) -> None:
    assert subscribe(gw, stream, ["posts/*"]).status_code == 204
    post = create_post(gw, tokens["alice"], "alice", f"live {secrets.token_hex(4)}")
    data = next_for(stream, "posts/*", post["id"])
    assert data["action"] == "create"
    assert data["record"]["title"] == post["title"] and data["record"]["author"] == USER_IDS["alice"]
    assert gw.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["alice"])).status_code == 204
    assert next_for(stream, "posts/*", post["id"])["action"] == "delete"


def test_owner_only_events_reach_the_owner_only(
    gw: httpx.Client, gateway: GatewayProcess, tokens: dict[str, str]
) -> None:
    """``attachments`` is owner-only: bob's stream (bob's token) gets bob's new attachment; a
    guest's stream on the same topic gets nothing, though it does get a later public post."""
    with EventStream(gateway.url) as guest, EventStream(gateway.url) as owner:
        assert subscribe(gw, guest, ["attachments/*", "posts/*"]).status_code == 204
        assert subscribe(gw, owner, ["attachments/*"], tokens["bob"]).status_code == 204
        resp = gw.post(ATTACHMENTS, data={"title": "mine", "owner": USER_IDS["bob"]},
                       files={"file": ("note.txt", b"only for bob", "text/plain")},
                       headers=auth(tokens["bob"]))
        assert resp.status_code == 200, resp.text
        attachment = resp.json()
        assert next_for(owner, "attachments/*", attachment["id"])["action"] == "create"
        marker = create_post(gw, tokens["alice"], "alice", f"marker {secrets.token_hex(4)}")
        next_for(guest, "posts/*", marker["id"])  # everything sent to the guest before it is in
        assert [e for e in guest.received() if e["event"].startswith("attachments")] == []
    assert gw.delete(f"{ATTACHMENTS}/{attachment['id']}", headers=auth(tokens["bob"])).status_code == 204
    assert gw.delete(f"{POSTS}/{marker['id']}", headers=auth(tokens["alice"])).status_code == 204


def test_options_suffix_is_kept(gw: httpx.Client, stream: EventStream, tokens: dict[str, str]) -> None:
    """The event name is the whole topic, and ``?options=`` shapes the record (PocketBase's)."""
    options = json.dumps({"query": {"fields": "id,title,expand.author.name", "expand": "author"}})
    topic = f"posts/*?options={quote(options)}"
    assert subscribe(gw, stream, [topic]).status_code == 204
    post = create_post(gw, tokens["carol"], "carol", f"shaped {secrets.token_hex(4)}")
    data = next_for(stream, topic, post["id"])
    assert set(data["record"]) == {"id", "title", "expand"}
    assert data["record"]["expand"]["author"]["name"]
    assert gw.delete(f"{POSTS}/{post['id']}", headers=auth(tokens["carol"])).status_code == 204


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("_superusers/*", "validation_invalid_collection"),  # in PocketBase, not exposed
        ("nope/abc", "validation_invalid_collection"),
        ("secrets", "validation_invalid_collection"),
        (f"posts/*?options={quote(json.dumps({'query': {'expand': 'nope'}}))}", "validation_invalid_expand"),
        (f"posts/*?options={quote(json.dumps({'query': {'filter': '@collection._superusers.id != 1'}}))}",
         "validation_invalid_collection"),
    ],
)
def test_topics_the_gateway_does_not_expose_are_refused(
    gw: httpx.Client, gateway: GatewayProcess, stream: EventStream, topic: str, code: str
) -> None:
    before = gateway.upstream_calls()
    resp = subscribe(gw, stream, ["posts/*", topic])
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["message"] == "Something went wrong while processing your request."
    assert list(body["data"]["subscriptions"]) == ["1"]
    assert body["data"]["subscriptions"]["1"]["code"] == code
    assert gateway.upstream_calls() == before  # PocketBase never asked


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"clientId": ""},
        {"clientId": "x" * 256},
        {"clientId": 5},
        {"clientId": "some-id", "subscriptions": "posts/*"},
        {"clientId": "some-id", "subscriptions": [5]},
        {"clientId": "some-id", "subscriptions": ["posts/*"] * 1001},
        {"clientId": "some-id", "subscriptions": ["posts/" + "x" * 2500]},
        {"clientId": "", "subscriptions": ["posts/" + "x" * 2500]},
        [],
    ],
)
def test_bad_bodies_are_answered_as_pocketbase_answers_them(
    gw: httpx.Client, pb: httpx.Client, gateway: GatewayProcess, body: Any
) -> None:
    before = gateway.upstream_calls()
    same(pb.post("/api/realtime", json=body), gw.post("/api/realtime", json=body))
    assert gateway.upstream_calls() == before


def test_form_bodies_are_checked_too(gw: httpx.Client, gateway: GatewayProcess, stream: EventStream) -> None:
    before = gateway.upstream_calls()
    form = {"clientId": stream.client_id, "subscriptions": ["posts/*", "_superusers/*"]}
    assert gw.post("/api/realtime", data=form).status_code == 400
    assert gw.post("/api/realtime", data=form, files={"f": ("a.txt", b"a")}).status_code == 400
    payload = {"@jsonPayload": json.dumps(form)}
    assert gw.post("/api/realtime", data=payload).status_code == 400
    assert gw.post("/api/realtime", content=json.dumps(form), headers={"content-type": "text/plain"}).status_code == 400
    assert gateway.upstream_calls() == before
    assert gw.post("/api/realtime", data={**form, "subscriptions": ["posts/*"]}).status_code == 204


def test_the_client_ip_binding_holds(gateway: GatewayProcess, gw: httpx.Client) -> None:
    """PocketBase binds a realtime client to the IP that opened it: the gateway forwards the same
    client IP for the stream and for the subscription, and only for the same client."""
    proxy = httpx.HTTPTransport(local_address=TRUSTED_PROXY)
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with EventStream(gateway.url, headers=forwarded, local_address=TRUSTED_PROXY) as opened, \
            httpx.Client(base_url=gateway.url, transport=proxy, timeout=10) as via_proxy:
        other = subscribe(via_proxy, opened, ["posts/*"], headers={"X-Forwarded-For": "203.0.113.8"})
        assert (other.status_code, other.json()["message"]) == (400, "Invalid realtime client.")
        direct = subscribe(gw, opened, ["posts/*"])  # from 127.0.0.1 itself
        assert direct.status_code == 400
        assert subscribe(via_proxy, opened, ["posts/*"], headers=forwarded).status_code == 204


def test_subscriptions_carry_the_callers_token_only(
    gw: httpx.Client, stream: EventStream, tokens: dict[str, str]
) -> None:
    """A guest stream can be upgraded once by a token; another token is then refused by
    PocketBase (the gateway adds none of its own)."""
    assert subscribe(gw, stream, ["attachments/*"]).status_code == 204
    assert subscribe(gw, stream, ["attachments/*"], tokens["bob"]).status_code == 204
    refused = subscribe(gw, stream, ["attachments/*"], tokens["carol"])
    assert refused.status_code == 403, refused.text


def test_disconnect_releases_the_upstream_connection(
    gateway: GatewayProcess, gw: httpx.Client, tokens: dict[str, str]
) -> None:
    """A client with an owner-only topic has an upstream stream of its own; leaving frees it
    (and the client id is PocketBase's 404 afterwards)."""
    before = gateway.sse_clients()
    upstream_before = metric(gateway, "hapta_upstream_streams")
    opened = EventStream(gateway.url)
    try:
        assert gateway.sse_clients() == before + 1
        client_id = opened.client_id
        assert subscribe(gw, opened, ["attachments/*"], tokens["bob"]).status_code == 204
        assert metric(gateway, "hapta_upstream_streams") == upstream_before + 1
    finally:
        opened.close()
    wait_until(lambda: gateway.sse_clients() == before, what="hapta_sse_clients back to its value")
    wait_until(lambda: metric(gateway, "hapta_upstream_streams") == upstream_before,
               what="the client's own upstream stream closed")
    gone = {"clientId": client_id, "subscriptions": ["posts/*"]}
    resp = gw.post("/api/realtime", json=gone)
    assert (resp.status_code, resp.json()["message"]) == (404, "Missing or invalid client id.")


def test_streams_use_no_pooled_connection_and_end_on_shutdown(
    gw_pb: PocketBaseServer, gw_tmp: Path
) -> None:
    """With a pool of one connection, three open streams leave ordinary requests unaffected; a
    SIGTERM ends the streams at once (not after the 10 s graceful timeout)."""
    gateway = GatewayProcess(gw_pb.url, env={"HAPTA_MAX_CONNECTIONS": "1"}, tmp=gw_tmp).start()
    assert gateway.proc is not None
    streams = [EventStream(gateway.url) for _ in range(3)]
    try:
        assert gateway.sse_clients() == 3
        with httpx.Client(base_url=gateway.url, timeout=5) as client:
            for _ in range(3):
                assert client.get(POSTS, params={"perPage": 1}).status_code == 200
            assert subscribe(client, streams[0], ["posts/*"]).status_code == 204
        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        for opened in streams:
            assert opened.ended.wait(5), "the stream stayed open after SIGTERM"
        assert gateway.proc.wait(timeout=8) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 5
    finally:
        for opened in streams:
            opened.close()
        gateway.stop()
