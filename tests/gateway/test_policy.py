"""``hapta.yaml``'s per-collection policy, its cache settings and the extensions, against a real
PocketBase: a gateway built from the postly schema with its own ``collections:``, ``cache:`` and
``extensions:`` (postly's ranked feed), in front of a PocketBase whose posts are public only when
published (so a guest's feed is not everyone's)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import PASSWORDS, USER_IDS, GatewayProcess, auth, metric

from hapta_gen import generate
from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import postly_schema, seed_postly
from hapta_gen.emit.writer import write
from hapta_gen.ir.config import config_from_dict

REPO = Path(__file__).resolve().parents[2]
EXT_DIR = REPO / "examples" / "postly" / "ext"
POSTS = "/api/collections/posts/records"
FOLLOWS = "/api/collections/follows/records"
COMMENTS = "/api/collections/comments/records"
LIKES = "/api/collections/likes/records"
PUBLISHED_ONLY = "published = true || author = @request.auth.id"
CONFIG: dict[str, Any] = {
    "collections": {
        "follows": {"operations": ["list", "view"]},  # read-only through the gateway
        "posts": {"hidden": ["contact"]},
        "users": {"hidden": ["bio"]},
        "comments": {"cache": {"ttl": 1}},
        "attachments": {"operations": ["list", "view", "create", "update", "delete"]},  # no file, realtime
    },
    "cache": {"collections": {"likes": {"enabled": False}}},
    "extensions": ["postly_ext.feed", "policy_hooks"],
    "extension_paths": [str(EXT_DIR), str(Path(__file__).resolve().parent / "policy_ext")],
}


def _schema() -> list[dict[str, Any]]:
    schema = copy.deepcopy(postly_schema())
    for collection in schema:
        if collection["name"] == "posts":
            collection["listRule"] = collection["viewRule"] = PUBLISHED_ONLY
    return schema


@pytest.fixture(scope="module")
def policy_pb() -> Iterator[PocketBaseServer]:
    with PocketBaseServer() as server:
        server.import_collections(_schema())
        seed_postly(server)
        server.patch_settings({"batch": {"enabled": True, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}})
        yield server


@pytest.fixture(scope="module")
def policy_gw(policy_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    out = tmp_path_factory.mktemp("policy")
    result = generate(_schema(), config_from_dict(CONFIG))
    assert result.ok, result.errors
    write(result.files, out)
    env = {"PB_SUPERUSER_EMAIL": policy_pb.email, "PB_SUPERUSER_PASSWORD": policy_pb.password}
    process = GatewayProcess(policy_pb.url, env=env, tmp=out, cwd=out).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(policy_gw: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=policy_gw.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def users(policy_pb: PocketBaseServer) -> dict[str, str]:
    out = {}
    with httpx.Client(base_url=policy_pb.url, timeout=30) as pb:
        for name in ("alice", "bob", "carol", "dave"):
            resp = pb.post(
                "/api/collections/users/auth-with-password",
                json={"identity": f"{name}@postly.test", "password": PASSWORDS[name]},
            )
            assert resp.status_code == 200, resp.text
            out[name] = resp.json()["token"]
    return out


# --------------------------------------------------------------------------- operations


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", FOLLOWS, "GET"),
        ("PATCH", f"{FOLLOWS}/flw000000000001", "GET"),
        ("DELETE", f"{FOLLOWS}/flw000000000001", "GET"),
    ],
)
def test_read_only_collection_answers_405_without_reaching_pocketbase(
    policy_gw: GatewayProcess, client: httpx.Client, users: dict[str, str], method: str, path: str, allow: str
) -> None:
    before = policy_gw.upstream_calls()
    body = {"follower": USER_IDS["dave"], "following": USER_IDS["bob"]}
    resp = client.request(method, path, json=body if method != "DELETE" else None, headers=auth(users["dave"]))
    assert resp.status_code == 405, resp.text
    assert resp.json() == {"data": {}, "message": "The operation is not allowed for this collection.", "status": 405}
    assert resp.headers["allow"] == allow
    assert policy_gw.upstream_calls() == before


def test_read_only_collection_refuses_inside_a_batch_and_still_reads(
    policy_gw: GatewayProcess, client: httpx.Client, users: dict[str, str]
) -> None:
    before = policy_gw.upstream_calls()
    batch = {"requests": [{"method": "POST", "url": FOLLOWS, "body": {"follower": USER_IDS["dave"], "following": USER_IDS["bob"]}}]}
    resp = client.post("/api/batch", json=batch, headers=auth(users["dave"]))
    assert resp.status_code == 400, resp.text
    assert resp.json()["data"]["requests"]["0"]["response"]["status"] == 405
    assert policy_gw.upstream_calls() == before
    listed = client.get(FOLLOWS, headers=auth(users["dave"]))
    assert listed.status_code == 200 and listed.json()["totalItems"] == 3


def test_file_downloads_and_realtime_follow_the_operations(
    policy_gw: GatewayProcess, client: httpx.Client, users: dict[str, str]
) -> None:
    before = policy_gw.upstream_calls()
    resp = client.get("/api/files/attachments/att000000000001/notes.txt", headers=auth(users["bob"]))
    assert resp.status_code == 405 and resp.json()["status"] == 405
    sub = client.post("/api/realtime", json={"clientId": "x", "subscriptions": ["attachments/*"]})
    assert sub.status_code == 400 and sub.json()["data"]["subscriptions"]["0"]["code"] == "validation_not_allowed"
    assert policy_gw.upstream_calls() == before
    assert client.get("/api/collections/attachments/records", headers=auth(users["bob"])).json()["totalItems"] == 1


def test_openapi_omits_what_is_not_exposed(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    follows = spec["paths"][FOLLOWS]
    assert "get" in follows and "post" not in follows
    record = spec["paths"][f"{FOLLOWS}/{{id}}"]
    assert "get" in record and "patch" not in record and "delete" not in record
    assert "contact" not in spec["components"]["schemas"]["PostsRecord"]["properties"]
    assert "bio" not in spec["components"]["schemas"]["UsersRecord"]["properties"]
    # streams: not for attachments (no realtime operation), nor posts (hidden fields); comments yes
    assert "/sse/attachments" not in spec["paths"] and "/datastar/attachments" not in spec["paths"]
    assert "/sse/posts" not in spec["paths"] and "/sse/comments" in spec["paths"]


# --------------------------------------------------------------------------- hidden fields


def test_hidden_fields_are_absent_from_records_lists_and_expands(
    policy_pb: PocketBaseServer, client: httpx.Client, users: dict[str, str]
) -> None:
    with httpx.Client(base_url=policy_pb.url, timeout=30) as pb:
        direct = pb.get(f"{POSTS}/pst000000000001", params={"expand": "author"}).json()
    assert direct["contact"] == "bob@postly.test" and "bio" in direct["expand"]["author"]  # PocketBase has them
    for token in (None, users["bob"]):
        view = client.get(f"{POSTS}/pst000000000001", params={"expand": "author"}, headers=auth(token)).json()
        assert "contact" not in view and "bio" not in view["expand"]["author"]
        assert view["title"] == direct["title"]
        page = client.get(POSTS, params={"expand": "author"}, headers=auth(token)).json()
        assert page["items"] and all("contact" not in p and "bio" not in p["expand"]["author"] for p in page["items"])
        comments = client.get(COMMENTS, params={"expand": "post.author"}, headers=auth(token)).json()
        nested = [c["expand"]["post"] for c in comments["items"] if "post" in c.get("expand", {})]
        assert nested and all("contact" not in p and "bio" not in p["expand"]["author"] for p in nested)
    me = client.post(
        "/api/collections/users/auth-with-password",
        json={"identity": "bob@postly.test", "password": PASSWORDS["bob"]},
    ).json()
    assert me["token"] and "bio" not in me["record"]


@pytest.mark.parametrize("params", [{"filter": 'contact = "bob@postly.test"'}, {"sort": "contact"}, {"filter": "author.bio ~ 'x'"}])
def test_hidden_fields_cannot_be_probed(policy_gw: GatewayProcess, client: httpx.Client, params: dict[str, str]) -> None:
    before = policy_gw.upstream_calls()
    resp = client.get(POSTS, params=params)
    assert resp.status_code == 400, resp.text
    assert set(resp.json()["data"]) == set(params)
    assert policy_gw.upstream_calls() == before


def test_realtime_refuses_a_collection_with_hidden_fields(client: httpx.Client) -> None:
    resp = client.post("/api/realtime", json={"clientId": "x", "subscriptions": ["posts/*"]})
    assert resp.status_code == 400
    assert "hidden" in resp.json()["data"]["subscriptions"]["0"]["message"]


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        ("/sse/posts", {}, "collection"),
        ("/datastar/posts", {}, "collection"),
        ("/sse/comments", {"expand": "author"}, "expand"),
    ],
)
def test_streams_refuse_what_could_carry_hidden_fields(
    policy_gw: GatewayProcess, client: httpx.Client, path: str, params: dict[str, str], key: str
) -> None:
    before = policy_gw.upstream_calls()
    resp = client.get(path, params=params)
    assert resp.status_code == 400, resp.text
    assert "hidden" in resp.json()["data"][key]["message"]
    assert policy_gw.upstream_calls() == before


# --------------------------------------------------------------------------- cache settings


def test_a_collection_with_cache_disabled_never_hits(policy_gw: GatewayProcess, client: httpx.Client) -> None:
    hits = metric(policy_gw, "hapta_cache_hits_total")
    before = policy_gw.upstream_calls()
    for _ in range(3):
        assert client.get(LIKES).status_code == 200
    assert metric(policy_gw, "hapta_cache_hits_total") == hits
    assert policy_gw.upstream_calls() == before + 3


def test_a_collection_ttl_is_respected(policy_gw: GatewayProcess, client: httpx.Client) -> None:
    assert client.get(POSTS, params={"perPage": 7}).status_code == 200
    deadline = time.monotonic() + 15
    young = False
    while time.monotonic() < deadline and not young:  # a 1 s entry may age out between two calls
        assert client.get(COMMENTS, params={"perPage": 7}).status_code == 200
        before = policy_gw.upstream_calls()
        assert client.get(COMMENTS, params={"perPage": 7}).status_code == 200
        young = policy_gw.upstream_calls() == before
    assert young, "comments were never answered from the cache"
    deadline = time.monotonic() + 15
    expired = False
    while time.monotonic() < deadline and not expired:
        calls = policy_gw.upstream_calls()
        client.get(COMMENTS, params={"perPage": 7})
        expired = policy_gw.upstream_calls() > calls
        time.sleep(0.1)  # poll interval against the deadline, not a readiness wait
    assert expired, "comments' 1 s ttl never ended its entry"
    calls = policy_gw.upstream_calls()
    client.get(POSTS, params={"perPage": 7})
    assert policy_gw.upstream_calls() == calls  # posts keep the default ttl


def test_cache_off_at_run_time_wins(policy_pb: PocketBaseServer, policy_gw: GatewayProcess, tmp_path: Path) -> None:
    off = GatewayProcess(policy_pb.url, env={"HAPTA_CACHE": "off"}, tmp=tmp_path, cwd=policy_gw.cwd).start()
    try:
        for _ in range(2):
            assert httpx.get(f"{off.url}{POSTS}", timeout=10).status_code == 200
        assert off.upstream_calls() == 2
        assert metric(off, "hapta_cache_hits_total") == 0
    finally:
        off.stop()


def test_yaml_cache_off_is_baked_in_and_hapta_cache_on_wins(
    policy_pb: PocketBaseServer, tmp_path: Path
) -> None:
    result = generate(_schema(), config_from_dict({"cache": {"enabled": False, "max_bytes": 65536}}))
    assert result.ok, result.errors
    write(result.files, tmp_path / "off")
    for env, hits in (({}, 0), ({"HAPTA_CACHE": "on"}, 1)):
        process = GatewayProcess(policy_pb.url, env=env, tmp=tmp_path, cwd=tmp_path / "off").start()
        try:
            for _ in range(2):
                assert httpx.get(f"{process.url}{POSTS}", params={"perPage": 1}, timeout=10).status_code == 200
            assert metric(process, "hapta_cache_hits_total") == hits
            assert process.upstream_calls() == 2 - hits
        finally:
            process.stop()


# --------------------------------------------------------------------------- the feed


def _feed(client: httpx.Client, token: str | None) -> list[str]:
    resp = client.get("/feed", headers=auth(token))
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert all("contact" not in p for p in items)  # read through the gateway: hidden stays hidden
    return sorted(p["id"] for p in items)


def test_feed_answers_per_user_under_pocketbase_rules(client: httpx.Client, users: dict[str, str]) -> None:
    assert _feed(client, None) == ["pst000000000001", "pst000000000002"]  # published only
    # alice follows bob, and sees her own draft
    assert _feed(client, users["alice"]) == ["pst000000000001", "pst000000000002", "pst000000000003"]
    # carol follows bob; her unpublished post is hers to see
    assert _feed(client, users["carol"]) == ["pst000000000001", "pst000000000002", "pst000000000004"]
    # bob follows alice, whose only post is a draft bob may not read
    assert _feed(client, users["bob"]) == ["pst000000000001", "pst000000000002"]
    assert _feed(client, users["dave"]) == []  # follows no one, wrote nothing


def test_feed_is_ranked_by_likes_and_comments(client: httpx.Client, users: dict[str, str]) -> None:
    items = client.get("/feed", headers=auth(users["alice"])).json()["items"]
    scores = [p["score"] for p in items]
    assert scores == sorted(scores, reverse=True)
    assert all({"likes", "comments", "score"} <= set(p) for p in items)


def test_feed_is_served_from_the_cache_and_dropped_by_a_write(
    policy_gw: GatewayProcess, client: httpx.Client, users: dict[str, str]
) -> None:
    token = users["carol"]
    first = client.get("/feed", params={"perPage": 5}, headers=auth(token))
    assert first.status_code == 200
    before, hits = policy_gw.upstream_calls(), metric(policy_gw, "hapta_cache_hits_total")
    again = client.get("/feed", params={"perPage": 5}, headers=auth(token))
    assert again.content == first.content
    assert policy_gw.upstream_calls() == before
    assert metric(policy_gw, "hapta_cache_hits_total") == hits + 1
    # another caller's feed is not this one
    assert client.get("/feed", params={"perPage": 5}, headers=auth(users["dave"])).json()["items"] == []
    liked = client.post(LIKES, json={"post": "pst000000000004", "user": USER_IDS["carol"]}, headers=auth(token))
    assert liked.status_code == 200, liked.text
    before = policy_gw.upstream_calls()
    after = client.get("/feed", params={"perPage": 5}, headers=auth(token)).json()
    assert policy_gw.upstream_calls() > before  # the like dropped the cached feed
    assert next(p for p in after["items"] if p["id"] == "pst000000000004")["likes"] == 1


def test_unknown_paths_and_bad_calls_outside_api_answer_in_the_envelope(client: httpx.Client) -> None:
    resp = client.get("/feeds")
    assert resp.status_code == 404 and resp.json()["status"] == 404
    wrong = client.post("/feed")
    assert wrong.status_code == 405 and wrong.json()["status"] == 405
    bad = client.get("/feed", params={"perPage": 0})
    assert bad.status_code == 400 and set(bad.json()["data"]) == {"perPage"}


def test_extension_routes_are_rate_limited_and_counted(
    policy_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An ``extension`` rule limits the extensions' routes (and nothing under ``/api/``); their
    requests are in ``hapta_requests_total{route="extension"}``. (What a route asks PocketBase
    through ``ctx.pocketbase`` passes the ``/api/`` chain, and its limits, as the caller.)"""
    out = tmp_path_factory.mktemp("policy-rl")
    config = {
        "ratelimits": [{"Label": "extension", "Max": 2, "Duration": 60000, "Message": "Feed later."}],
        "extensions": ["postly_ext.feed"],
        "extension_paths": [str(EXT_DIR)],
    }
    result = generate(_schema(), config_from_dict(config))
    assert result.ok, result.errors
    write(result.files, out)
    env = {"HAPTA_RATE_LIMIT_ENABLED": "true"}
    process = GatewayProcess(policy_pb.url, env=env, tmp=out, cwd=out).start()
    try:
        with httpx.Client(base_url=process.url, timeout=30) as gw:
            for left in ("1", "0"):
                resp = gw.get("/feed")
                assert resp.status_code == 200, resp.text
                assert resp.headers.get_list("ratelimit-limit") == ["2"]
                assert resp.headers["ratelimit-remaining"] == left
            refused = gw.get("/feed")
            assert refused.status_code == 429
            assert refused.json() == {"status": 429, "message": "Feed later.", "data": {}}
            assert int(refused.headers["retry-after"]) >= 1
            health = gw.get("/api/health")  # not an extension's route: not limited
            assert health.status_code == 200 and "ratelimit-limit" not in health.headers
        assert metric(process, "hapta_requests_total", route="extension", status="200") == 2
        assert metric(process, "hapta_requests_total", route="extension", status="429") == 1
        assert metric(process, "hapta_ratelimited_total", rule="extension/ip") == 1
    finally:
        process.stop()


