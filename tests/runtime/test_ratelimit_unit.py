"""The moving window's arithmetic with the clock given (``MemoryWindows.hit_now``), the Lua
script's on a real Valkey (``RedisWindows``), and which rules match which routes
(``ratelimit.matches``); the layer's ``RateLimit-*`` headers with and without the server's
``RESPONSE_HEADERS`` extension."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from gateway.asgi import RESPONSE_HEADERS, STATE, Message, RequestState
from gateway.catalog import BY_NAME
from gateway.layers.ratelimit import RateLimit
from gateway.limitstore import Decision, MemoryWindows, RedisWindows, TokenBook, redis_client
from gateway.metrics import Metrics
from gateway.ratelimit import Rules, RuleSpec, matches
from gateway.routing import EXTENSION, match


def test_window_slides_one_request_at_a_time() -> None:
    w = MemoryWindows()
    check = [("k", 3, 1000)]
    assert w.hit_now(check, 0) == [Decision(True, 2, 1000)]
    assert w.hit_now(check, 400) == [Decision(True, 1, 600)]
    assert w.hit_now(check, 700) == [Decision(True, 0, 300)]
    # full: the next slot frees when the oldest (t=0) leaves the window, at t=1000
    assert w.hit_now(check, 800) == [Decision(False, 0, 200)]
    assert w.hit_now(check, 999) == [Decision(False, 0, 1)]
    # t=0 has left; t=400 and t=700 are still in: one slot, not a fresh window of three
    assert w.hit_now(check, 1000) == [Decision(True, 0, 400)]
    assert w.hit_now(check, 1001) == [Decision(False, 0, 399)]


def test_hit_one_is_hit_now_of_one_check() -> None:
    one, many = MemoryWindows(), MemoryWindows()
    for now in (0, 400, 700, 800, 999, 1000, 1001, 1400, 2500):
        remaining, reset_ms = one.hit_one("k", 3, 1000, now)
        decision = many.hit_now([("k", 3, 1000)], now)[0]
        assert (remaining >= 0, max(remaining, 0), reset_ms) == decision


def test_a_refusal_uses_up_no_other_budget() -> None:
    w = MemoryWindows()
    wide, narrow = ("wide", 10, 1000), ("narrow", 1, 1000)
    assert [d.allowed for d in w.hit_now([wide, narrow], 0)] == [True, True]
    for t in range(1, 6):
        assert [d.allowed for d in w.hit_now([wide, narrow], t)] == [True, False]
    # five refusals later, the wide rule has still counted only the one allowed request
    assert w.hit_now([wide], 10) == [Decision(True, 8, 990)]


def test_keys_whose_window_is_over_are_swept() -> None:
    w = MemoryWindows(sweep_at=11)
    for i in range(11):
        w.hit_now([(f"k{i}", 1, 100)], i)
    w.hit_now([("late", 1, 100)], 1000)  # past the threshold: every earlier window is over
    assert set(w._logs) == {"late"}


def rule(label: str) -> RuleSpec:
    return RuleSpec(name=label, label=label, max=1, window_ms=1000, per="ip", message="m")


@pytest.mark.parametrize(
    ("label", "method", "path", "expected"),
    [
        ("*", "GET", "/api/health", True),
        ("posts:list", "GET", "/api/collections/posts/records", True),
        ("posts:list", "GET", "/api/collections/comments/records", False),
        ("posts:list", "POST", "/api/collections/posts/records", False),
        ("posts:create", "POST", "/api/collections/posts/records", True),
        ("*:view", "GET", "/api/collections/comments/records/abc", True),
        ("*:auth", "POST", "/api/collections/users/auth-with-password", True),
        ("*:auth", "POST", "/api/collections/users/auth-refresh", True),
        ("*:auth", "GET", "/api/collections/users/auth-methods", False),
        ("users:auth-methods", "GET", "/api/collections/users/auth-methods", True),
        ("users:auth-with-password", "POST", "/api/collections/users/auth-with-password", True),
        ("users:auth-with-password", "POST", "/api/collections/users/auth-with-otp", False),
        ("posts:file", "GET", "/api/files/posts/abc/x.png", True),
        ("batch", "POST", "/api/batch", True),
        ("batch", "GET", "/api/health", False),
        ("*:list", "POST", "/api/batch", False),
        ("realtime", "POST", "/api/realtime", True),
    ],
)
def test_labels(label: str, method: str, path: str, expected: bool) -> None:
    assert matches(rule(label), match(method, path)) is expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [("extension", True), ("*", True), ("health", False), ("*:list", False), ("posts:view", False)],
)
def test_extension_routes_match_extension_and_star_rules_only(label: str, expected: bool) -> None:
    assert matches(rule(label), EXTENSION) is expected


def test_a_collection_named_by_id_is_the_same_collection() -> None:
    posts = BY_NAME["posts"]
    rules = Rules((rule("posts:list"), rule("*")))
    by_id = match("GET", f"/api/collections/{posts.id}/records")
    assert [r.name for r in rules.for_route(by_id)] == ["posts:list", "*"]


# ----------------------------------------------------------------------------- the Lua script


async def _with_windows(url: str, body: Callable[[RedisWindows], Awaitable[None]]) -> None:
    windows = RedisWindows(redis_client(url, 1.0))
    try:
        await body(windows)
    finally:
        await windows.aclose()


def test_valkey_window_counts_and_refuses(valkey_url: str) -> None:
    async def body(w: RedisWindows) -> None:
        decisions = [await w.hit([("count", 3, 60_000)]) for _ in range(4)]
        assert [d[0].allowed for d in decisions] == [True, True, True, False]
        assert [d[0].remaining for d in decisions] == [2, 1, 0, 0]
        assert 0 < decisions[3][0].reset_ms <= 60_000

    asyncio.run(_with_windows(valkey_url, body))


def test_valkey_concurrent_hits_are_exact_and_a_refusal_uses_no_budget(valkey_url: str) -> None:
    async def body(w: RedisWindows) -> None:
        burst = await asyncio.gather(*(w.hit([("burst", 5, 60_000)]) for _ in range(20)))
        assert sum(d[0].allowed for d in burst) == 5
        assert sorted(d[0].remaining for d in burst if d[0].allowed) == [0, 1, 2, 3, 4]
        wide, narrow = ("wide", 10, 60_000), ("narrow", 1, 60_000)
        assert [d.allowed for d in await w.hit([wide, narrow])] == [True, True]
        for _ in range(5):
            assert [d.allowed for d in await w.hit([wide, narrow])] == [True, False]
        assert (await w.hit([wide]))[0].remaining == 8

    asyncio.run(_with_windows(valkey_url, body))


def test_valkey_script_flushed_is_loaded_again_without_double_counting(valkey_url: str) -> None:
    async def body(w: RedisWindows) -> None:
        assert (await w.hit([("flush", 10, 60_000)]))[0].remaining == 9
        await w.client.call(b"SCRIPT", b"FLUSH")
        again = await asyncio.gather(*(w.hit([("flush", 10, 60_000)]) for _ in range(3)))
        assert sorted(d[0].remaining for d in again) == [6, 7, 8]

    asyncio.run(_with_windows(valkey_url, body))


@pytest.mark.parametrize("extension", [False, True])
def test_limit_headers_on_the_head_with_or_without_the_servers_extension(extension: bool) -> None:
    """Under the gateway's server the headers are handed to it (``RESPONSE_HEADERS``), the
    messages untouched; under any other server they are added to the start message."""
    sent: list[Message] = []

    async def app(scope: dict[str, object], receive: object, send: Callable[[Message], Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Message) -> None:
        sent.append(message)

    rule = RuleSpec("default", "*", 5, 60_000, "ip", "slow down")
    layer = RateLimit(app, Rules((rule,)), MemoryWindows(), TokenBook(), Metrics(), True)
    for left in (4, 3):
        sent.clear()
        st = RequestState("192.0.2.7", 0.0)
        st.route = match("GET", "/api/collections/posts/records/abc")
        extra: dict[str, list[tuple[bytes, bytes]]] = {"headers": []}
        scope = {STATE: st, "method": "GET", **({"extensions": {RESPONSE_HEADERS: extra}} if extension else {})}
        asyncio.run(layer(scope, None, send))  # type: ignore[arg-type]
        limits = [(b"ratelimit-limit", b"5"), (b"ratelimit-remaining", b"%d" % left), (b"ratelimit-reset", b"60")]
        head = sent[0]["headers"]
        assert extra["headers"] == (limits if extension else [])
        assert head == [(b"content-length", b"2"), *([] if extension else limits)]
        assert sent[1] == {"type": "http.response.body", "body": b"{}"}
