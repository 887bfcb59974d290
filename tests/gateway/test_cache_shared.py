"""The cache shared through Valkey (``cacheshared``): two gateway processes and one real Valkey.

A write through node A is read back through node B; node B's in-process L1 never serves the old
value once the invalidation has reached it; an answer fetched by A is served by B without
asking PocketBase; a Valkey outage degrades to pass-through (right answers, no errors) and the
cache comes back by itself; several workers keep the cache on when they share Valkey.
The TTL is long, so only an invalidation can explain a fresh read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import USER_IDS, GatewayProcess, auth, same, wait_until
from valkey_support import Valkey

from hapta_gen.dev.pbserver import PocketBaseServer

POSTS = "/api/collections/posts/records"
_CACHE = re.compile(r"^(hapta_cache_\w+?)(?:_total)? ([0-9.e+-]+)$", re.MULTILINE)


def cache_metrics(process: GatewayProcess) -> dict[str, float]:
    text = httpx.get(f"{process.url}/metrics", timeout=5).text
    return {name: float(value) for name, value in _CACHE.findall(text)}


def shared_up(process: GatewayProcess) -> bool:
    return cache_metrics(process).get("hapta_cache_shared_up") == 1


@pytest.fixture(scope="module")
def valkey() -> Iterator[Valkey]:
    server = Valkey().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nodes(gw_pb: PocketBaseServer, valkey: Valkey, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    env = {"HAPTA_REDIS_URL": valkey.url, "HAPTA_CACHE_TTL": "600"}
    a = GatewayProcess(gw_pb.url, env=env, tmp=tmp_path_factory.mktemp("node-a")).start()
    b = GatewayProcess(gw_pb.url, env=env, tmp=tmp_path_factory.mktemp("node-b")).start()
    try:
        for node in (a, b):
            wait_until(lambda node=node: shared_up(node), what="the shared cache up")
        yield a, b
    finally:
        a.stop()
        b.stop()


def new_post(node: GatewayProcess, token: str, title: str) -> str:
    created = httpx.post(
        node.url + POSTS,
        json={"title": title, "status": "published", "author": USER_IDS["bob"]},
        headers=auth(token),
        timeout=30,
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def title_of(node: GatewayProcess, path: str) -> str:
    return str(httpx.get(node.url + path, timeout=30).json()["title"])


def test_an_answer_fetched_through_one_node_is_served_by_the_other(
    nodes: tuple[GatewayProcess, GatewayProcess], pb: httpx.Client
) -> None:
    a, b = nodes
    path = f"{POSTS}?sort=id&perPage=30&m={uuid.uuid4().hex[:6]}"
    assert httpx.get(a.url + path, timeout=30).status_code == 200
    calls = b.upstream_calls()
    resp = httpx.get(b.url + path, timeout=30)
    same(pb.get(path), resp)
    assert b.upstream_calls() == calls  # from Valkey, not PocketBase
    assert "etag" in resp.headers


def test_a_write_through_node_a_is_read_back_through_node_b(
    nodes: tuple[GatewayProcess, GatewayProcess], tokens: dict[str, str]
) -> None:
    a, b = nodes
    pid = new_post(a, tokens["bob"], "first")
    view = f"{POSTS}/{pid}"
    listing = f"{POSTS}?filter=id='{pid}'"
    for node in (a, b):
        assert title_of(node, view) == "first"
        assert "first" in httpx.get(node.url + listing, timeout=30).text
    updated = httpx.patch(a.url + view, json={"title": "second"}, headers=auth(tokens["bob"]), timeout=30)
    assert updated.status_code == 200, updated.text
    # B's L1 drops on the published message: poll until it has, then it never goes back.
    wait_until(lambda: title_of(b, view) == "second", timeout=5, what="node B reading the write")
    for _ in range(20):
        assert title_of(b, view) == "second"
        assert "second" in httpx.get(b.url + listing, timeout=30).text
    assert httpx.delete(a.url + view, headers=auth(tokens["bob"]), timeout=30).status_code == 204
    wait_until(lambda: httpx.get(b.url + view, timeout=30).status_code == 404, timeout=5, what="the delete on B")


def test_node_bs_l1_never_serves_the_old_value_once_told(
    nodes: tuple[GatewayProcess, GatewayProcess], tokens: dict[str, str]
) -> None:
    a, b = nodes
    pid = new_post(a, tokens["bob"], "old")
    view = f"{POSTS}/{pid}"
    assert title_of(b, view) == "old"
    calls = b.upstream_calls()
    assert title_of(b, view) == "old"
    assert b.upstream_calls() == calls  # served by B's L1
    told = cache_metrics(b)["hapta_cache_invalidations"]
    updated = httpx.patch(a.url + view, json={"title": "new"}, headers=auth(tokens["bob"]), timeout=30)
    assert updated.status_code == 200, updated.text
    wait_until(lambda: cache_metrics(b)["hapta_cache_invalidations"] > told, timeout=5, what="B told")
    for _ in range(20):
        assert title_of(b, view) == "new"


def test_a_valkey_outage_degrades_to_pass_through_and_recovers(
    nodes: tuple[GatewayProcess, GatewayProcess], valkey: Valkey, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    a, b = nodes
    pid = new_post(a, tokens["bob"], "before the outage")
    view = f"{POSTS}/{pid}"
    for node in (a, b):
        title_of(node, view)
        title_of(node, view)  # in both L1s
    valkey.stop()
    try:
        for node in (a, b):
            wait_until(lambda node=node: not shared_up(node), timeout=10, what="the outage seen")
        updated = httpx.patch(a.url + view, json={"title": "during the outage"}, headers=auth(tokens["bob"]), timeout=30)
        assert updated.status_code == 200, updated.text
        for node in (a, b):
            calls = node.upstream_calls()
            for _ in range(3):
                resp = httpx.get(node.url + view, timeout=30)
                same(pb.get(view), resp)
                assert resp.json()["title"] == "during the outage"
            assert node.upstream_calls() == calls + 3  # pass-through: nothing from a cache
    finally:
        valkey.start()
    for node in (a, b):
        wait_until(lambda node=node: shared_up(node), timeout=30, what="the shared cache back")
    assert title_of(b, view) == "during the outage"
    calls = b.upstream_calls()
    assert title_of(b, view) == "during the outage"
    assert b.upstream_calls() == calls  # cached again
    assert "serving without the cache until it is back" in a.log()


def test_several_workers_keep_the_cache_when_they_share_valkey(
    gw_pb: PocketBaseServer, valkey: Valkey, tmp_path: Path
) -> None:
    env = {"HAPTA_REDIS_URL": valkey.url}
    process = GatewayProcess(gw_pb.url, env=env, tmp=tmp_path, args=("--workers", "2")).start()
    try:
        path = f"{POSTS}/pst000000000001?m={uuid.uuid4().hex[:6]}"

        def cached() -> bool:
            return "etag" in httpx.get(process.url + path, timeout=30).headers

        wait_until(cached, timeout=20, what="a cached answer from the workers")
        assert "the response cache is off" not in process.log()
    finally:
        process.stop()