# --------------------------------------------------------------------------- hooks


def _comment(policy_pb: PocketBaseServer, record_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=policy_pb.url, timeout=30) as pb:
        found: dict[str, Any] = pb.get(f"{COMMENTS}/{record_id}").json()
    return found


def test_before_write_transforms_the_body_pocketbase_gets(
    policy_pb: PocketBaseServer, client: httpx.Client, users: dict[str, str]
) -> None:
    body = {"post": "pst000000000001", "author": USER_IDS["carol"], "text": "  Well said  "}
    made = client.post(COMMENTS, json=body, headers=auth(users["carol"]))
    assert made.status_code == 200, made.text
    assert _comment(policy_pb, made.json()["id"])["text"] == "Well said [via gateway]"
    edited = client.patch(f"{COMMENTS}/{made.json()['id']}", json={"text": "Edited"}, headers=auth(users["carol"]))
    assert edited.status_code == 200, edited.text
    assert _comment(policy_pb, made.json()["id"])["text"] == "Edited [via gateway]"


def test_before_write_refuses_in_the_envelope_without_reaching_pocketbase(
    policy_gw: GatewayProcess, client: httpx.Client, users: dict[str, str]
) -> None:
    before = policy_gw.upstream_calls()
    body = {"post": "pst000000000001", "author": USER_IDS["carol"], "text": "buy SPAM now"}
    resp = client.post(COMMENTS, json=body, headers=auth(users["carol"]))
    assert resp.status_code == 400
    assert resp.json() == {"data": {"text": {"code": "validation_spam", "message": "No spam."}}, "message": "No spam.", "status": 400}
    form = client.post(COMMENTS, data={**body, "text": "spam"}, headers=auth(users["carol"]))
    assert form.status_code == 400  # hooks see JSON only: another encoding cannot slip past
    batch = {"requests": [{"method": "POST", "url": COMMENTS, "body": body}]}
    assert client.post("/api/batch", json=batch, headers=auth(users["carol"])).status_code == 400
    assert policy_gw.upstream_calls() == before


