"""The benchmark harness's moving parts work (bench/ is not run in CI, so it could rot):
synthetic schemas are real PocketBase schemas that hapta-gen builds, wrk's output is read
right, the Python load generator is bounded and counts answers, nginx proxies to PocketBase.
Nothing here measures or asserts a time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.loadgen import check_local, parse_wrk, run_python
from bench.proxy import export_generated
from bench.seed import post_id, seed_bench
from bench.synth import synthetic_schema
from hapta_gen.api import generate
from hapta_gen.dev.pbserver import PocketBaseServer

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8090/api/collections/posts/records?perPage=30
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    35.12ms   40.01ms 501.22ms   88.12%
    Req/Sec     0.91k   120.00     1.20k    70.00%
  Latency Distribution
     50%   31.05ms
     75%   40.00ms
     90%   60.00ms
     99%  183.40ms
  18150 requests in 10.00s, 270.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1815.00
Transfer/sec:     27.00MB
"""


def test_parse_wrk() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.rps == 1815.0
    assert (result.p50_ms, result.p99_ms) == (31.05, 183.4)
    assert result.requests == 18150 and result.seconds == 10.0
    assert result.errors == 4 + 2 + 1


def test_parse_wrk_units_and_garbage() -> None:
    text = WRK_OUTPUT.replace("31.05ms", "812.00us").replace("183.40ms", "1.20s")
    result = parse_wrk(text)
    assert result.p50_ms == pytest.approx(0.812) and result.p99_ms == pytest.approx(1200.0)
    with pytest.raises(ValueError, match="unreadable wrk output"):
        parse_wrk("wrk: connection refused")


def test_only_local_targets() -> None:
    check_local("http://127.0.0.1:8090/api/health")
    with pytest.raises(ValueError, match="non-local"):
        check_local("http://example.com/api/health")


def test_synthetic_schema_is_deterministic_and_builds() -> None:
    schema = synthetic_schema(21)
    assert schema == synthetic_schema(21)
    assert len(schema) == 21 and len({c["name"] for c in schema}) == 21
    assert {c["type"] for c in schema} == {"auth", "base", "view"}
    types = {f["type"] for c in schema for f in c["fields"]}
    assert {"text", "editor", "number", "bool", "email", "url", "date", "select", "file",
            "relation", "json", "geoPoint", "autodate"} <= types
    result = generate(schema)
    assert result.ok, result.errors
    assert result.ir is not None and len(result.ir.collections) == 21


def test_synthetic_collections_import_into_pocketbase(fresh_pb: PocketBaseServer) -> None:
    fresh_pb.import_collections(synthetic_schema(12)[1:])  # users exists already
    names = {c["name"] for c in fresh_pb.list_collections()}
    assert {"items_0001", "items_0011"} <= names


def test_bench_seed_and_python_load_generator(fresh_pb: PocketBaseServer) -> None:
    """150 posts seed with fixed ids; the Python load generator stops at its request bound and
    counts every answer. (The nginx baseline needs Debian's nginx, which CI does not install;
    every ``bench/proxy.py`` run exercises it: a wrong config fails its first request.)"""
    ids = seed_bench(fresh_pb, 150)
    assert ids[0] == post_id(1) and len(ids) == 150
    direct = fresh_pb.http.get(f"/api/collections/posts/records/{ids[-1]}")
    assert direct.status_code == 200 and direct.json()["id"] == ids[-1]

    result = run_python(
        f"{fresh_pb.url}/api/collections/posts/records?perPage=30",
        duration=5, connections=4, max_requests=40,
    )
    assert result.requests == 40 and result.errors == 0 and result.tool == "python"


def test_baseline_gateway_is_exported_from_git(tmp_path: Path) -> None:
    """``bench/proxy.py --baseline REV`` runs the gateway committed at REV."""
    generated = export_generated("HEAD", tmp_path)
    assert (generated / "gateway" / "__main__.py").is_file()
    with pytest.raises(SystemExit, match="--baseline no-such-rev"):
        export_generated("no-such-rev", tmp_path)


def test_ratelimit_bench_setups_and_store_timings(tmp_path: Path) -> None:
    """bench/ratelimit.py: its rule matches every request and never refuses one; the three
    setups differ only in the layer and its store; --store-only times every store it has."""
    from bench import ratelimit

    rules = (ratelimit.build_gateway(tmp_path) / "gateway" / "ratelimit_rules.py").read_text()
    assert 'label="*"' in rules and "max=1000000000" in rules
    assert ratelimit.gateway_env("off", "redis://x")["HAPTA_RATE_LIMIT_ENABLED"] == "false"
    assert "HAPTA_REDIS_URL" not in ratelimit.gateway_env("memory", "redis://x")
    assert ratelimit.gateway_env("valkey", "redis://x")["HAPTA_REDIS_URL"] == "redis://x"
    data, table = ratelimit.store_only(argparse.Namespace(hits=20, max=5))
    timings = data["us_per_hit"]
    assert {"memory (deque)", "valkey: gateway's Lua (sorted set)"} <= set(timings)
    assert all(us > 0 for us in timings.values()) and "| store |" in table
