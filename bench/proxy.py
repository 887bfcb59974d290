"""Proxy benchmark: PocketBase direct vs nginx ``proxy_pass`` vs the gateway (caching off).

    python bench/proxy.py                          # 10 s, 64 connections, 3 rounds
    python bench/proxy.py --duration 5 --connections 32 --rounds 3 --targets pocketbase,nginx
    python bench/proxy.py --baseline HEAD~3        # also the gateway as generated at that commit

One run starts everything on 127.0.0.1 and stops it at the end: a PocketBase with the postly
schema and ``--posts`` public posts (batch API), Debian's nginx as a plain ``proxy_pass`` to it
(config in a temp dir, no cache), and the generated gateway with its cache off. It then loads
each target with the same wrk settings (or the Python fallback) for a record view
(``GET /api/collections/posts/records/{id}``) and a 30-item list (``?perPage=30``), in
``--rounds`` interleaved rounds, and reports medians and the ratios gateway / nginx and
gateway / PocketBase. ``--baseline REV`` adds the gateway as committed at ``REV`` (its
``generated/`` from git) as the target ``gateway@REV``, measured in the same run, so a change
to the request path is compared with the code before it. Results: ``bench/results/proxy-*.json`` and ``.md`` (gitignored).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import LoadResult, find_wrk, run_load  # noqa: E402
from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.seed import post_id, seed_bench  # noqa: E402
from bench.servers import GatewayProcess, NginxProxy, gateway_available  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer  # noqa: E402

TARGETS = ("pocketbase", "nginx", "gateway")
ENDPOINTS = {
    "record": "/api/collections/posts/records/{id}",
    "list": "/api/collections/posts/records?perPage=30",
}
#: Environment for a gateway with caching and rate limiting off (both would change what is
#: measured: a cache hit never reaches PocketBase; a limit would answer 429 under load).
GATEWAY_BENCH_ENV = {
    "HAPTA_CACHE": "off",
    "HAPTA_RATE_LIMIT_ENABLED": "false",
    "HAPTA_LOG_LEVEL": "warning",
}


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--gateway-env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


@contextlib.contextmanager
def running_targets(
    names: tuple[str, ...], posts: int, gateway_env: dict[str, str], nginx_keepalive: int,
    gateway_workers: int = 1, baselines: dict[str, Path] | None = None,
    processes: dict[str, GatewayProcess] | None = None,
) -> Iterator[tuple[dict[str, str], str]]:
    """Start PocketBase (seeded) and the requested proxies; yield base URLs and a record id.
    Gateway processes are put in ``processes`` by target name (for their CPU time)."""
    processes = processes if processes is not None else {}
    with contextlib.ExitStack() as stack:
        pb = stack.enter_context(PocketBaseServer())
        print(f"seeding {posts} posts into PocketBase at {pb.url} ...", file=sys.stderr, flush=True)
        seed_bench(pb, posts)
        urls = {"pocketbase": pb.url}
        if "nginx" in names:
            urls["nginx"] = stack.enter_context(NginxProxy(pb.url, keepalive=nginx_keepalive)).url
        if "gateway" in names:
            gateway = GatewayProcess(
                pb.url, env=gateway_env, extra_args=("--workers", str(gateway_workers))
            )
            urls["gateway"] = stack.enter_context(gateway).url
            processes["gateway"] = gateway
        for name, generated in (baselines or {}).items():
            other = GatewayProcess(
                pb.url, env=gateway_env, extra_args=("--workers", str(gateway_workers)),
                generated=generated,
            )
            urls[name] = stack.enter_context(other).url
            processes[name] = other
        yield {n: urls[n] for n in (*names, *(baselines or {}))}, post_id(1)


def export_generated(rev: str, into: Path) -> Path:
    """``generated/`` as committed at ``rev``, written below ``into``; returns its path."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", rev, "generated"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "generated"


def check_targets(urls: dict[str, str], paths: dict[str, str]) -> list[str]:
    """Every target answers 200 with the same JSON as PocketBase; returns the differences."""
    problems: list[str] = []
    with httpx.Client(timeout=10) as client:
        for endpoint, path in paths.items():
            reference = client.get(urls["pocketbase"] + path)
            reference.raise_for_status()
            expected = reference.json()
            for name, base in urls.items():
                resp = client.get(base + path)
                if resp.status_code != 200:
                    problems.append(f"{name} {endpoint}: HTTP {resp.status_code}: {resp.text[:200]}")
                elif resp.json() != expected:
                    problems.append(f"{name} {endpoint}: JSON differs from PocketBase's")
    return problems


