"""Attacks on the gateway's cache, rolling sessions and rate limits, each against a real
PocketBase: every test is an attempt that worked once (it failed before its fix), proving it no
longer does, by what PocketBase itself would have done or by what the README promises.

The PocketBase here is this module's own (postly schema and seed, batch enabled), so the
records the attacks write never show in another module's counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import (
    PASSWORDS,
    TRUSTED_PROXY,
    USER_IDS,
    EventStream,
    GatewayProcess,
    wait_until,
)
from test_ratelimit import ON, build

from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import postly_schema, seed_postly

COMMENTS = "/api/collections/comments/records"
POSTS = "/api/collections/posts/records"
POST_ID = "pst000000000001"
LIMITED = "Comments: slow down."
#: One rule: two comment creates a minute per IP (no default rule).
COMMENT_RULE = {
    "ratelimit": {"Max": 1000, "Duration": 60000},  # every route: a batch's own headers too
    "ratelimits": [{"Label": "comments:create", "Max": 2, "Duration": 60000, "Message": LIMITED}],
}


@pytest.fixture(scope="module")
def own_pb() -> Iterator[PocketBaseServer]:
    with PocketBaseServer() as server:
        server.import_collections(postly_schema())
        seed_postly(server)
        server.patch_settings({"batch": {"enabled": True, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}})
        yield server


@pytest.fixture(scope="module")
def comment_limited(own_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    out = build(COMMENT_RULE, tmp_path_factory.mktemp("attack-rl"))
    process = GatewayProcess(own_pb.url, env=ON, tmp=out, cwd=out).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def cached(own_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway whose entries outlive every test: only invalidation makes a read fresh."""
    tmp: Path = tmp_path_factory.mktemp("attack-cache")
    process = GatewayProcess(own_pb.url, env={"HAPTA_CACHE_TTL": "600"}, tmp=tmp).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def bob(own_pb: PocketBaseServer) -> str:
    """Bob's token, from PocketBase itself."""
    with httpx.Client(base_url=own_pb.url, timeout=30) as client:
        resp = client.post(
            "/api/collections/users/auth-with-password",
            json={"identity": "bob@postly.test", "password": PASSWORDS["bob"]},
        )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


