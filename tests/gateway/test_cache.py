"""The response cache (``layers/cache``, ``cachepolicy``, ``cachestore``) against a real PocketBase:
it never serves an answer to a caller PocketBase would answer differently, a write through the
gateway is read back at once, concurrent misses make one upstream request, memory stays within
its bound, and ``If-None-Match`` gets a 304.

Leak tests compare every answer through the gateway with PocketBase's own answer to the same
caller, after the gateway has cached someone else's answer to the same request. Coherence tests
use a gateway with a long TTL, so only invalidation can explain a fresh read.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gateway_support import USER_IDS, GatewayProcess, auth, same

from hapta_gen.dev.pbserver import PocketBaseServer

ATTACHMENT = "/api/collections/attachments/records/att000000000001"  # bob's, owner-only rules
POST = "/api/collections/posts/records/pst000000000001"  # bob's, public; has a hidden field
USERS = "/api/collections/users/records"
_COUNTER = re.compile(r"^(hapta_cache_\w+?)(?:_total)? ([0-9.e+-]+)$", re.MULTILINE)


def cache_metrics(process: GatewayProcess) -> dict[str, float]:
    text = httpx.get(f"{process.url}/metrics", timeout=5).text
    return {name: float(value) for name, value in _COUNTER.findall(text)}


def forged(user_id: str, collection_id: str) -> str:
    """A token with ``user_id``'s claims and a signature PocketBase will not accept."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {
        "id": user_id,
        "type": "auth",
        "collectionId": collection_id,
        "exp": 4102444800,
        "refreshable": True,
    }
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture(scope="module")
def cached(gw_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway whose entries outlive every test: only invalidation makes a read fresh."""
    tmp: Path = tmp_path_factory.mktemp("cache")
    process = GatewayProcess(gw_pb.url, env={"HAPTA_CACHE_TTL": "600"}, tmp=tmp).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def cgw(cached: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cached.url, timeout=30) as client:
        yield client


def users_collection_id(pb: httpx.Client) -> str:
    resp = pb.get(f"{USERS}?perPage=1")
    return str(resp.json()["items"][0]["collectionId"])


def emails(value: object) -> set[str]:
    """The emails of the ``users`` records anywhere in a JSON answer (expanded ones too)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if value.get("collectionName") == "users" and "email" in value:
            found.add(str(value["email"]))
        for item in value.values():
            found |= emails(item)
    elif isinstance(value, list):
        for item in value:
            found |= emails(item)
    return found


def read_twice(gw: httpx.Client, path: str, token: str | None) -> httpx.Response:
    """Read ``path`` twice as ``token`` (the second one is the cached answer)."""
    gw.get(path, headers=auth(token))
    return gw.get(path, headers=auth(token))


# ------------------------------------------------------------------------------------ leaks


def test_a_private_record_read_by_its_owner_reaches_no_one_else(
    cgw: httpx.Client, cached: GatewayProcess, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    before = cache_metrics(cached)["hapta_cache_hits"]
    owner = read_twice(cgw, ATTACHMENT, tokens["bob"])
    assert owner.status_code == 200 and owner.json()["owner"] == USER_IDS["bob"]
    assert cache_metrics(cached)["hapta_cache_hits"] == before + 1  # the owner's copy is cached
    listing = "/api/collections/attachments/records?sort=title"
    assert read_twice(cgw, listing, tokens["bob"]).json()["totalItems"] == 1
    fake = forged(USER_IDS["bob"], users_collection_id(pb))
    for token in (None, tokens["alice"], fake, "Bearer " + tokens["bob"] + "x"):
        for path in (ATTACHMENT, listing):
            gw_resp = read_twice(cgw, path, token)
            same(pb.get(path, headers=auth(token)), gw_resp)
            assert "Bob's notes" not in gw_resp.text


def test_a_superusers_answer_reaches_no_one_else(
    cgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    for path in (POST, "/api/collections/posts/records?sort=id&perPage=2"):
        admin = read_twice(cgw, path, tokens["superuser"])
        assert "moderationNote" in admin.text  # hidden fields: superusers only
        for token in (None, tokens["alice"], tokens["bob"]):
            gw_resp = read_twice(cgw, path, token)
            same(pb.get(path, headers=auth(token)), gw_resp)
            assert "moderationNote" not in gw_resp.text


def test_a_superuser_is_not_served_the_shared_answer(
    cgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    path = POST + "?fields=id,title,moderationNote"
    assert "moderationNote" not in read_twice(cgw, path, None).text
    gw_resp = cgw.get(path, headers=auth(tokens["superuser"]))
    same(pb.get(path, headers=auth(tokens["superuser"])), gw_resp)
    assert "moderationNote" in gw_resp.text


def test_an_expand_into_a_protected_collection_is_never_shared(
    cgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    path = f"{USERS}/{USER_IDS['bob']}?expand=attachments_via_owner"
    owner = read_twice(cgw, path, tokens["bob"])
    assert "Bob's notes" in owner.text
    for token in (None, tokens["alice"], forged(USER_IDS["bob"], users_collection_id(pb))):
        gw_resp = read_twice(cgw, path, token)
        same(pb.get(path, headers=auth(token)), gw_resp)
        assert "Bob's notes" not in gw_resp.text


@pytest.mark.parametrize("guest_first", [False, True])
def test_a_users_own_email_reaches_no_one_else(
    cgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str], guest_first: bool
) -> None:
    """``users`` are public, but PocketBase shows an email to its owner whatever
    ``emailVisibility`` says, directly and through ``expand``."""
    marker = uuid.uuid4().hex[:8]  # fresh keys for each order
    paths = [
        f"{USERS}/{USER_IDS['bob']}?m={marker}",
        f"{USERS}?sort=id&m={marker}",
        f"{POST}?expand=author&m={marker}",
        f"/api/collections/comments/records?expand=post.author&sort=id&m={marker}",
    ]
    order = [None, tokens["bob"], tokens["alice"]] if guest_first else [tokens["bob"], None, tokens["alice"]]
    for path in paths:
        for token in order:
            gw_resp = read_twice(cgw, path, token)
            same(pb.get(path, headers=auth(token)), gw_resp)
            shown = "bob@postly.test" in emails(gw_resp.json())
            assert shown == (token == tokens["bob"]), (path, token)


def test_authenticated_callers_read_the_shared_answer_only_when_it_is_theirs_too(
    cgw: httpx.Client, cached: GatewayProcess, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    path = f"/api/collections/comments/records?sort=id&m={uuid.uuid4().hex[:8]}"
    cgw.get(path)  # a guest fills the shared entry
    calls = cached.upstream_calls()
    gw_resp = cgw.get(path, headers=auth(tokens["alice"]))
    same(pb.get(path, headers=auth(tokens["alice"])), gw_resp)
    assert cached.upstream_calls() == calls  # public, no auth record in it: the shared copy


# ------------------------------------------------------------------------------- coherence


def test_a_write_through_the_gateway_is_read_back_at_once(
    cgw: httpx.Client, gw_pb: PocketBaseServer, tokens: dict[str, str]
) -> None:
    created = cgw.post(
        "/api/collections/comments/records",
        json={"post": "pst000000000002", "author": USER_IDS["carol"], "text": "first"},
        headers=auth(tokens["carol"]),
    )
    assert created.status_code == 200, created.text
    cid = created.json()["id"]
    view = f"/api/collections/comments/records/{cid}"
    listing = "/api/collections/comments/records?filter=post='pst000000000002'&sort=-created"
    on_post = "/api/collections/posts/records/pst000000000002?expand=comments_via_post"
    for path in (view, listing, on_post):
        assert "first" in read_twice(cgw, path, None).text

    # A write made behind the gateway's back is not seen (the entries outlive this test) ...
    direct = gw_pb.request("PATCH", f"/api/collections/comments/records/{cid}", json={"text": "behind"})
    assert direct.status_code == 200
    assert "behind" not in cgw.get(view).text

    # ... a write through it is, at once, in every entry that held the record.
    updated = cgw.patch(view, json={"text": "second"}, headers=auth(tokens["carol"]))
    assert updated.status_code == 200, updated.text
    for path in (view, listing, on_post):
        assert "second" in cgw.get(path).text, path
        assert "second" in cgw.get(path, headers=auth(tokens["bob"])).text, path

    assert cgw.delete(view, headers=auth(tokens["carol"])).status_code == 204
    assert cgw.get(view).status_code == 404
    assert cid not in cgw.get(listing).text
    assert cid not in cgw.get(on_post).text


def test_a_delete_reaches_the_records_that_pointed_at_it(
    cgw: httpx.Client, tokens: dict[str, str]
) -> None:
    """Deleting a post cascades to its comments: their cached view and lists go too."""
    post = cgw.post(
        "/api/collections/posts/records",
        json={"title": "Short-lived", "status": "draft", "author": USER_IDS["bob"]},
        headers=auth(tokens["bob"]),
    )
    assert post.status_code == 200, post.text
    pid = post.json()["id"]
    comment = cgw.post(
        "/api/collections/comments/records",
        json={"post": pid, "author": USER_IDS["carol"], "text": "soon gone"},
        headers=auth(tokens["carol"]),
    )
    assert comment.status_code == 200, comment.text
    view = f"/api/collections/comments/records/{comment.json()['id']}"
    listing = f"/api/collections/comments/records?filter=post='{pid}'"
    assert read_twice(cgw, view, None).status_code == 200
    assert read_twice(cgw, listing, None).json()["totalItems"] == 1
    deleted = cgw.delete(f"/api/collections/posts/records/{pid}", headers=auth(tokens["bob"]))
    assert deleted.status_code == 204, deleted.text
    assert cgw.get(view).status_code == 404
    assert cgw.get(listing).json()["totalItems"] == 0


def test_a_batch_through_the_gateway_is_read_back_at_once(
    cgw: httpx.Client, tokens: dict[str, str]
) -> None:
    created = cgw.post(
        "/api/collections/comments/records",
        json={"post": "pst000000000002", "author": USER_IDS["carol"], "text": "before batch"},
        headers=auth(tokens["carol"]),
    )
    assert created.status_code == 200, created.text
    view = f"/api/collections/comments/records/{created.json()['id']}"
    assert "before batch" in read_twice(cgw, view, None).text
    batch = cgw.post(
        "/api/batch",
        json={"requests": [{"method": "PATCH", "url": view, "body": {"text": "after batch"}}]},
        headers=auth(tokens["carol"]),
    )
    assert batch.status_code == 200, batch.text
    assert "after batch" in cgw.get(view).text
    assert cgw.delete(view, headers=auth(tokens["carol"])).status_code == 204


def test_updating_a_related_record_invalidates_lists_that_expand_it(
    cgw: httpx.Client, tokens: dict[str, str]
) -> None:
    listing = "/api/collections/comments/records?expand=post&sort=id"
    post = "/api/collections/posts/records/pst000000000001"
    title = f"Hello {uuid.uuid4().hex[:6]}"
    assert title not in read_twice(cgw, listing, None).text
    old = cgw.get(post).json()["title"]
    try:
        resp = cgw.patch(post, json={"title": title}, headers=auth(tokens["bob"]))
        assert resp.status_code == 200, resp.text
        assert title in cgw.get(listing).text
        stats = "/api/collections/post_stats/records/pst000000000001"
        assert cgw.get(stats).json()["title"] == title  # a view collection reading posts
    finally:
        cgw.patch(post, json={"title": old}, headers=auth(tokens["bob"]))
    assert title not in cgw.get(listing).text


def test_a_refused_write_invalidates_nothing(
    cgw: httpx.Client, cached: GatewayProcess, tokens: dict[str, str]
) -> None:
    listing = f"/api/collections/posts/records?sort=id&m={uuid.uuid4().hex[:8]}"
    read_twice(cgw, listing, None)
    dropped = cache_metrics(cached)["hapta_cache_invalidations"]
    resp = cgw.patch(POST, json={"title": "not yours"}, headers=auth(tokens["alice"]))
    assert resp.status_code == 404
    assert cache_metrics(cached)["hapta_cache_invalidations"] == dropped
    calls = cached.upstream_calls()
    cgw.get(listing)
    assert cached.upstream_calls() == calls


def test_an_auth_record_change_drops_credential_scoped_entries(
    cgw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]
) -> None:
    path = f"{USERS}/{USER_IDS['carol']}"
    before = read_twice(cgw, path, tokens["carol"]).json()
    name = f"Carol {uuid.uuid4().hex[:6]}"
    resp = cgw.patch(path, json={"name": name}, headers=auth(tokens["carol"]))
    assert resp.status_code == 200, resp.text
    try:
        gw_resp = cgw.get(path, headers=auth(tokens["carol"]))
        same(pb.get(path, headers=auth(tokens["carol"])), gw_resp)
        assert gw_resp.json()["name"] == name
    finally:
        cgw.patch(path, json={"name": before["name"]}, headers=auth(tokens["carol"]))


def test_a_password_change_drops_the_old_tokens_entries(
    cgw: httpx.Client, cached: GatewayProcess, pb: httpx.Client
) -> None:
    email = f"cache-{uuid.uuid4().hex[:8]}@postly.test"
    signup = cgw.post(
        "/api/collections/users/records",
        json={"email": email, "password": "first-pass-123", "passwordConfirm": "first-pass-123"},
    )
    assert signup.status_code == 200, signup.text
    user = f"{USERS}/{signup.json()['id']}"
    login = cgw.post(
        "/api/collections/users/auth-with-password",
        json={"identity": email, "password": "first-pass-123"},
    )
    assert login.status_code == 200, login.text
    old = login.json()["token"]
    assert read_twice(cgw, user, old).json()["email"] == email  # the owner's own copy
    dropped = cache_metrics(cached)["hapta_cache_invalidations"]
    cgw.post(  # a login writes nothing: nothing is dropped
        "/api/collections/users/auth-with-password",
        json={"identity": email, "password": "first-pass-123"},
    )
    assert cache_metrics(cached)["hapta_cache_invalidations"] == dropped
    changed = cgw.patch(
        user,
        json={"oldPassword": "first-pass-123", "password": "second-pass-123", "passwordConfirm": "second-pass-123"},
        headers=auth(old),
    )
    assert changed.status_code == 200, changed.text
    gw_resp = cgw.get(user, headers=auth(old))  # PocketBase no longer accepts the old token
    same(pb.get(user, headers=auth(old)), gw_resp)
    assert email not in gw_resp.text


# ------------------------------------------------------------------ single-flight, bound, 304


def test_concurrent_misses_make_one_upstream_request(cgw: httpx.Client, cached: GatewayProcess) -> None:
    path = f"/api/collections/posts/records?expand=author,comments_via_post&m={uuid.uuid4().hex[:8]}"
    calls = cached.upstream_calls()

    def get(_: int) -> tuple[int, bytes]:
        resp = httpx.get(cached.url + path, timeout=30)
        return resp.status_code, resp.content

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(get, range(100)))
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert cached.upstream_calls() == calls + 1


def test_if_none_match_gets_a_304(cgw: httpx.Client, pb: httpx.Client) -> None:
    path = f"{POST}?m={uuid.uuid4().hex[:8]}"
    first = cgw.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = cgw.get(path)
    assert again.headers["etag"] == etag and again.content == first.content
    same(pb.get(path), again)
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        resp = cgw.get(path, headers={"If-None-Match": value})
        assert resp.status_code == 304 and resp.content == b""
        assert resp.headers["etag"] == etag
    assert cgw.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_client_cache_control_changes_nothing(cgw: httpx.Client, cached: GatewayProcess) -> None:
    path = f"{POST}?m={uuid.uuid4().hex[:8]}"
    cgw.get(path)
    calls = cached.upstream_calls()
    for value in ("no-cache", "no-store", "max-age=0"):
        assert cgw.get(path, headers={"Cache-Control": value, "Pragma": "no-cache"}).status_code == 200
    assert cached.upstream_calls() == calls


def test_the_cache_stays_within_its_bound(gw_pb: PocketBaseServer, tmp_path: Path) -> None:
    limit = 32 * 1024
    process = GatewayProcess(
        gw_pb.url, env={"HAPTA_CACHE_MAX_BYTES": str(limit), "HAPTA_CACHE_TTL": "600"}, tmp=tmp_path
    ).start()
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:
            stored = 0.0
            for i in range(60):
                path = f"/api/collections/posts/records?expand=author,coauthors&m={i}"
                assert client.get(path).status_code == 200
                assert client.get(path).status_code == 200
                metrics = cache_metrics(process)
                assert 0 < metrics["hapta_cache_bytes"] <= limit
                stored = max(stored, metrics["hapta_cache_bytes"])
            assert stored > limit / 2  # it was filled, not left empty
            # A key asked for often stays when newcomers asked for once arrive.
            hot = "/api/collections/posts/records?expand=author,coauthors&m=hot"
            for _ in range(5):
                client.get(hot)
            for i in range(60, 90):
                client.get(f"/api/collections/posts/records?expand=author,coauthors&m={i}")
            calls = process.upstream_calls()
            client.get(hot)
            assert process.upstream_calls() == calls
    finally:
        process.stop()


def test_the_cache_can_be_switched_off(gw_pb: PocketBaseServer, tmp_path: Path) -> None:
    process = GatewayProcess(gw_pb.url, env={"HAPTA_CACHE": "off"}, tmp=tmp_path).start()
    try:
        calls = process.upstream_calls()
        for _ in range(3):
            resp = httpx.get(process.url + POST, timeout=30)
            assert resp.status_code == 200 and "etag" not in resp.headers
        assert process.upstream_calls() == calls + 3
        assert "hapta_cache_hits_total 0.0" in httpx.get(f"{process.url}/metrics", timeout=5).text
    finally:
        process.stop()


def test_several_workers_serve_without_a_cache(gw_pb: PocketBaseServer, tmp_path: Path) -> None:
    """Each worker would hold a cache of its own that another worker's writes never reach."""
    process = GatewayProcess(gw_pb.url, tmp=tmp_path, args=("--workers", "2")).start()
    try:
        for _ in range(4):
            resp = httpx.get(process.url + POST, timeout=30)
            assert resp.status_code == 200 and "etag" not in resp.headers
        assert "the response cache is off with --workers > 1" in process.log()
    finally:
        process.stop()


def test_the_gateway_says_at_start_that_ttls_are_short(cached: GatewayProcess) -> None:
    assert "are not observed without PB_SUPERUSER_EMAIL" in cached.log()


# --------------------------------------------------------------------------------- bounds


def test_a_long_origin_is_not_cached_under(cached: GatewayProcess, cgw: httpx.Client) -> None:
    """Origin is part of a key (CORS answers vary by it): a made-up long one would make large
    keys, so such a read passes through uncached; a real one is cached."""
    path = "/api/collections/posts/records?perPage=3"
    for origin, cached_again in (("https://app.example", True), ("https://" + "x" * 4000, False)):
        cgw.get(path, headers={"Origin": origin})
        before = cached.upstream_calls()
        assert cgw.get(path, headers={"Origin": origin}).status_code == 200
        assert (cached.upstream_calls() == before) is cached_again
