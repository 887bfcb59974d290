"""Load generators: wrk (Debian's ``wrk`` package) or, without it, a small asyncio one.

Both run a fixed number of keep-alive connections against one 127.0.0.1 URL for a fixed time
and report requests/s, p50/p99 latency and how many answers were not 2xx (or failed). The
Python generator is bounded in time and in request count; it is much slower than wrk (it shares
the 2 cores with the servers), so compare results only within one run of one generator.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_HOSTS = ("127.0.0.1",)


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers plus socket errors and timeouts
    seconds: float
    tool: str


def check_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ALLOWED_HOSTS:
        raise ValueError(f"refusing to load a non-local target: {url}")


def find_wrk() -> str | None:
    return shutil.which("wrk")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, p50, p99, total requests and errors from ``wrk --latency`` output."""

    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rps = find(r"^Requests/sec:\s+([\d.]+)")
    p50 = find(r"^\s+50%\s+(\S+)")
    p99 = find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in ([\d.]+)(\w+)")
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unreadable wrk output:\n{output}")
    errors = 0
    non2xx = find(r"Non-2xx or 3xx responses:\s+(\d+)")
    if non2xx:
        errors += int(non2xx.group(1))
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    if sockets:
        errors += sum(int(g) for g in sockets.groups())
    seconds = _ms(total.group(2) + total.group(3)) / 1000
    return LoadResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        errors=errors,
        seconds=seconds,
        tool="wrk",
    )


def run_wrk(url: str, *, duration: float, connections: int, threads: int) -> LoadResult:
    check_local(url)
    exe = find_wrk()
    if exe is None:
        raise RuntimeError("wrk not found; install it with: apt-get install -y wrk")
    seconds = max(1, round(duration))
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "--timeout", "5s", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse_wrk(done.stdout)


# ---------------------------------------------------------------------- Python fallback


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _python_load(
    url: str, duration: float, connections: int, max_requests: int
) -> tuple[list[float], int, int, float]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    budget = [max_requests]
    started = time.perf_counter()
    stop_at = started + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            while budget[0] > 0 and time.perf_counter() < stop_at:
                budget[0] -= 1
                t0 = time.perf_counter()
                writer.write(request)
                try:
                    status = await asyncio.wait_for(_read_response(reader), timeout=5)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
                    continue
                latencies.append(time.perf_counter() - t0)
                if not 200 <= status < 300:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, errors, len(latencies), time.perf_counter() - started


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_python(
    url: str, *, duration: float, connections: int, max_requests: int = 2_000_000
) -> LoadResult:
    """The fallback generator: ``connections`` keep-alive sockets, bounded in time and count."""
    check_local(url)
    latencies, errors, count, seconds = asyncio.run(
        _python_load(url, duration, connections, max_requests)
    )
    latencies.sort()
    return LoadResult(
        rps=count / seconds if seconds else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        requests=count,
        errors=errors,
        seconds=seconds,
        tool="python",
    )


def run_load(
    url: str, *, duration: float, connections: int, threads: int, tool: str = "auto"
) -> LoadResult:
    """``tool``: ``wrk``, ``python`` or ``auto`` (wrk when installed)."""
    if tool == "wrk" or (tool == "auto" and find_wrk()):
        return run_wrk(url, duration=duration, connections=connections, threads=threads)
    return run_python(url, duration=duration, connections=connections)