def upstream_requests(base: str) -> float | None:
    """The gateway's ``hapta_upstream_requests_total`` (all labels), or None without metrics."""
    try:
        resp = httpx.get(f"{base}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    total = 0.0
    for line in resp.text.splitlines():
        if line.startswith("hapta_upstream_requests_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def median_result(results: list[LoadResult], cpu: list[float] | None = None) -> dict[str, Any]:
    per_cpu = [r.requests / c for r, c in zip(results, cpu or [], strict=False) if c > 0]
    return {
        "requests_per_cpu_second": round(statistics.median(per_cpu)) if per_cpu else None,
        "rps": round(statistics.median(r.rps for r in results), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in results), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in results), 2),
        "errors": sum(r.errors for r in results),
        "rounds": [asdict(r) for r in results],
    }


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def markdown(medians: dict[str, dict[str, dict[str, Any]]], meta: dict[str, Any]) -> str:
    lines = [
        f"Load: {meta['tool']} {meta['threads']} threads, {meta['connections']} connections, "
        f"{meta['duration']} s per measurement, {meta['rounds']} interleaved rounds, medians; "
        f"{meta['posts']} posts; {meta['cpus']} CPUs shared by load generator and servers; "
        f"gateway workers: {meta['gateway_workers']}, nginx upstream keepalive: "
        f"{meta['nginx_keepalive'] or 'off'}.",
        "",
        "| setup | record req/s | record p50 / p99 ms | list req/s | list p50 / p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, by_endpoint in medians.items():
        rec, lst = by_endpoint["record"], by_endpoint["list"]
        lines.append(
            f"| {name} | {rec['rps']:,.0f} | {rec['p50_ms']:.1f} / {rec['p99_ms']:.1f} | "
            f"{lst['rps']:,.0f} | {lst['p50_ms']:.1f} / {lst['p99_ms']:.1f} | "
            f"{rec['errors'] + lst['errors']} |"
        )
    shares = meta.get("gateway_upstream_share") or {}
    if any(shares.values()):
        text = ", ".join(
            f"{e} {min(v):.0%}-{max(v):.0%}" for e, v in shares.items() if v
        )
        lines += ["", f"Gateway requests that went to PocketBase (its /metrics): {text}."]
    per_cpu = {
        n: (by["record"]["requests_per_cpu_second"], by["list"]["requests_per_cpu_second"])
        for n, by in medians.items()
        if by["record"].get("requests_per_cpu_second")
    }
    if per_cpu:
        lines += [
            "",
            "Requests per gateway CPU-second (its process's user + system time during each "
            "measurement; steadier than req/s on a shared machine): "
            + "; ".join(f"{n} record {r:,}, list {li:,}" for n, (r, li) in per_cpu.items())
            + ".",
        ]
    if "gateway" in medians:
        lines += [
            "",
            "| ratio | record req/s | record p50 | record p99 | list req/s | list p50 | list p99 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        gw = medians["gateway"]
        baselines = [n for n in medians if n.startswith("gateway@")]
        for other in (*baselines, "nginx", "pocketbase"):
            if other not in medians:
                continue
            ref = medians[other]
            cells = []
            for endpoint in ("record", "list"):
                cells += [
                    ratio(gw[endpoint]["rps"], ref[endpoint]["rps"]),
                    ratio(gw[endpoint]["p50_ms"], ref[endpoint]["p50_ms"]),
                    ratio(gw[endpoint]["p99_ms"], ref[endpoint]["p99_ms"]),
                ]
            lines.append(f"| gateway / {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per target")
    parser.add_argument("--targets", default=",".join(TARGETS), help="subset of " + ",".join(TARGETS))
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--nginx-keepalive", type=int, default=0,
                        help="upstream keepalive pool for nginx (0 = plain proxy_pass)")
    parser.add_argument("--gateway-workers", type=int, default=1,
                        help="gateway worker processes (python -m gateway --workers N)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the gateway (repeatable)")
    parser.add_argument("--baseline", action="append", default=[], metavar="REV",
                        help="also measure the gateway committed at this git revision (repeatable)")
    args = parser.parse_args(argv)

    names = tuple(n for n in args.targets.split(",") if n)
    unknown = set(names) - set(TARGETS)
    if unknown or "pocketbase" not in names:
        raise SystemExit(f"--targets: choose from {TARGETS} (pocketbase is always needed)")
    if "gateway" in names and not gateway_available():
        print("gateway not found (generated/gateway/__main__.py): measuring without it",
              file=sys.stderr)
        names = tuple(n for n in names if n != "gateway")
    tool = args.tool if args.tool != "auto" else ("wrk" if find_wrk() else "python")
    gateway_env = {**GATEWAY_BENCH_ENV, **parse_env(args.gateway_env)}

    scratch = Path(tempfile.mkdtemp(prefix="hapta-baseline-"))
    baselines = {
        f"gateway@{rev}": export_generated(rev, Path(tempfile.mkdtemp(dir=scratch)))
        for rev in args.baseline
    }
    all_names = (*names, *baselines)
    processes: dict[str, GatewayProcess] = {}
    #: per gateway measurement: CPU seconds its process used
    cpu: dict[str, dict[str, list[float]]] = {n: {e: [] for e in ENDPOINTS} for n in all_names}
    results: dict[str, dict[str, list[LoadResult]]] = {
        n: {e: [] for e in ENDPOINTS} for n in all_names
    }
    #: per gateway measurement: upstream requests (from its /metrics) / requests served
    upstream_share: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    with running_targets(
        names, args.posts, gateway_env, args.nginx_keepalive, args.gateway_workers, baselines,
        processes,
    ) as (urls, record):
        paths = {e: p.format(id=record) for e, p in ENDPOINTS.items()}
        problems = check_targets(urls, paths)
        for problem in problems:
            print(f"WARNING: {problem}", file=sys.stderr)
        if args.warmup > 0:
            for base in urls.values():
                for path in paths.values():
                    run_load(base + path, duration=args.warmup, connections=args.connections,
                             threads=args.threads, tool=tool)
        for round_no in range(1, args.rounds + 1):
            for name, base in urls.items():
                for endpoint, path in paths.items():
                    # one worker's /metrics only counts that worker's requests
                    check_upstream = name.startswith("gateway") and args.gateway_workers == 1
                    before = upstream_requests(base) if check_upstream else None
                    proc = processes.get(name) if args.gateway_workers == 1 else None
                    cpu_before = proc.cpu_seconds() if proc is not None else None
                    result = run_load(base + path, duration=args.duration,
                                      connections=args.connections, threads=args.threads, tool=tool)
                    cpu_after = proc.cpu_seconds() if proc is not None else None
                    if cpu_before is not None and cpu_after is not None:
                        cpu[name][endpoint].append(cpu_after - cpu_before)
                    results[name][endpoint].append(result)
                    flag = f"  ERRORS: {result.errors}" if result.errors else ""
                    after = upstream_requests(base) if before is not None else None
                    if before is not None and after is not None and result.requests:
                        share = (after - before) / result.requests
                        upstream_share[endpoint].append(share)
                        if share < 0.95:
                            flag += f"  only {share:.0%} went upstream: is caching off?"
                    print(f"round {round_no} {name:10} {endpoint:6} {result.rps:9.0f} req/s  "
                          f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms{flag}",
                          file=sys.stderr, flush=True)

    shutil.rmtree(scratch, ignore_errors=True)
    medians = {
        n: {e: median_result(rs, cpu[n][e]) for e, rs in by.items()} for n, by in results.items()
    }
    meta = {
        "tool": tool, "threads": args.threads, "connections": args.connections,
        "duration": args.duration, "rounds": args.rounds, "posts": args.posts,
        "cpus": os.cpu_count(), "paths": paths, "gateway_env": gateway_env,
        "nginx_keepalive": args.nginx_keepalive, "gateway_workers": args.gateway_workers,
        "problems": problems, "baselines": args.baseline,
        "gateway_upstream_share": upstream_share,
    }
    table = markdown(medians, meta)
    json_path, md_path = write_results(
        results_dir(), f"proxy-{stamp()}", {"meta": meta, "medians": medians}, table
    )
    print(table)
    print(f"results: {json_path} and {md_path}", file=sys.stderr)
    if problems or any(m["errors"] for by in medians.values() for m in by.values()):
        print("some answers were not 200 or differed from PocketBase: see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
