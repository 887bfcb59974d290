"""Rolling-key sessions (``HAPTA_SESSIONS=rolling``): clients hold the gateway's keys, PocketBase's
tokens stay server-side.

Every client here scans each response (``TokenScanner``): no header or body may carry a
PocketBase token. One gateway keeps sessions in memory (a long grace window, so a rotated key
is still good right after a refresh); two more share a real Valkey with a short one (a session
made on one node works on the other; a rotated key presented after the window revokes the family;
sessions survive a restart).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import (
    PASSWORDS,
    USER_IDS,
    EventStream,
    GatewayProcess,
    auth,
    metric,
    wait_until,
)
from session_support import (
    TokenScanner,
    is_session_key,
    jwt_part,
    pocketbase_tokens_in,
)
from valkey_support import valkey_server

from hapta_gen.dev.pbserver import PocketBaseServer, free_port

USERS = "/api/collections/users"
LOGOUT = "/api/hapta/logout"
INVALID = {"data": {}, "message": "The request requires valid record authorization token.", "status": 401}


@pytest.fixture(scope="module")
def scanner(tokens: dict[str, str]) -> TokenScanner:
    return TokenScanner(list(tokens.values()))


@pytest.fixture(scope="module")
def rolling(gw_pb: PocketBaseServer, gw_tmp: Path) -> Iterator[GatewayProcess]:
    env = {"HAPTA_SESSIONS": "rolling", "HAPTA_SESSION_GRACE": "60"}
    process = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def rgw(rolling: GatewayProcess, scanner: TokenScanner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rolling.url, timeout=30, event_hooks={"response": [scanner]}) as client:
        yield client


@pytest.fixture(scope="module")
def valkey() -> Iterator[str]:
    with valkey_server() as url:
        yield url


def _shared_env(url: str) -> dict[str, str]:
    return {"HAPTA_SESSIONS": "rolling", "HAPTA_SESSION_GRACE": "0.5", "HAPTA_REDIS_URL": url,
            "HAPTA_SSE_SESSION_CHECK": "0.5"}


@pytest.fixture(scope="module")
def nodes(gw_pb: PocketBaseServer, gw_tmp: Path, valkey: str) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    a = GatewayProcess(gw_pb.url, env=_shared_env(valkey), tmp=gw_tmp).start()
    b = GatewayProcess(gw_pb.url, env=_shared_env(valkey), tmp=gw_tmp).start()
    yield a, b
    a.stop()
    b.stop()


def _login(client: httpx.Client, name: str, base: str = "") -> httpx.Response:
    return client.post(f"{base}{USERS}/auth-with-password",
                       json={"identity": f"{name}@postly.test", "password": PASSWORDS[name]})


def _key(client: httpx.Client, name: str, base: str = "") -> str:
    resp = _login(client, name, base)
    assert resp.status_code == 200, resp.text
    key: str = resp.json()["token"]
    assert is_session_key(key), key
    return key


def _me(name: str) -> str:
    return f"{USERS}/records/{USER_IDS[name]}"


def test_login_answers_a_key_and_the_key_acts_as_the_user(rgw: httpx.Client, pb: httpx.Client) -> None:
    resp = _login(rgw, "bob")
    direct = _login(pb, "bob")
    assert resp.status_code == 200 and resp.json()["record"] == direct.json()["record"]
    key = resp.json()["token"]
    assert is_session_key(key) and not pocketbase_tokens_in(resp.text)
    # the readable part repeats PocketBase's public claims (SDKs read exp), never the secret
    claims = jwt_part(key.split(".")[1])
    assert claims["id"] == USER_IDS["bob"] and claims["type"] == "auth"
    assert claims["exp"] > time.time()
    # PocketBase sees bob: the owner is shown his hidden email
    me = rgw.get(_me("bob"), headers=auth(key))
    assert me.status_code == 200 and "email" in me.json()
    assert "email" not in rgw.get(_me("bob")).json()  # a guest is not
    assert rgw.get(_me("bob"), headers={"Authorization": f"Bearer {key}"}).json().get("email")


def test_unknown_keys_and_pocketbase_tokens_are_refused(
    rgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    key = _key(rgw, "bob")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    edited = ".".join([key.split(".")[0], "eyJpZCI6ImFsaWNlIn0", key.split(".")[2]])
    for bad in (tokens["bob"], tokens["superuser"], forged, edited, "garbage"):
        for method, path in (("GET", _me("bob")), ("GET", "/api/collections/posts/records"),
                             ("POST", f"{USERS}/auth-refresh"), ("POST", "/api/files/token")):
            resp = rgw.request(method, path, headers=auth(bad))
            assert (resp.status_code, resp.json()) == (401, INVALID), (bad[:20], path, resp.text)
    # a stale key never blocks logging in again: the login goes on as a guest's
    fresh = rgw.post(f"{USERS}/auth-with-password", headers=auth("garbage"),
                     json={"identity": "bob@postly.test", "password": PASSWORDS["bob"]})
    assert fresh.status_code == 200 and is_session_key(fresh.json()["token"])
    # guests stay guests
    assert rgw.get("/api/collections/posts/records").status_code == 200
    wrong = {"identity": "bob@postly.test", "password": "wrong-password"}
    assert rgw.post(f"{USERS}/auth-with-password", json=wrong).json() == \
        pb.post(f"{USERS}/auth-with-password", json=wrong).json()


def test_the_key_changes_on_every_refresh(rgw: httpx.Client) -> None:
    keys = [_key(rgw, "alice")]
    for _ in range(3):
        resp = rgw.post(f"{USERS}/auth-refresh", headers=auth(keys[-1]), params={"expand": "posts_via_author"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["record"]["id"] == USER_IDS["alice"]
        keys.append(resp.json()["token"])
        assert is_session_key(keys[-1])
    assert len(set(keys)) == len(keys)
    # the newest key works, and (inside the grace window) so do the rotated ones
    for key in reversed(keys):
        assert rgw.get(_me("alice"), headers=auth(key)).json().get("email") == "alice@postly.test"


def test_logout_revokes_the_family(rolling: GatewayProcess, rgw: httpx.Client) -> None:
    first = _key(rgw, "carol")
    second = rgw.post(f"{USERS}/auth-refresh", headers=auth(first)).json()["token"]
    active = metric(rolling.url, "hapta_sessions_active")
    assert active >= 1
    assert rgw.post(LOGOUT).status_code == 401  # nothing to log out
    done = rgw.post(LOGOUT, headers=auth(first))  # any key of the family will do
    assert done.status_code == 204 and done.content == b""
    for key in (first, second):
        assert rgw.get(_me("carol"), headers=auth(key)).json() == INVALID
        assert rgw.post(f"{USERS}/auth-refresh", headers=auth(key)).json() == INVALID
    assert rgw.post(LOGOUT, headers=auth(second)).status_code == 401
    assert metric(rolling.url, "hapta_sessions_active") == active - 1
    # another login of the same user is another family, untouched
    other = _key(rgw, "carol")
    assert rgw.get(_me("carol"), headers=auth(other)).status_code == 200


def test_batch_file_tokens_and_realtime_take_the_key(
    rolling: GatewayProcess, rgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    bob = auth(_key(rgw, "bob"))
    batch = {"requests": [{"method": "POST", "url": "/api/collections/comments/records",
                           "body": {"post": "pst000000000002", "author": USER_IDS["bob"], "text": "rolling"}}]}
    resp = rgw.post("/api/batch", json=batch, headers=bob)
    assert resp.status_code == 200 and resp.json()[0]["status"] == 200, resp.text
    comment = resp.json()[0]["body"]["id"]
    assert rgw.delete(f"/api/collections/comments/records/{comment}", headers=bob).status_code == 204

    # file tokens: the client gets a stand-in, which opens bob's protected file
    record = pb.get("/api/collections/attachments/records/att000000000001", headers=auth(tokens["bob"])).json()
    path = f"/api/files/attachments/{record['id']}/{record['file']}"
    file_key = rgw.post("/api/files/token", headers=bob).json()["token"]
    assert "." not in file_key and len(file_key) == 43
    direct = pb.post("/api/files/token", headers=auth(tokens["bob"])).json()["token"]
    ok = rgw.get(path, params={"token": file_key})
    assert ok.status_code == 200 and ok.content == pb.get(path, params={"token": direct}).content
    assert rgw.get(path).status_code == 404
    for bad in ("not-a-file-key", direct):  # as for no token: PocketBase's own is not taken either
        assert rgw.get(path, params={"token": bad}).status_code == 404

    # realtime: a subscription made with the key is bob's; an unknown key is refused
    with EventStream(rolling.url) as stream:
        body = {"clientId": stream.client_id, "subscriptions": ["posts"]}
        assert rgw.post("/api/realtime", json=body, headers=auth("garbage")).json() == INVALID
        assert rgw.post("/api/realtime", json=body, headers=bob).status_code == 204


def _post_event(stream: EventStream, post: str) -> None:
    """Wait for ``posts/*``'s create event of ``post`` on ``stream``."""
    deadline = time.monotonic() + 10
    while True:
        event = stream.next_event(timeout=max(0.01, deadline - time.monotonic()))
        if event.get("event") == "posts/*" and f'"id":"{post}"' in event.get("data", ""):
            return


def test_logout_ends_the_realtime_streams_of_the_family(
    rolling: GatewayProcess, rgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    """A stream whose subscriptions were made with a key ends when the key's family is revoked
    (here by a logout with a later key of the family); other clients' streams go on."""
    first = _key(rgw, "bob")
    second = rgw.post(f"{USERS}/auth-refresh", headers=auth(first)).json()["token"]
    carol = _key(rgw, "carol")
    streams_before = metric(rolling.url, "hapta_upstream_streams")
    with EventStream(rolling.url) as bobs, EventStream(rolling.url) as carols, EventStream(rolling.url) as guest:
        for stream, key in ((bobs, first), (carols, carol), (guest, None)):
            body = {"clientId": stream.client_id, "subscriptions": ["posts/*", "attachments/*"]}
            assert rgw.post("/api/realtime", json=body, headers=auth(key)).status_code == 204
        assert metric(rolling.url, "hapta_upstream_streams") > streams_before  # their own streams
        assert rgw.post(LOGOUT, headers=auth(second)).status_code == 204
        assert bobs.ended.wait(10), "bob's stream outlived his logout"
        post = pb.post("/api/collections/posts/records", headers=auth(tokens["superuser"]),
                       json={"title": "after the logout", "status": "draft", "author": USER_IDS["alice"]}).json()["id"]
        _post_event(carols, post)
        _post_event(guest, post)
        assert not carols.ended.is_set() and not guest.ended.is_set()
    assert pb.delete(f"/api/collections/posts/records/{post}", headers=auth(tokens["superuser"])).status_code == 204
    wait_until(lambda: metric(rolling.url, "hapta_upstream_streams") == streams_before,
               what="every client's own upstream stream closed")


def test_a_revocation_on_another_node_ends_the_stream(nodes: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = nodes
    with httpx.Client(timeout=30) as client:
        key = _key(client, "alice", a.url)
        with EventStream(a.url) as stream:
            body = {"clientId": stream.client_id, "subscriptions": ["attachments/*"]}
            assert client.post(f"{a.url}/api/realtime", json=body, headers=auth(key)).status_code == 204
            assert client.post(f"{b.url}{LOGOUT}", headers=auth(key)).status_code == 204
            assert stream.ended.wait(10), "the stream outlived a logout made on another node"


def test_a_rotated_key_after_the_grace_window_revokes_the_family(
    nodes: tuple[GatewayProcess, GatewayProcess], scanner: TokenScanner
) -> None:
    a, b = nodes
    with httpx.Client(timeout=30, event_hooks={"response": [scanner]}) as client:
        old = _key(client, "alice", a.url)
        new = client.post(f"{b.url}{USERS}/auth-refresh", headers=auth(old)).json()["token"]
        assert is_session_key(new) and new != old
        reused = metric(b.url, "hapta_session_reuse_detected_total") + metric(
            a.url, "hapta_session_reuse_detected_total")
        # the rotated key works for the grace window, then is refused (polled, not timed)
        wait_until(lambda: client.get(f"{a.url}{_me('alice')}", headers=auth(old)).status_code == 401,
                   what="the rotated key refused")
        # ... and its reuse revoked the whole family: the newest key is dead on every node
        for node in (a, b):
            assert client.get(f"{node.url}{_me('alice')}", headers=auth(new)).json() == INVALID
            assert client.post(f"{node.url}{USERS}/auth-refresh", headers=auth(new)).json() == INVALID
        assert metric(a.url, "hapta_session_reuse_detected_total") + metric(
            b.url, "hapta_session_reuse_detected_total") == reused + 1


def test_a_session_works_on_every_node_and_survives_a_restart(
    nodes: tuple[GatewayProcess, GatewayProcess], scanner: TokenScanner, gw_pb: PocketBaseServer,
    gw_tmp: Path, valkey: str,
) -> None:
    a, b = nodes
    with httpx.Client(timeout=30, event_hooks={"response": [scanner]}) as client:
        key = _key(client, "bob", a.url)
        for node in (a, b):
            assert client.get(f"{node.url}{_me('bob')}", headers=auth(key)).json()["email"] == "bob@postly.test"
        # refresh on B, use on A; log out on A, refused on B
        key = client.post(f"{b.url}{USERS}/auth-refresh", headers=auth(key)).json()["token"]
        assert client.get(f"{a.url}{_me('bob')}", headers=auth(key)).status_code == 200
        c = GatewayProcess(gw_pb.url, env=_shared_env(valkey), tmp=gw_tmp).start()
        try:  # a node started after the login (a restart) knows the session
            assert client.get(f"{c.url}{_me('bob')}", headers=auth(key)).json()["email"] == "bob@postly.test"
        finally:
            c.stop()
        assert client.post(f"{a.url}{LOGOUT}", headers=auth(key)).status_code == 204
        assert client.get(f"{b.url}{_me('bob')}", headers=auth(key)).json() == INVALID


def test_an_unreachable_store_is_a_503_never_a_token(
    gw_pb: PocketBaseServer, gw_tmp: Path, scanner: TokenScanner
) -> None:
    env = _shared_env(f"redis://127.0.0.1:{free_port()}/0")
    node = GatewayProcess(gw_pb.url, env=env, tmp=gw_tmp).start()
    down = {"data": {}, "message": "The session store is unavailable; try again shortly.", "status": 503}
    try:
        with httpx.Client(base_url=node.url, timeout=30, event_hooks={"response": [scanner]}) as client:
            login = _login(client, "bob")  # PocketBase said yes, but no key can be kept
            assert (login.status_code, login.json()) == (503, down)
            assert client.get(_me("bob"), headers=auth("some-key")).json() == down
            assert client.post(LOGOUT, headers=auth("some-key")).json() == down
            assert client.get("/api/collections/posts/records").status_code == 200  # guests go on
    finally:
        node.stop()


def test_no_response_carried_a_pocketbase_token(scanner: TokenScanner) -> None:
    """The scanner checked every answer of the tests above (this runs last in the module)."""
    assert scanner.scanned > 40