def test_before_write_runs_inside_a_batch(
    policy_pb: PocketBaseServer, client: httpx.Client, users: dict[str, str]
) -> None:
    body = {"post": "pst000000000002", "author": USER_IDS["carol"], "text": "From a batch"}
    resp = client.post("/api/batch", json={"requests": [{"method": "POST", "url": COMMENTS, "body": body}]}, headers=auth(users["carol"]))
    assert resp.status_code == 200, resp.text
    record_id = resp.json()[0]["body"]["id"]
    assert _comment(policy_pb, record_id)["text"] == "From a batch [via gateway]"


def test_a_batch_write_hooks_could_not_see_whole_is_refused(
    policy_gw: GatewayProcess, client: httpx.Client, users: dict[str, str]
) -> None:
    """PocketBase merges a batch item's URL query into its fields, and an upsert may update:
    neither can carry a hooked collection's write past its hook."""
    body = {"post": "pst000000000002", "author": USER_IDS["carol"], "text": "fine"}
    before = policy_gw.upstream_calls()
    for item in (
        {"method": "POST", "url": f"{COMMENTS}?text=spam", "body": body},
        {"method": "PUT", "url": COMMENTS, "body": {**body, "text": "spam"}},
    ):
        resp = client.post("/api/batch", json={"requests": [item]}, headers=auth(users["carol"]))
        assert resp.status_code == 400, resp.text
        assert "write hooks" in resp.json()["message"]
    assert policy_gw.upstream_calls() == before


def test_after_read_reshapes_lists_and_records_on_hits_too(
    policy_gw: GatewayProcess, client: httpx.Client
) -> None:
    for _ in range(2):  # the second is answered from the cache (comments live 1 s)
        page = client.get(COMMENTS, params={"perPage": 3}).json()
        assert page["hooked"] == len(page["items"]) > 0
    view = client.get(f"{COMMENTS}/cmt000000000001").json()
    assert view["reshaped"] == "view" and view["id"] == "cmt000000000001"
