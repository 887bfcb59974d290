"""Rate limits, end to end: gateways built from the postly schema with rules of their own, in
front of the session's PocketBase; counts in the gateway's memory or in a real Valkey server
(``valkey_support``, on 127.0.0.1).

Each test counts as client IPs of its own: its requests come from the trusted proxy
(127.0.0.2) with an ``X-Forwarded-For`` no other test uses, so tests do not share budgets.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import PASSWORDS, TRUSTED_PROXY, GatewayProcess, wait_until
from valkey_support import Valkey

from hapta_gen import generate
from hapta_gen.dev.pbserver import PocketBaseServer, free_port
from hapta_gen.emit.writer import write
from hapta_gen.ir.config import config_from_dict
from hapta_gen.schema.loader import load_file

SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "postly" / "pb_schema.json"
POSTS = "/api/collections/posts/records"
COMMENTS = "/api/collections/comments/records"
LIKES = "/api/collections/likes/records"
FOLLOWS = "/api/collections/follows/records"
STATS = "/api/collections/post_stats/records"
MESSAGE = "You have reached the maximum number of requests per minute"
ON = {"HAPTA_RATE_LIMIT_ENABLED": "true", "HAPTA_TRUSTED_PROXIES": f"{TRUSTED_PROXY}/32"}
#: Hapta's seed rule with Max 5: every route, per IP.
DEFAULT = {"ratelimit": {"Max": 5, "Duration": 60000, "IP": True, "isEnabled": True, "Message": MESSAGE}}
#: Rules per collection and operation, per IP, per user and global; no default rule.
RULES = {
    "ratelimit": {"Max": 5, "Duration": 60000, "isEnabled": False},
    "ratelimits": [
        {"Label": "posts:list", "Max": 3, "Duration": 60000, "Message": "Posts: slow down."},
        {"Label": "likes:list", "Max": 2, "Duration": 1500},
        {"Label": "comments:list", "Max": 2, "Duration": 60000, "Per": "user", "Message": "Comments: slow down."},
        {"Label": "follows:list", "Max": 3, "Duration": 60000, "Per": "global"},
    ],
}
#: For two nodes sharing Valkey: the default rule plus a per-user rule.
SHARED = DEFAULT | {"ratelimits": RULES["ratelimits"][2:3]}


def build(config: dict[str, Any], out: Path) -> Path:
    result = generate(load_file(SCHEMA), config_from_dict(config))
    assert result.ok, result.errors
    write(result.files, out)
    return out


@pytest.fixture(scope="module")
def valkey() -> Iterator[Valkey]:
    server = Valkey().start()
    yield server
    server.stop()


def start(pb: PocketBaseServer, cwd: Path, tmp: Path, **env: str) -> GatewayProcess:
    return GatewayProcess(pb.url, env=ON | env, tmp=tmp, cwd=cwd).start()


@pytest.fixture(scope="module")
def default_gw(gw_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    out = build(DEFAULT, tmp_path_factory.mktemp("rl-default"))
    process = start(gw_pb, out, out)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def rules_gw(gw_pb: PocketBaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    out = build(RULES, tmp_path_factory.mktemp("rl-rules"))
    process = start(gw_pb, out, out)
    yield process
    process.stop()


def get(gw: GatewayProcess, path: str, ip: str | None = None, token: str | None = None, **kw: Any) -> httpx.Response:
    """A request through the trusted proxy as client ``ip`` (or from 127.0.0.1 without)."""
    headers = dict(kw.pop("headers", {}))
    if token:
        headers["Authorization"] = token
    transport = httpx.HTTPTransport(local_address=TRUSTED_PROXY) if ip else None
    if ip:
        headers["X-Forwarded-For"] = ip
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.request(kw.pop("method", "GET"), gw.url + path, headers=headers, **kw)


def burst(urls: list[str], ip: str, n: int) -> list[httpx.Response]:
    """``n`` concurrent GETs, spread over ``urls``, all as client ``ip``."""

    async def run() -> list[httpx.Response]:
        transport = httpx.AsyncHTTPTransport(local_address=TRUSTED_PROXY)
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
        async with httpx.AsyncClient(transport=transport, limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *(client.get(urls[i % len(urls)], headers={"X-Forwarded-For": ip}) for i in range(n))
            )

    return asyncio.run(run())


def login(gw: GatewayProcess, name: str, ip: str) -> str:
    resp = get(
        gw, "/api/collections/users/auth-with-password", ip, method="POST",
        json={"identity": f"{name}@postly.test", "password": PASSWORDS[name]},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def limited(resp: httpx.Response, message: str) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.json() == {"data": {}, "message": message, "status": 429}
    assert resp.headers["ratelimit-remaining"] == "0"
    assert int(resp.headers["retry-after"]) >= 1


def refusals(gw: GatewayProcess, rule: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    found = re.search(rf'^hapta_ratelimited_total\{{rule="{re.escape(rule)}"\}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


# ----------------------------------------------------------------------------- one process


def test_twenty_concurrent_requests_from_one_ip_give_exactly_max(default_gw: GatewayProcess) -> None:
    before = refusals(default_gw, "default")
    started = time.monotonic()
    answers = burst([default_gw.url + POSTS], "198.51.100.1", 20)
    elapsed = time.monotonic() - started
    ok = [r for r in answers if r.status_code == 200]
    assert len(ok) == 5, sorted(r.status_code for r in answers)
    for resp in answers:
        if resp.status_code != 200:
            limited(resp, MESSAGE)
            retry = int(resp.headers["retry-after"])
            # the oldest allowed request leaves the 60 s window at most 60 s from now, and at
            # least 60 s after the burst began
            assert 60 - math.ceil(elapsed) <= retry <= 60
            assert resp.headers["ratelimit-reset"] == resp.headers["retry-after"]
    assert sorted(int(r.headers["ratelimit-remaining"]) for r in ok) == [0, 1, 2, 3, 4]
    assert {r.headers["ratelimit-limit"] for r in answers} == {"5"}
    assert refusals(default_gw, "default") - before == 15


def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(default_gw: GatewayProcess) -> None:
    """127.0.0.1 is not a trusted proxy: whatever it says, it is one client."""
    for i in range(5):
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        assert get(default_gw, POSTS, headers=headers).status_code == 200
    limited(get(default_gw, POSTS, headers={"X-Forwarded-For": "203.0.113.99"}), MESSAGE)
    limited(get(default_gw, POSTS), MESSAGE)


def test_forwarded_for_from_the_trusted_proxy_is_the_client(default_gw: GatewayProcess) -> None:
    for _ in range(5):
        assert get(default_gw, POSTS, "198.51.100.2").status_code == 200
    limited(get(default_gw, POSTS, "198.51.100.2"), MESSAGE)
    assert get(default_gw, POSTS, "198.51.100.3").status_code == 200
    # rightmost untrusted hop: an address the client puts in front does not make a new client
    limited(get(default_gw, POSTS, "10.9.9.9, 198.51.100.2"), MESSAGE)


def test_a_rule_limits_its_collection_and_operation_only(rules_gw: GatewayProcess) -> None:
    ip = "198.51.100.10"
    for _ in range(3):
        assert get(rules_gw, POSTS, ip).status_code == 200
    limited(get(rules_gw, POSTS, ip), "Posts: slow down.")
    view = get(rules_gw, f"{POSTS}/pst000000000001", ip)
    assert view.status_code == 200 and "ratelimit-limit" not in view.headers  # not a limited route
    stats = get(rules_gw, STATS, ip)
    assert stats.status_code == 200 and "ratelimit-limit" not in stats.headers
    likes = get(rules_gw, LIKES, ip)
    assert likes.status_code == 200 and likes.headers["ratelimit-limit"] == "2"


def test_the_window_slides(rules_gw: GatewayProcess) -> None:
    """``likes:list``: 2 in any 1.5 s. Refused while full, with a Retry-After within the
    window; allowed again once the oldest request has left the window."""
    ip = "198.51.100.11"
    assert [get(rules_gw, LIKES, ip).status_code for _ in range(2)] == [200, 200]
    refused = get(rules_gw, LIKES, ip)
    limited(refused, "Too Many Requests.")
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    answers: list[httpx.Response] = []
    wait_until(
        lambda: answers.append(get(rules_gw, LIKES, ip)) or answers[-1].status_code == 200,
        what="a slot freed by the sliding window",
    )
    assert {r.status_code for r in answers[:-1]} <= {429}


def test_per_user_rule_counts_verified_users_and_everyone_else_by_ip(
    rules_gw: GatewayProcess, tokens: dict[str, str]
) -> None:
    ip = "198.51.100.20"
    alice = login(rules_gw, "alice", ip)
    bob = login(rules_gw, "bob", ip)
    assert [get(rules_gw, COMMENTS, ip, alice).status_code for _ in range(2)] == [200, 200]
    limited(get(rules_gw, COMMENTS, ip, "Bearer " + alice), "Comments: slow down.")
    # bob, from the same IP, has a budget of his own; so does a guest there (counted by IP)
    assert [get(rules_gw, COMMENTS, ip, bob).status_code for _ in range(2)] == [200, 200]
    limited(get(rules_gw, COMMENTS, ip, bob), "Comments: slow down.")
    assert [get(rules_gw, COMMENTS, ip).status_code for _ in range(2)] == [200, 200]
    limited(get(rules_gw, COMMENTS, ip), "Comments: slow down.")
    # alice, from elsewhere, is still alice
    limited(get(rules_gw, COMMENTS, "198.51.100.21", alice), "Comments: slow down.")
    # a token PocketBase never answered through this gateway is an unverified claim: the caller
    # counts as its IP (made-up tokens do not buy fresh budgets; carol's token, obtained from
    # PocketBase directly, is not known to be carol's here)
    made_up = [get(rules_gw, COMMENTS, "198.51.100.22", f"x.{i}.y") for i in range(3)]
    assert [r.status_code == 429 for r in made_up] == [False, False, True]
    direct = [get(rules_gw, COMMENTS, "198.51.100.23", tokens["carol"]) for _ in range(2)]
    assert [r.status_code for r in direct] == [200, 200]
    limited(get(rules_gw, COMMENTS, "198.51.100.23"), "Comments: slow down.")  # the same budget
    assert get(rules_gw, COMMENTS, "198.51.100.24", tokens["carol"]).status_code == 200


def test_a_global_rule_counts_every_caller_together(rules_gw: GatewayProcess) -> None:
    answers = [get(rules_gw, FOLLOWS, f"198.51.100.{30 + i}") for i in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]


def test_the_committed_example_limits_password_logins(gw_pb: PocketBaseServer, tmp_path: Path) -> None:
    """``generated/`` (examples/postly/hapta.yaml): 10 password logins a minute per IP (and 30
    auth calls, ``*:auth``); the CORS preflights a browser sends before them spend none of it."""
    process = GatewayProcess(gw_pb.url, env=ON, tmp=tmp_path).start()
    try:
        body = {"identity": "alice@postly.test", "password": "wrong password"}
        path = "/api/collections/users/auth-with-password"
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        checks = [get(process, path, "198.51.100.45", method="OPTIONS", headers=preflight) for _ in range(35)]
        assert {r.status_code for r in checks} == {204}, {r.status_code for r in checks}
        assert "ratelimit-limit" in checks[0].headers  # counted by the rule of every request only
        answers = [get(process, path, "198.51.100.45", method="POST", json=body) for _ in range(11)]
        assert [r.status_code for r in answers] == [400] * 10 + [429]
        assert answers[0].headers["ratelimit-limit"] == "10"
        limited(answers[10], "Too Many Requests.")
        assert refusals(process, "users:auth-with-password/ip") == 1
    finally:
        process.stop()


def test_switched_off_at_run_time(gw_pb: PocketBaseServer, default_gw: GatewayProcess, tmp_path: Path) -> None:
    process = GatewayProcess(gw_pb.url, env=ON | {"HAPTA_RATE_LIMIT_ENABLED": "false"}, tmp=tmp_path, cwd=default_gw.cwd).start()
    try:
        answers = [get(process, POSTS, "198.51.100.40") for _ in range(7)]
        assert {r.status_code for r in answers} == {200}
        assert "ratelimit-limit" not in answers[0].headers
    finally:
        process.stop()


# ----------------------------------------------------------------------------- shared (Valkey)


@pytest.fixture(scope="module")
def shared_pair(
    gw_pb: PocketBaseServer, valkey: Valkey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    out = build(SHARED, tmp_path_factory.mktemp("rl-shared"))
    a = start(gw_pb, out, out, HAPTA_REDIS_URL=valkey.url)
    try:
        b = start(gw_pb, out, out, HAPTA_REDIS_URL=valkey.url)
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


def test_two_nodes_sharing_valkey_allow_exactly_max_in_total(shared_pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = shared_pair
    answers = burst([a.url + POSTS, b.url + POSTS], "198.51.100.50", 20)
    assert sum(r.status_code == 200 for r in answers) == 5, sorted(r.status_code for r in answers)
    for resp in answers:
        if resp.status_code != 200:
            limited(resp, MESSAGE)
    assert 1 <= int(next(r for r in answers if r.status_code == 429).headers["retry-after"]) <= 60


def test_a_user_verified_on_one_node_is_that_user_on_the_other(shared_pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = shared_pair
    ip = "198.51.100.51"
    alice = login(a, "alice", ip)
    assert [get(b, COMMENTS, ip, alice).status_code for _ in range(2)] == [200, 200]
    limited(get(a, COMMENTS, ip, alice), "Comments: slow down.")
    assert get(b, COMMENTS, ip).status_code == 200  # a guest there counts as the IP


def test_valkey_unreachable_fails_open_with_a_log_line(gw_pb: PocketBaseServer, default_gw: GatewayProcess, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    process = GatewayProcess(gw_pb.url, env=ON | {"HAPTA_REDIS_URL": url}, tmp=tmp_path, cwd=default_gw.cwd).start()
    try:
        answers = [get(process, POSTS, "198.51.100.60") for _ in range(7)]
        assert {r.status_code for r in answers} == {200}
        assert "rate-limit store unavailable; serving without limits" in process.log()
    finally:
        process.stop()


def test_valkey_going_down_fails_closed_with_503(
    gw_pb: PocketBaseServer, default_gw: GatewayProcess, tmp_path: Path
) -> None:
    server = Valkey().start()
    env = ON | {"HAPTA_REDIS_URL": server.url, "HAPTA_RATE_LIMIT_ON_REDIS_ERROR": "closed"}
    process = GatewayProcess(gw_pb.url, env=env, tmp=tmp_path, cwd=default_gw.cwd).start()
    try:
        up = get(process, POSTS, "198.51.100.61")
        assert up.status_code == 200 and up.headers["ratelimit-remaining"] == "4"
        server.stop()
        for _ in range(3):
            down = get(process, POSTS, "198.51.100.61")
            assert down.status_code == 503, down.text
            assert down.json() == {"data": {}, "message": "Rate limiting is unavailable; try again shortly.", "status": 503}
        assert "rate-limit store unavailable; answering 503" in process.log()
    finally:
        process.stop()
        if server.is_running():
            server.stop()
