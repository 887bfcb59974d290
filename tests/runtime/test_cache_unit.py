"""``cachestore`` and ``cachepolicy`` in-process: the byte bound, admission, tags, fills that raced
an invalidation, and the keys, scopes and tags requests get."""

from __future__ import annotations

import base64
import json
from typing import Any

from gateway.cachepolicy import ANY, SCOPED, change_tags, read_plan, write_tags
from gateway.cachestore import OVERHEAD, CacheStore, Entry
from gateway.routing import BATCH, match

NOW = 1000.0


def entry(size: int = 100, tags: frozenset[str] = frozenset(), expires: float = 1e12) -> Entry:
    return Entry([(b"content-type", b"application/json")], b"x" * size, b'"e"', tags, expires)


def scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"method": "GET", "path": path, "query_string": query, "headers": headers or []}


def plan(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return read_plan(match("GET", path), scope(path, query, headers))


def token(collection_id: str) -> bytes:
    claims = base64.urlsafe_b64encode(json.dumps({"type": "auth", "collectionId": collection_id}).encode())
    return b"eyJhbGciOiJIUzI1NiJ9." + claims.rstrip(b"=") + b".sig"


# ------------------------------------------------------------------------------------ store


def test_the_store_stays_within_its_bound_and_evicts_the_least_recent() -> None:
    one = entry().size
    store = CacheStore(max_bytes=one * 4)
    for i in range(4):
        assert store.put(i, entry(), store.epoch)
    assert store.get(0) is not None  # 0 is now the most recent
    assert store.put(4, entry(), store.epoch)
    assert store.bytes <= store.max_bytes and len(store) == 4
    assert store.get(1) is None and store.get(0) is not None


def test_an_answer_above_a_quarter_of_the_bound_is_not_kept() -> None:
    store = CacheStore(max_bytes=4000)
    assert not store.put("big", entry(1001 - OVERHEAD), store.epoch)
    assert store.bytes == 0


def test_a_newcomer_asked_for_less_often_does_not_displace_a_popular_entry() -> None:
    store = CacheStore(max_bytes=entry().size * 4)
    for i in range(4):
        for _ in range(3):
            store.get(i)
        store.put(i, entry(), store.epoch)
    store.get("new")
    assert not store.put("new", entry(), store.epoch)
    for _ in range(5):
        store.get("new")
    assert store.put("new", entry(), store.epoch)


def test_invalidation_drops_tagged_entries_and_refuses_fills_that_raced_it() -> None:
    store = CacheStore(max_bytes=100_000)
    store.put("a", entry(tags=frozenset({"col:posts"})), store.epoch)
    store.put("b", entry(tags=frozenset({"col:users"})), store.epoch)
    started = store.epoch  # a fetch begins ...
    assert store.invalidate({"col:posts"}) == 1  # ... a write lands meanwhile
    assert store.get("a") is None and store.get("b") is not None
    assert not store.put("c", entry(tags=frozenset({"col:posts"})), started)
    assert store.put("d", entry(tags=frozenset({"col:users"})), started)
    before_flush = store.epoch
    assert store.flush() == 2 and store.bytes == 0
    assert not store.put("e", entry(), before_flush)


def test_expired_entries_are_not_served() -> None:
    store = CacheStore(max_bytes=100_000)
    store.put("a", entry(expires=NOW + 5), store.epoch)
    assert store.get("a", now=NOW) is not None
    assert store.get("a", now=NOW + 5) is None
    assert store.bytes == 0


# ----------------------------------------------------------------------------------- policy


def test_keys_sort_parameters_by_name_and_keep_the_order_of_one_names_values() -> None:
    a = plan("/api/collections/posts/records", b"sort=title&page=2&expand=author&expand=coauthors")
    b = plan("/api/collections/posts/records", b"page=2&expand=author&sort=title&expand=coauthors")
    c = plan("/api/collections/posts/records", b"page=2&expand=coauthors&sort=title&expand=author")
    assert a.key == b.key != c.key


def test_what_is_never_cached() -> None:
    posts = "/api/collections/posts/records"
    assert plan(posts, b"filter=publishAt<@now") is None  # changes with time
    assert plan(posts, b"a=1;b=2") is None  # Go drops it: not read the way PocketBase reads it
    assert plan(posts, b"expand=nothing") is None


def test_scopes() -> None:
    posts = "/api/collections/posts/records"
    guest = plan(posts)
    user = plan(posts, headers=[(b"authorization", token("_pb_users_auth_"))])
    other = plan(posts, headers=[(b"authorization", token("_pb_users_auth_") + b"x")])
    admin = plan(posts, headers=[(b"authorization", token("pbc_3142635823"))])
    assert guest.shared is None and SCOPED not in guest.tags
    assert user.key != guest.key and user.shared == guest.key and SCOPED in user.tags
    assert other.key not in (user.key, guest.key)
    assert admin.shared is None  # a superuser sees hidden fields
    # An auth record in the answer (its owner sees its email): never the guest's copy.
    assert plan(posts, b"expand=author", [(b"authorization", token("_pb_users_auth_"))]).shared is None
    assert plan("/api/collections/users/records", headers=[(b"authorization", token("_pb_users_auth_"))]).shared is None
    # A rule that is not "": only the exact credential.
    attachments = plan("/api/collections/attachments/records", headers=[(b"authorization", token("_pb_users_auth_"))])
    assert attachments.shared is None and ANY in attachments.tags
    # Origin changes PocketBase's CORS headers.
    assert plan(posts, headers=[(b"origin", b"https://a.test")]).key != guest.key


def test_tags_reach_expanded_and_viewed_collections() -> None:
    assert plan("/api/collections/posts/records").tags == {"col:posts"}
    view = plan("/api/collections/posts/records/pst1", b"expand=comments_via_post.author")
    assert view.tags == {"rec:posts:pst1", "all:posts", "col:comments", "col:users"}
    stats = plan("/api/collections/post_stats/records")
    assert stats.tags == {"col:comments", "col:likes", "col:posts"}
    assert ANY in plan("/api/collections/posts/records", b"filter=author.name='x'").tags


def test_a_back_relation_without_a_dot_reaches_its_collection() -> None:
    """``x_via_y:length`` / ``:each`` name no field path, yet read another collection (under its
    rules): tagged as reaching anything, and never the guests' copy for a signed-in caller.
    (PocketBase 0.40 answers these with a 400, which is never cached; this guards a version
    that takes them, as it takes ``x_via_y.field:length``.)"""
    posts = "/api/collections/posts/records"
    user = [(b"authorization", token("_pb_users_auth_"))]
    for query in (
        b"filter=comments_via_post:length>0",
        b"filter=comments_via_post:each%3D'x'",
        b"sort=comments_via_post:length",
    ):
        assert ANY in plan(posts, query).tags, query
        assert plan(posts, query, user).shared is None, query
    assert plan(posts, b"filter=title:lower%3D'x'", user).shared is not None  # its own field


def test_write_tags() -> None:
    update = write_tags(match("PATCH", "/api/collections/posts/records/pst1"))
    assert update == {ANY, "col:posts", "rec:posts:pst1"}
    delete = write_tags(match("DELETE", "/api/collections/posts/records/pst1"))
    assert delete is not None and {"col:comments", "all:comments", "col:likes"} <= delete
    user = write_tags(match("PATCH", "/api/collections/users/records/u1"))
    assert user is not None and SCOPED in user and "all:users" in user
    assert write_tags(BATCH) is None  # everything


def test_change_tags_of_realtime_events() -> None:
    """What ``cachelisten`` drops for an event: the same as the write through the gateway."""
    assert change_tags("posts", "pst1") == write_tags(match("PATCH", "/api/collections/posts/records/pst1"))
    assert change_tags("posts", "pst1", delete=True) == write_tags(
        match("DELETE", "/api/collections/posts/records/pst1")
    )
    # Superusers and collections this gateway does not know (system ones): tokens may be revoked.
    assert SCOPED in change_tags("_superusers", "su1")
    assert SCOPED in change_tags("_mfas", "m1") and ANY in change_tags("_mfas", "m1")
    assert SCOPED not in change_tags("comments", "c1")