@pytest.fixture(scope="module")
def rolling(own_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp("attack-rolling")
    process = GatewayProcess(own_pb.url, env={"HAPTA_SESSIONS": "rolling"}, tmp=tmp).start()
    yield process
    process.stop()


#: Two comment creates a minute per user, two likes lists a minute per IP.
USER_RULES = {
    "ratelimit": {"Max": 1000, "Duration": 60000},  # every route: a batch's own headers too
    "ratelimits": [
        {"Label": "comments:create", "Max": 2, "Duration": 60000, "Per": "user", "Message": LIMITED},
        {"Label": "likes:list", "Max": 2, "Duration": 60000},
    ],
}


@pytest.fixture(scope="module")
def rolling_limited(own_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    out = build(USER_RULES, tmp_path_factory.mktemp("attack-rl-rolling"))
    process = GatewayProcess(own_pb.url, env=ON | {"HAPTA_SESSIONS": "rolling"}, tmp=out, cwd=out).start()
    yield process
    process.stop()


def as_client(gw: GatewayProcess, ip: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request through the trusted proxy as client ``ip``."""
    headers = {"X-Forwarded-For": ip, **kw.pop("headers", {})}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=TRUSTED_PROXY), timeout=30) as client:
        return client.request(method, gw.url + path, headers=headers, **kw)


def login(gw: GatewayProcess, name: str, ip: str) -> str:
    resp = as_client(
        gw, ip, "POST", "/api/collections/users/auth-with-password",
        json={"identity": f"{name}@postly.test", "password": PASSWORDS[name]},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def comment(text: str, author: str = "alice") -> dict[str, str]:
    return {"post": POST_ID, "author": USER_IDS[author], "text": text}


def comment_count(pb: PocketBaseServer, text: str) -> int:
    with httpx.Client(base_url=pb.url, timeout=30) as client:
        resp = client.get(COMMENTS, params={"filter": f'text = "{text}"', "perPage": 100})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["totalItems"])


# ------------------------------------------------------------------------------ the cache


@pytest.mark.parametrize(
    "query",
    [
        {"filter": 'author.attachments_via_owner.title != ""'},
        {"sort": "-author.attachments_via_owner.title"},
    ],
)
def test_a_guests_answer_is_not_shared_when_the_filter_reaches_a_ruled_collection(
    own_pb: PocketBaseServer, cached: GatewayProcess, bob: str, query: dict[str, str]
) -> None:
    """``posts`` is public, but a filter (or sort) through a relation applies the rules of the
    collections it reaches (``attachments``: owner only): PocketBase answers bob otherwise than
    a guest, so the guest's cached answer must not be served to him."""
    with httpx.Client(base_url=cached.url, timeout=30) as gw, httpx.Client(base_url=own_pb.url, timeout=30) as pb:
        assert ids(gw.get(POSTS, params=query)) == ids(pb.get(POSTS, params=query))
        headers = {"Authorization": bob}
        expected = ids(pb.get(POSTS, params=query, headers=headers))
        assert expected != ids(pb.get(POSTS, params=query))  # the attack needs a difference
        assert ids(gw.get(POSTS, params=query, headers=headers)) == expected


# ------------------------------------------------------------------------------ rate limits


def test_a_batch_cannot_create_past_a_collection_create_limit(
    own_pb: PocketBaseServer, comment_limited: GatewayProcess
) -> None:
    """``comments:create`` allows two a minute: a batch of five creates is five creates (as
    PocketBase counts each batch item against its collection's rule), refused before any is
    made; an upsert in a batch counts as a create."""
    ip = "198.51.100.71"
    token = login(comment_limited, "alice", ip)
    batch = {"requests": [{"method": "POST", "url": COMMENTS, "body": comment("rl-batch")} for _ in range(5)]}
    resp = as_client(comment_limited, ip, "POST", "/api/batch", json=batch, headers={"Authorization": token})
    assert resp.status_code == 429, resp.text
    assert resp.json() == {"data": {}, "message": LIMITED, "status": 429}
    assert int(resp.headers["retry-after"]) >= 1
    # the refusing rule's headers alone: the request's own (the default rule's) are taken back
    assert resp.headers.get_list("ratelimit-limit") == ["2"]
    assert resp.headers.get_list("ratelimit-remaining") == ["0"]
    assert comment_count(own_pb, "rl-batch") == 0

    ip = "198.51.100.72"
    for n in range(2):
        resp = as_client(comment_limited, ip, "POST", COMMENTS, json=comment(f"rl-single-{n}"), headers={"Authorization": token})
        assert resp.status_code == 200, resp.text
    one = {"requests": [{"method": "PUT", "url": COMMENTS, "body": comment("rl-upsert")}]}
    resp = as_client(comment_limited, ip, "POST", "/api/batch", json=one, headers={"Authorization": token})
    assert resp.status_code == 429, resp.text
    assert comment_count(own_pb, "rl-upsert") == 0


def test_a_batch_within_the_limit_goes_through(own_pb: PocketBaseServer, comment_limited: GatewayProcess) -> None:
    ip = "198.51.100.73"
    token = login(comment_limited, "alice", ip)
    batch = {"requests": [{"method": "POST", "url": COMMENTS, "body": comment("rl-fits")} for _ in range(2)]}
    resp = as_client(comment_limited, ip, "POST", "/api/batch", json=batch, headers={"Authorization": token})
    assert resp.status_code == 200, resp.text
    assert comment_count(own_pb, "rl-fits") == 2


@pytest.mark.parametrize(
    ("user", "spelling"), [("alice", "bearer {}"), ("bob", "BEARER  {}"), ("carol", "bEaReR {}")]
)
def test_a_per_user_limit_follows_the_key_however_it_is_spelt(
    rolling_limited: GatewayProcess, user: str, spelling: str
) -> None:
    """The session layer takes a key with any ``Bearer`` casing and spacing: the per-user count
    must read it the same way, or a new client IP per request is a new budget for one user."""
    net = {"alice": 110, "bob": 120, "carol": 130}[user]  # client IPs no other case uses
    key = login(rolling_limited, user, f"198.51.100.{net}")
    for n in range(2):
        resp = as_client(
            rolling_limited, f"198.51.100.{net + 1 + n}", "POST", COMMENTS,
            json=comment(f"rl-user-{n}", user), headers={"Authorization": key},
        )
        assert resp.status_code == 200, resp.text
    resp = as_client(
        rolling_limited, f"198.51.100.{net + 5}", "POST", COMMENTS,
        json=comment("rl-user-spelt", user), headers={"Authorization": spelling.format(key)},
    )
    assert resp.status_code == 429, resp.text
    assert resp.json()["message"] == LIMITED
    resp = as_client(rolling_limited, f"198.51.100.{net + 6}", "GET", COMMENTS, headers={"Authorization": key})
    assert resp.status_code == 200, resp.text  # the key itself is fine


def test_one_ipv6_network_is_one_client(rolling_limited: GatewayProcess) -> None:
    """Anyone holding an IPv6 /64 (every home line) has 2**64 addresses: a per-IP budget per
    address is no limit. Addresses of one /64 share a budget, and an IPv4-mapped address is its
    IPv4 address."""
    likes = "/api/collections/likes/records"
    assert as_client(rolling_limited, "2001:db8:7:7::1", "GET", likes).status_code == 200
    assert as_client(rolling_limited, "2001:db8:7:7:0:0:0:2", "GET", likes).status_code == 200
    assert as_client(rolling_limited, "2001:db8:7:7:ffff::3", "GET", likes).status_code == 429
    assert as_client(rolling_limited, "2001:db8:7:8::1", "GET", likes).status_code == 200  # another /64
    assert as_client(rolling_limited, "198.51.100.90", "GET", likes).status_code == 200
    assert as_client(rolling_limited, "::ffff:198.51.100.90", "GET", likes).status_code == 200
    assert as_client(rolling_limited, "198.51.100.90", "GET", likes).status_code == 429


def test_one_ipv6_network_holds_one_clients_realtime_streams(own_pb: PocketBaseServer, tmp_path: Path) -> None:
    """``HAPTA_MAX_STREAMS_PER_IP`` is per client: another address of the same /64 is the same
    client, or one line could hold every stream the gateway has."""
    env = {"HAPTA_TRUSTED_PROXIES": f"{TRUSTED_PROXY}/32", "HAPTA_MAX_STREAMS_PER_IP": "1"}
    process = GatewayProcess(own_pb.url, env=env, tmp=tmp_path).start()
    stream = EventStream(process.url, headers={"X-Forwarded-For": "2001:db8:9:9::1"}, local_address=TRUSTED_PROXY)
    try:
        wait_until(lambda: process.sse_clients() == 1, what="the first stream open")
        headers = {"X-Forwarded-For": "2001:db8:9:9::2"}
        with (
            httpx.Client(transport=httpx.HTTPTransport(local_address=TRUSTED_PROXY), timeout=10) as client,
            client.stream("GET", f"{process.url}/api/realtime", headers=headers) as resp,
        ):
            assert resp.status_code == 429
    finally:
        stream.close()
        process.stop()


# ------------------------------------------------------------------------------ rolling sessions

ATTACHMENT = "/api/collections/attachments/records/att000000000001"  # bob's, protected file


@pytest.mark.parametrize("spelling", ["%74oken", "t%6Fken", "%74%6F%6B%65%6E"])
def test_a_raw_file_token_in_an_encoded_query_name_is_not_forwarded(
    own_pb: PocketBaseServer, rolling: GatewayProcess, bob: str, spelling: str
) -> None:
    """In rolling mode PocketBase's tokens never pass the gateway, file tokens included: Go
    decodes a query name, so ``?%74oken=`` is ``?token=`` to PocketBase and must be swapped (or
    dropped) like it, never handed over as it came."""
    with httpx.Client(base_url=own_pb.url, timeout=30) as pb:
        record = pb.get(ATTACHMENT, headers={"Authorization": bob}).json()
        raw = pb.post("/api/files/token", headers={"Authorization": bob}).json()["token"]
        path = f"/api/files/attachments/{record['id']}/{record['file']}"
        assert pb.get(path, params={"token": raw}).status_code == 200  # the raw token works there
    with httpx.Client(base_url=rolling.url, timeout=30) as gw:
        resp = gw.get(f"{path}?{spelling}={raw}")
    assert resp.status_code == 404, resp.status_code  # as PocketBase answers without a token
