"""Realtime fan-out benchmark: many SSE clients on one public topic, through the gateway and
directly on PocketBase, in one run.

    python bench/realtime.py                       # 1,000 clients per target, 10 writes per round, 2 rounds
    python bench/realtime.py --clients 500 --writes 5 --rounds 3

One run starts a seeded postly PocketBase and the gateway (``--workers 2``, cache off, access
log off) on 127.0.0.1, then opens ``--clients`` realtime streams to each (all in this process,
asyncio). Rounds alternate between the targets: the round's clients subscribe to ``posts/*``
(the others hold no subscription), then ``--writes`` posts are written directly in PocketBase
one after the other, each after the previous one reached every client. For each write and
client the time from just before the write to the event's arrival is kept; the report gives
p50 / p99 / max per target. Also: the gateway's memory (RSS of the process and its workers)
per client (with all clients subscribed, minus before any connected), and the connections
PocketBase holds with the gateway (counted at PocketBase's end from ``/proc``) with one client
and with all of them. Results: ``bench/results/realtime-*.json`` and ``.md`` (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.servers import GatewayProcess  # noqa: E402
from bench.sseclient import SSEClient  # noqa: E402
from bench.tcpconns import connections_between, process_tree  # noqa: E402
from hapta_gen.dev.pbserver import PocketBaseServer  # noqa: E402
from hapta_gen.dev.seed import postly_schema, postly_seed, seed_postly  # noqa: E402

TOPIC = "posts/*"
POSTS = "/api/collections/posts/records"


def rss_kib(pid: int) -> int:
    total = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Group:
    """One target's clients, each with a task reading its stream."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.clients: list[SSEClient] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.wanted = ""
        self.started = 0.0
        self.arrived: dict[str, list[float]] = {}
        self.done = asyncio.Event()
        self.errors = 0

    async def connect(self, count: int) -> None:
        batch = 100
        for start in range(0, count, batch):
            opened = await asyncio.gather(
                *(SSEClient.open(self.url) for _ in range(min(batch, count - start)))
            )
            self.clients.extend(opened)
        self.tasks = [asyncio.create_task(self._read(c)) for c in self.clients]

    async def _read(self, client: SSEClient) -> None:
        try:
            while True:
                name, data = await client.next_event()
                if name != TOPIC or '"action":"create"' not in data:
                    continue
                at = data.find('"id":"') + 6
                record = data[at : data.index('"', at)]
                times = self.arrived.setdefault(record, [])
                times.append(time.perf_counter() - self.started)
                self.check()
        except Exception:  # a stream that broke is counted, not fatal
            self.errors += 1

    def check(self) -> None:
        if self.wanted and len(self.arrived.get(self.wanted, ())) >= len(self.clients):
            self.done.set()

    async def subscribe(self, _: httpx.AsyncClient, topics: list[str]) -> None:
        """Every client's subscriptions (a pool of its own: idle keep-alive connections of an
        earlier round may have been closed by the server meanwhile)."""
        limit = asyncio.Semaphore(50)
        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.gather(*(self._one(http, limit, c, topics) for c in self.clients))

    async def _one(self, http: httpx.AsyncClient, limit: asyncio.Semaphore, client: SSEClient,
                   topics: list[str]) -> None:
        async with limit:
            resp = await http.post(f"{self.url}/api/realtime",
                                   json={"clientId": client.client_id, "subscriptions": topics})
            if resp.status_code != 204:
                raise RuntimeError(f"{self.name}: subscribe answered {resp.status_code}: {resp.text}")

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for client in self.clients:
            client.close()


async def write_and_wait(pb: httpx.AsyncClient, token: str, author: str, group: Group, n: int) -> list[float]:
    group.arrived = {}
    group.done.clear()
    group.started = time.perf_counter()
    resp = await pb.post(POSTS, headers={"Authorization": token},
                         json={"title": f"realtime bench {n}", "status": "draft", "author": author})
    resp.raise_for_status()
    group.wanted = resp.json()["id"]
    group.check()  # the events may all have come before the answer
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(group.done.wait(), 60)
    arrived = group.arrived.get(group.wanted, [])
    if len(arrived) < len(group.clients):
        raise RuntimeError(f"{group.name}: {len(group.clients) - len(arrived)} clients missed write {n}")
    await pb.delete(f"{POSTS}/{group.wanted}", headers={"Authorization": token})
    group.wanted = ""
    return list(arrived)


