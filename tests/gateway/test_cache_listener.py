"""The cache's realtime invalidation listener (``cachelisten``) against a real PocketBase: a write
made directly in PocketBase is seen through the gateway within a bound, an auth record's change
drops its credential-scoped entries, and a dropped subscription flushes the cache.

The gateway runs with the superuser credentials and the default TTL (300 s with the listener),
so only an invalidation can explain a fresh read. This module has a PocketBase of its own,
restarted on the same port and data dir to end the listener's stream from PocketBase's side.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import PASSWORDS, USER_IDS, GatewayProcess, auth, wait_until

from hapta_gen.dev.pbserver import PocketBaseServer, free_port
from hapta_gen.dev.seed import postly_schema, seed_postly

POSTS = "/api/collections/posts/records"
#: How soon a write made in PocketBase must be seen through the gateway.
BOUND = 2.0
_GAUGE = re.compile(r"^(hapta_cache_\w+?)(?:_total)? ([0-9.e+-]+)$", re.MULTILINE)


def cache_metrics(process: GatewayProcess) -> dict[str, float]:
    text = httpx.get(f"{process.url}/metrics", timeout=5).text
    return {name: float(value) for name, value in _GAUGE.findall(text)}


def listening(process: GatewayProcess) -> bool:
    return cache_metrics(process).get("hapta_cache_listener_up") == 1


@pytest.fixture(scope="module")
def lpb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketBaseServer]:
    data = tmp_path_factory.mktemp("listener-pb") / "pb_data"
    with PocketBaseServer(data_dir=data, port=free_port()) as server:
        server.import_collections(postly_schema())
        seed_postly(server)
        yield server


@pytest.fixture(scope="module")
def listened(lpb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp("listener-gw")
    env = {"PB_SUPERUSER_EMAIL": lpb.email, "PB_SUPERUSER_PASSWORD": lpb.password}
    process = GatewayProcess(lpb.url, env=env, tmp=tmp).start()
    wait_until(lambda: listening(process), what="the listener's subscription")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def lgw(listened: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=listened.url, timeout=30) as client:
        yield client


def cached_read(lgw: httpx.Client, process: GatewayProcess, path: str, token: str | None = None) -> httpx.Response:
    """Read ``path`` until it is a cache hit (no upstream call); that answer. Polled against a
    deadline: an invalidation from an earlier test's write may still be on its way through the
    listener and drop the entry just stored (which is the listener doing its job)."""
    deadline = time.monotonic() + 10
    while True:
        lgw.get(path, headers=auth(token))
        calls = process.upstream_calls()
        resp = lgw.get(path, headers=auth(token))
        if process.upstream_calls() == calls:
            return resp
        assert time.monotonic() < deadline, f"{path} was not cached"


def seen_within(check: object, what: str) -> float:
    """Seconds until ``check()`` held (polled against ``BOUND``)."""
    start = time.monotonic()
    wait_until(check, timeout=BOUND, what=what)
    return time.monotonic() - start


def test_the_gateway_says_at_start_that_writes_elsewhere_are_observed(listened: GatewayProcess) -> None:
    log = listened.log()
    assert "entries live at most 300 s" in log
    assert "arrive through a realtime subscription" in log
    assert "cache listener: subscribed" in log


def test_a_write_made_directly_in_pocketbase_is_seen_within_the_bound(
    lgw: httpx.Client, listened: GatewayProcess, lpb: PocketBaseServer
) -> None:
    title = f"made elsewhere {uuid.uuid4().hex[:6]}"
    created = lpb.request(
        "POST", POSTS, json={"title": "before", "status": "published", "author": USER_IDS["bob"]}
    )
    assert created.status_code == 200, created.text
    pid = created.json()["id"]
    view = f"{POSTS}/{pid}"
    listing = f"{POSTS}?filter=author='{USER_IDS['bob']}'&sort=-created&perPage=30"
    comments = f"/api/collections/comments/records?expand=post&filter=post='{pid}'"
    assert cached_read(lgw, listened, view).json()["title"] == "before"
    assert pid in cached_read(lgw, listened, listing).text
    assert cached_read(lgw, listened, comments).json()["totalItems"] == 0

    assert lpb.request("PATCH", view, json={"title": title}).status_code == 200
    seen_within(lambda: lgw.get(view).json()["title"] == title, "the update in the view")
    assert title in lgw.get(listing).text

    comment = lpb.request(
        "POST",
        "/api/collections/comments/records",
        json={"post": pid, "author": USER_IDS["carol"], "text": "hello"},
    )
    assert comment.status_code == 200, comment.text
    seen_within(lambda: lgw.get(comments).json()["totalItems"] == 1, "the created comment")

    assert lpb.request("DELETE", view).status_code == 204
    seen_within(lambda: lgw.get(view).status_code == 404, "the delete in the view")
    assert pid not in lgw.get(listing).text
    # The comment went with its post (cascade): its list shows it at once.
    assert lgw.get(comments).json()["totalItems"] == 0


def test_an_auth_record_changed_in_pocketbase_drops_its_scoped_entries(
    lgw: httpx.Client, listened: GatewayProcess, lpb: PocketBaseServer
) -> None:
    login = lgw.post(
        "/api/collections/users/auth-with-password",
        json={"identity": "bob@postly.test", "password": PASSWORDS["bob"]},
    )
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    # Bob's private attachment: nothing in it depends on ``users``; only the scope drop reaches it.
    path = "/api/collections/attachments/records/att000000000001"
    assert cached_read(lgw, listened, path, token).json()["owner"] == USER_IDS["bob"]

    # A new password changes the tokenKey: PocketBase refuses the old token from now on.
    changed = lpb.request(
        "PATCH",
        f"/api/collections/users/records/{USER_IDS['bob']}",
        json={"password": "another-pass-123", "passwordConfirm": "another-pass-123"},
    )
    assert changed.status_code == 200, changed.text
    direct = httpx.get(lpb.url + path, headers=auth(token), timeout=10)
    assert direct.status_code != 200  # the old token no longer opens it

    def as_pocketbase() -> bool:
        resp = lgw.get(path, headers=auth(token))
        return resp.status_code == direct.status_code and resp.json() == direct.json()

    seen_within(as_pocketbase, "the revoked token's scoped entry dropped")


def test_a_dropped_subscription_flushes_the_cache_and_resubscribes(
    lgw: httpx.Client, listened: GatewayProcess, lpb: PocketBaseServer
) -> None:
    path = f"{POSTS}?sort=id&perPage=30&m={uuid.uuid4().hex[:6]}"
    cached_read(lgw, listened, path)
    before = cache_metrics(listened)
    assert before["hapta_cache_bytes"] > 0

    lpb.stop()  # ends the listener's stream from PocketBase's side; the data dir stays
    try:
        wait_until(lambda: not listening(listened), what="the listener seeing the drop")
        after = cache_metrics(listened)
        assert after["hapta_cache_flushes"] > before["hapta_cache_flushes"]
        assert after["hapta_cache_bytes"] == 0
    finally:
        lpb.start()  # same port, same data
    wait_until(lambda: listening(listened), timeout=60, what="the listener subscribing again")
    assert "the realtime stream ended; cache flushed" in listened.log()

    calls = listened.upstream_calls()
    assert lgw.get(path).status_code == 200
    assert listened.upstream_calls() == calls + 1  # flushed: fetched again
    # And the new subscription works: a write made in PocketBase is seen again.
    title = f"after restart {uuid.uuid4().hex[:6]}"
    view = f"{POSTS}/pst000000000002"
    cached_read(lgw, listened, view)
    assert lpb.request("PATCH", view, json={"title": title}).status_code == 200
    seen_within(lambda: lgw.get(view).json()["title"] == title, "a write after resubscribing")
