"""Floods against the gateway's bounds (issue 6.4): what they cost it in memory and latency.

    python bench/floods.py                      # 3 header floods of 256 MiB, 1200 streams
    python bench/floods.py --header-mib 64 --streams 300

One run starts a PocketBase (postly schema and seed) and the generated gateway on 127.0.0.1
(``127.0.0.2`` trusted as a proxy, so streams can come from many forwarded client IPs), then:

* header flood: ``--floods`` connections each send one header that never ends, up to
  ``--header-mib``, and stop when the gateway answers; reports what each got, the bytes the
  gateway read before refusing, and its resident memory (now and peak);
* stream flood: ``--streams`` realtime streams, ``--per-ip`` of them from each forwarded IP
  plus one IP asking for more; reports the answers (200 / 429 / 503), the gateway's memory and
  open file handles while they are open, and after they are gone;
* huge body: a JSON body of two million keys is checked while small requests go on; reports
  the small requests' latency before and during the check.

Results: ``bench/results/floods-*.json`` and ``.md`` (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.servers import GatewayProcess  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer  # noqa: E402
from hapta_gen.dev.seed import postly_schema, seed_postly  # noqa: E402

MiB = 1024 * 1024
PROXY = "127.0.0.2"


def memory(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MiB), and open file handles, of a process."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    out["files"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def flood_header(url: str, limit: int) -> dict[str, Any]:
    sock = socket.create_connection(_address(url), timeout=30)
    sent = 0
    answer = b""
    try:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: gw\r\nX-Flood: ")
        chunk = b"a" * (256 * 1024)
        while sent < limit and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        sock.settimeout(10)
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    finally:
        sock.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    return {"sent_mib": round(sent / MiB, 2), "status": status}


def header_floods(gateway: GatewayProcess, floods: int, limit: int) -> dict[str, Any]:
    before = memory(gateway.pid)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(flood_header(gateway.url, limit)))
        for _ in range(floods)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"before": before, "after": memory(gateway.pid), "floods": results}


async def _open_stream(url: str, ip: str) -> tuple[str, asyncio.StreamWriter | None]:
    host, port = _address(url)
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(PROXY, 0))
    except OSError as exc:
        return f"connect failed: {exc.strerror}", None
    writer.write(
        b"GET /api/realtime HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: %s\r\n\r\n" % ip.encode()
    )
    try:
        line = await asyncio.wait_for(reader.readline(), 30)
    except (OSError, TimeoutError):
        line = b""
    status = line.split(b" ", 2)[1].decode() if line.startswith(b"HTTP/") else "no answer"
    if status != "200":
        writer.close()
        return status, None
    return status, writer


async def stream_flood(gateway: GatewayProcess, streams: int, per_ip: int) -> dict[str, Any]:
    ips = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(streams // per_ip)]
    # one IP asks for more than its share first (429s), then the crowd (503s past the total)
    wanted = ["192.0.2.1"] * (per_ip + 5) + [ip for ip in ips for _ in range(per_ip)]
    before = memory(gateway.pid)
    opened: list[tuple[str, asyncio.StreamWriter | None]] = []
    for start in range(0, len(wanted), 100):  # in batches, as a crowd arrives
        batch = wanted[start : start + 100]
        opened += await asyncio.gather(*(_open_stream(gateway.url, ip) for ip in batch))
    during = memory(gateway.pid)
    health = httpx.get(f"{gateway.url}/api/health", timeout=30).status_code
    for _, writer in opened:
        if writer is not None:
            writer.close()
    deadline = time.monotonic() + 30
    while memory(gateway.pid)["files"] > before["files"] + 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # poll until the gateway has let the streams go
    return {
        "asked": len(wanted),
        "answers": dict(Counter(status for status, _ in opened)),
        "health_during": health,
        "before": before,
        "during": during,
        "after": memory(gateway.pid),
    }


def huge_body(gateway: GatewayProcess, keys: int) -> dict[str, Any]:
    small = f"{gateway.url}/api/collections/posts/records?perPage=1"
    with httpx.Client(timeout=60) as client:
        idle = []
        for _ in range(50):
            started = time.perf_counter()
            client.get(small)
            idle.append((time.perf_counter() - started) * 1000)
        body = orjson.dumps({f"k{i}": 1 for i in range(keys)})
        done = threading.Event()
        big: dict[str, Any] = {}

        def post() -> None:
            started = time.perf_counter()
            resp = httpx.post(f"{gateway.url}/api/collections/posts/records", content=body,
                              headers={"content-type": "application/json"}, timeout=120)
            big.update(status=resp.status_code, ms=round((time.perf_counter() - started) * 1000))
            done.set()

        thread = threading.Thread(target=post)
        thread.start()
        during = []
        while not done.is_set():
            started = time.perf_counter()
            client.get(small)
            during.append((time.perf_counter() - started) * 1000)
        thread.join()
    return {
        "body_mib": round(len(body) / MiB, 1),
        "big": big,
        "idle_ms": {"p50": round(statistics.median(idle), 1), "max": round(max(idle), 1)},
        "during_ms": {
            "n": len(during),
            "p50": round(statistics.median(during), 1) if during else None,
            "max": round(max(during), 1) if during else None,
        },
    }


def markdown(data: dict[str, Any]) -> str:
    h, s, b = data["headers"], data["streams"], data["body"]
    lines = [
        "# Floods against the gateway's bounds",
        "",
        f"Settings: {data['env']}",
        "",
        "| flood | gateway RSS before | during / peak | after | notes |",
        "|---|---|---|---|---|",
        f"| {len(h['floods'])} unfinished headers of up to {data['header_mib']} MiB | "
        f"{h['before']['VmRSS']} MiB | peak {h['after']['VmHWM']} MiB | {h['after']['VmRSS']} MiB | "
        f"answers {[f['status'] for f in h['floods']]}, read before refusing "
        f"{[f['sent_mib'] for f in h['floods']]} MiB |",
        f"| {s['asked']} realtime streams | {s['before']['VmRSS']} MiB, {s['before']['files']} files | "
        f"{s['during']['VmRSS']} MiB, {s['during']['files']} files | {s['after']['VmRSS']} MiB, "
        f"{s['after']['files']} files | answers {s['answers']}; /api/health during: "
        f"{s['health_during']} |",
        f"| JSON body of {b['body_mib']} MiB (2M keys) | small requests idle p50 "
        f"{b['idle_ms']['p50']} ms, max {b['idle_ms']['max']} ms | during: {b['during_ms']} | | "
        f"big body: {b['big']} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--floods", type=int, default=3, help="header floods at once")
    parser.add_argument("--header-mib", type=int, default=256, help="MiB each flood tries to send")
    parser.add_argument("--streams", type=int, default=1200, help="realtime streams asked for")
    parser.add_argument("--per-ip", type=int, default=20, help="streams per forwarded IP")
    parser.add_argument("--keys", type=int, default=2_000_000, help="keys of the huge JSON body")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    env = {"HAPTA_TRUSTED_PROXIES": f"{PROXY}/32", "HAPTA_ACCESS_LOG": "false",
           "HAPTA_LOG_LEVEL": "warning", "HAPTA_RATE_LIMIT_ENABLED": "false"}  # the bounds alone
    env.update(dict(pair.split("=", 1) for pair in args.gateway_env))
    with PocketBaseServer() as pb:
        pb.import_collections(postly_schema())
        seed_postly(pb)
        with GatewayProcess(pb.url, env=env) as gateway:
            print("header floods...", file=sys.stderr, flush=True)
            headers = header_floods(gateway, args.floods, args.header_mib * MiB)
            print("stream flood...", file=sys.stderr, flush=True)
            streams = asyncio.run(stream_flood(gateway, args.streams, args.per_ip))
            print("huge body...", file=sys.stderr, flush=True)
            body = huge_body(gateway, args.keys)
    data = {"env": env, "header_mib": args.header_mib, "headers": headers, "streams": streams,
            "body": body}
    table = markdown(data)
    json_path, md_path = write_results(results_dir(), f"floods-{stamp()}", data, table)
    print(table)
    print(f"results: {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