async def run(args: argparse.Namespace, pb_server: PocketBaseServer, gateway: GatewayProcess) -> dict[str, Any]:
    token = pb_server.superuser_token()
    author = postly_seed()["users"][0]["id"]
    pb_port = urlsplit(pb_server.url).port
    assert pb_port is not None
    result: dict[str, Any] = {"clients": args.clients, "writes": args.writes, "rounds": args.rounds}
    async with httpx.AsyncClient(timeout=30) as http, httpx.AsyncClient(base_url=pb_server.url, timeout=30) as pb:
        gw = Group("gateway", gateway.url)
        direct = Group("pocketbase", pb_server.url)
        rss_before = rss_kib(gateway.pid)
        probe = Group("gateway", gateway.url)
        await probe.connect(20)
        await probe.subscribe(http, [TOPIC])
        result["pb_connections_gateway_20_clients"] = connections_between(pb_port, gateway.pid)
        probe.close()
        print(f"opening {args.clients} streams to each target ...", file=sys.stderr, flush=True)
        await gw.connect(args.clients)
        pb_before = rss_kib(pb_server.pid)
        await direct.connect(args.clients)
        await direct.subscribe(http, [TOPIC])
        result["pocketbase_kib_per_stream"] = round((rss_kib(pb_server.pid) - pb_before) / args.clients, 2)
        await direct.subscribe(http, [])
        await gw.subscribe(http, [TOPIC])
        await write_and_wait(pb, token, author, gw, -1)  # warm: every client has had an event
        rss_after = rss_kib(gateway.pid)
        result["pb_connections_gateway_all_clients"] = connections_between(pb_port, gateway.pid)
        result["gateway_rss_kib_before"] = rss_before
        result["gateway_rss_kib_after"] = rss_after
        result["gateway_kib_per_client"] = round((rss_after - rss_before) / args.clients, 2)
        latencies: dict[str, list[float]] = {"gateway": [], "pocketbase": []}
        for round_no in range(args.rounds):
            for group, other in ((gw, direct), (direct, gw)):
                await other.subscribe(http, [])
                await group.subscribe(http, [TOPIC])
                for n in range(args.writes):
                    latencies[group.name] += await write_and_wait(pb, token, author, group, round_no * 1000 + n)
                print(f"round {round_no + 1}: {group.name} done", file=sys.stderr, flush=True)
        for name, values in latencies.items():
            result[name] = {
                "deliveries": len(values),
                "p50_ms": round(percentile(values, 0.5) * 1000, 2),
                "p99_ms": round(percentile(values, 0.99) * 1000, 2),
                "max_ms": round(max(values) * 1000, 2),
                "mean_ms": round(statistics.fmean(values) * 1000, 2),
            }
        result["stream_errors"] = gw.errors + direct.errors
        gw.close()
        direct.close()
    return result


def table(result: dict[str, Any]) -> str:
    gw, pb = result["gateway"], result["pocketbase"]
    return "\n".join([
        f"{result['clients']} clients per target, {result['writes']} writes x {result['rounds']} rounds each",
        "",
        "| target | deliveries | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        f"| PocketBase direct | {pb['deliveries']} | {pb['p50_ms']} | {pb['p99_ms']} | {pb['max_ms']} |",
        f"| gateway (2 workers) | {gw['deliveries']} | {gw['p50_ms']} | {gw['p99_ms']} | {gw['max_ms']} |",
        "",
        f"gateway memory per client: {result['gateway_kib_per_client']} KiB "
        f"(RSS {result['gateway_rss_kib_before']} -> {result['gateway_rss_kib_after']} KiB)",
        f"PocketBase memory per direct stream: {result['pocketbase_kib_per_stream']} KiB",
        f"connections PocketBase holds with the gateway: {result['pb_connections_gateway_20_clients']} "
        f"with 20 clients, {result['pb_connections_gateway_all_clients']} with {result['clients']}",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    streams = str(args.clients * 2 + 100)
    env = {
        "HAPTA_CACHE": "off", "HAPTA_ACCESS_LOG": "false", "HAPTA_RATE_LIMIT_ENABLED": "false",
        "HAPTA_MAX_STREAMS": streams, "HAPTA_MAX_STREAMS_PER_IP": streams,
        "HAPTA_MAX_CLIENTS": str(args.clients * 4 + 1000), "HAPTA_LOG_LEVEL": "warning",
    }
    with PocketBaseServer() as pb_server:
        pb_server.import_collections(postly_schema())
        seed_postly(pb_server)
        with GatewayProcess(pb_server.url, env=env, extra_args=("--workers", str(args.workers))) as gateway:
            result = asyncio.run(run(args, pb_server, gateway))
    result["command"] = "python bench/realtime.py " + " ".join(sys.argv[1:])
    text = table(result)
    json_path, _ = write_results(results_dir(), f"realtime-{stamp()}", result, text)
    print(text)
    print(f"results: {json_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
