"""Helpers of the gateway tests: the gateway process, upstream call counts, comparisons, and a
realtime (SSE) reader."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from hapta_gen.dev.pbserver import free_port, stop_process
from hapta_gen.dev.seed import postly_seed

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = REPO_ROOT / "generated"
TRUSTED_PROXY = "127.0.0.2"
PASSWORDS = {u["email"].split("@")[0]: u["password"] for u in postly_seed()["users"]}
USER_IDS = {u["email"].split("@")[0]: u["id"] for u in postly_seed()["users"]}
_METRIC = re.compile(r'^hapta_upstream_requests_total\{[^}]*\} ([0-9.e+]+)$', re.MULTILINE)
_SSE_CLIENTS = re.compile(r'^hapta_sse_clients\{endpoint="realtime"\} ([0-9.e+-]+)$', re.MULTILINE)


class GatewayProcess:
    """``python -m gateway`` on a free 127.0.0.1 port, run from ``generated/`` (or ``cwd``: a
    package built with another configuration). Rate limits are off unless ``env`` turns them
    on (``HAPTA_RATE_LIMIT_ENABLED``): the other suites send many requests from one IP and test
    something else; ``test_ratelimit`` tests them."""

    def __init__(
        self,
        pocketbase_url: str,
        *,
        env: dict[str, str] | None = None,
        tmp: Path,
        cwd: Path = GENERATED,
        args: tuple[str, ...] = (),
    ) -> None:
        self.pocketbase_url = pocketbase_url
        self.args = args
        self.cwd = cwd
        self.extra_env = env or {}
        self.port = free_port()
        self.log_path = tmp / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HAPTA_", "PB_", "POCKETBASE_"))}
        env.update(
            {"POCKETBASE_URL": self.pocketbase_url, "HAPTA_ACCESS_LOG": "false", "HAPTA_RATE_LIMIT_ENABLED": "false"}
        )
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited ({self.proc.returncode}): {self.log()[-2000:]}")
                try:
                    client.get(f"{self.url}/metrics")  # answers without asking PocketBase
                    return
                except httpx.TransportError:
                    time.sleep(0.02)  # poll interval against the deadline
        raise RuntimeError(f"gateway not ready within {timeout}s: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, timeout=15)

    def upstream_calls(self) -> float:
        """Requests the gateway has sent to PocketBase so far (its own counter)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(v) for v in _METRIC.findall(text))

    def sse_clients(self) -> float:
        """Realtime streams the gateway has open to PocketBase (its ``hapta_sse_clients``)."""
        found = _SSE_CLIENTS.search(httpx.get(f"{self.url}/metrics", timeout=5).text)
        assert found is not None, "no hapta_sse_clients in /metrics"
        return float(found.group(1))


def metric(target: GatewayProcess | str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples on ``target``'s ``/metrics`` (a gateway or its URL) whose
    labels include ``labels``; 0 when there is none (the metric itself must exist)."""
    url = target if isinstance(target, str) else target.url
    text = httpx.get(f"{url}/metrics", timeout=5).text
    family = name.removesuffix("_total")
    known = f"# TYPE {family} " in text or f"# TYPE {name} " in text
    assert known, f"no metric {name} on {url}/metrics"  # a renamed metric is not a 0
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        base, _, rest = sample.partition("{")
        if base == name and wanted <= set(rest.rstrip("}").split(",")) - {""}:
            total += float(value)
    return total


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": token} if token else {}


def same(pb_resp: httpx.Response, gw_resp: httpx.Response) -> None:
    """Status and parsed JSON body equal (key order inside objects is not significant)."""
    assert gw_resp.status_code == pb_resp.status_code, (gw_resp.text, pb_resp.text)
    if pb_resp.content:
        assert gw_resp.json() == pb_resp.json()
    else:
        assert gw_resp.content == b""


def strip_volatile(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("id", "created", "updated")}


class EventStream:
    """``GET /api/realtime`` read on a thread of its own; events are queued as they arrive.

    Opening waits for ``PB_CONNECT`` (so ``client_id`` is known); ``next_event`` waits for the
    next event against a deadline; ``ended`` is set when the server ends the stream.
    """

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, local_address: str | None = None) -> None:
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None), transport=transport)
        self._stream = self._client.stream("GET", f"{base_url}/api/realtime", headers=headers)
        self.response = self._stream.__enter__()
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self._history: list[dict[str, str]] = []
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        connect = self.next_event()
        assert connect["event"] == "PB_CONNECT", connect
        self.client_id: str = json.loads(connect["data"])["clientId"]

    def _read(self) -> None:
        event: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if not line:
                    if event:
                        self._history.append(event)
                        self.events.put(event)
                    event = {}
                    continue
                if line.startswith(":"):
                    continue  # a comment (heartbeat)
                key, _, value = line.partition(":")
                event[key] = value
        except (httpx.HTTPError, OSError, ValueError):
            pass  # closed under us (``close``)
        finally:
            self.ended.set()

    def next_event(self, timeout: float = 10.0) -> dict[str, str]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no realtime event within {timeout}s") from None

    def received(self) -> list[dict[str, str]]:
        """Every event the stream sent so far, in order (those ``next_event`` took too)."""
        return list(self._history)

    def close(self) -> None:
        """Disconnect (a shutdown wakes the reader thread; a bare close would not)."""
        sock = self.response.extensions["network_stream"].get_extra_info("socket")
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the server
        try:
            self._stream.__exit__(None, None, None)
        finally:
            self._client.close()
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def wait_until(check: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``check()`` until it is true, against a deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.02)  # poll interval against the deadline
