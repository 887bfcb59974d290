"""Slow-reader attack: do clients that request a large file and never read it hurt everyone else?

    python bench/slowreaders.py                       # 100 attackers, 5 s per measurement
    python bench/slowreaders.py --attackers 200 --baseline 9e5f7c2

One run starts, on 127.0.0.1, a PocketBase with the postly schema, a few public posts and one
public post whose cover is a ~4 MB file, and the generated gateway in front of it (plus, with
``--baseline REV``, the gateway as committed at ``REV``). For each gateway it measures a normal
request (``GET`` one post) under a light load, first quietly, then while ``--attackers`` raw
connections each ask for the large file and never read a byte (a tiny receive buffer, so the
bytes back up at once). It reports p50 / p99 and errors of the normal request in both phases.
A gateway where a slow reader holds a pooled upstream connection stalls completely once the
attackers outnumber the pool (``HAPTA_MAX_CONNECTIONS``, 100 by default).
Results: ``bench/results/slowreaders-*.json`` and ``.md`` (gitignored).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.loadgen import LoadResult, find_wrk, run_load  # noqa: E402
from bench.proxy import GATEWAY_BENCH_ENV, export_generated  # noqa: E402
from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.seed import post_id, seed_bench  # noqa: E402
from bench.servers import GatewayProcess  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer  # noqa: E402

FILE_SIZE = 4 * 1024 * 1024


def big_png(size: int) -> bytes:
    """A file PocketBase takes as ``image/png`` (its signature), padded to ``size`` bytes."""
    head = b"\x89PNG\r\n\x1a\n"
    return head + os.urandom(size - len(head))


def upload_cover(pb: PocketBaseServer, record: str) -> str:
    """Give ``record`` a large cover; returns the file's download path."""
    with pb.client() as client:
        resp = client.patch(
            f"/api/collections/posts/records/{record}",
            files={"cover": ("big.png", big_png(FILE_SIZE), "image/png")},
        )
        resp.raise_for_status()
        name = resp.json()["cover"]
    return f"/api/files/posts/{record}/{name}"


@contextlib.contextmanager
def attackers(base_url: str, path: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that request ``path`` and never read the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def measure(url: str, args: argparse.Namespace, tool: str) -> LoadResult:
    return run_load(url, duration=args.duration, connections=args.connections, threads=1, tool=tool)


def row(name: str, quiet: LoadResult, attack: LoadResult) -> str:
    def cell(r: LoadResult) -> str:
        if not r.requests:
            return f"0 | none answered | {r.errors}"
        return f"{r.rps:,.0f} | {r.p50_ms:.1f} / {r.p99_ms:.1f} | {r.errors}"

    return f"| {name} | {cell(quiet)} | {cell(attack)} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--attackers", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8, help="connections of the normal load")
    parser.add_argument("--settle", type=float, default=2, help="seconds the attack runs before measuring")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--baseline", action="append", default=[], metavar="REV",
                        help="also measure the gateway committed at this git revision")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    tool = args.tool if args.tool != "auto" else ("wrk" if find_wrk() else "python")
    env = dict(GATEWAY_BENCH_ENV)
    for pair in args.gateway_env:
        key, _, value = pair.partition("=")
        env[key] = value

    scratch = Path(tempfile.mkdtemp(prefix="hapta-slow-"))
    gateways: dict[str, Path | None] = {"gateway": None}
    for rev in args.baseline:
        gateways[f"gateway@{rev}"] = export_generated(rev, Path(tempfile.mkdtemp(dir=scratch)))
    results: dict[str, dict[str, Any]] = {}
    lines = [
        f"{args.attackers} connections request a {FILE_SIZE // 2**20} MiB file and never read; "
        f"normal load: {tool}, {args.connections} connections, {args.duration:g} s, "
        f"GET one post.",
        "",
        "| gateway | quiet req/s | quiet p50 / p99 ms | quiet errors "
        "| attack req/s | attack p50 / p99 ms | attack errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        with PocketBaseServer() as pb:
            seed_bench(pb, 10)
            file_path = upload_cover(pb, post_id(1))
            for name, generated in gateways.items():
                with GatewayProcess(pb.url, env=env, generated=generated) as gateway:
                    url = gateway.url + f"/api/collections/posts/records/{post_id(2)}"
                    quiet = measure(url, args, tool)
                    with attackers(gateway.url, file_path, args.attackers):
                        # the attack takes hold: answers to the attackers back up (a stall, if
                        # there is one, is what the next measurement sees)
                        time.sleep(args.settle)
                        attack = measure(url, args, tool)
                results[name] = {"quiet": asdict(quiet), "attack": asdict(attack)}
                lines.append(row(name, quiet, attack))
                print(lines[-1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = "\n".join(lines) + "\n"
    meta = {"attackers": args.attackers, "file_size": FILE_SIZE, "tool": tool,
            "duration": args.duration, "connections": args.connections, "baselines": args.baseline}
    json_path, md_path = write_results(
        results_dir(), f"slowreaders-{stamp()}", {"meta": meta, "results": results}, table
    )
    print(table)
    print(f"results: {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
