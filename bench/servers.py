"""Processes the benchmark and the real-client tests run against, all bound to 127.0.0.1.

* ``GatewayProcess``: the generated gateway (``python -m gateway --host 127.0.0.1 --port N``
  with ``POCKETBASE_URL``), run from ``generated/`` unless the package is installed.
* ``NginxProxy``: Debian's nginx as a plain ``proxy_pass`` to PocketBase (no cache), with its
  whole configuration, pid file, logs and temp dirs in a temporary directory.
* ``wait_http``: readiness by polling a URL until a deadline (no sleeps as guesses).

Each class is a context manager; whoever starts one stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from hapta_gen.dev.pbserver import free_port, stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATED_DIR = REPO_ROOT / "generated"
LOCALHOST = "127.0.0.1"
_POLL = 0.05


class ServiceError(RuntimeError):
    """A helper process did not start (the message says why, with its log tail)."""


def wait_http(
    url: str,
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    ok: tuple[int, ...] = (200,),
) -> None:
    """Poll ``url`` until it answers one of ``ok``; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ServiceError(
                    f"{url}: process exited with code {proc.returncode}: {log_tail(log)}"
                )
            try:
                resp = client.get(url)
                if resp.status_code in ok:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(_POLL)  # poll interval, not a readiness guess
    raise ServiceError(f"{url} not ready within {timeout:g}s ({last}); {log_tail(log)}")


def log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return "log tail:\n" + "\n".join(text[-lines:]) if text else "(empty log)"


def gateway_available() -> bool:
    """Is there a runnable gateway (``generated/gateway/__main__.py`` or an installed one)?"""
    if (GENERATED_DIR / "gateway" / "__main__.py").is_file():
        return True
    try:
        import importlib.util

        return importlib.util.find_spec("gateway.__main__") is not None
    except (ImportError, ValueError):
        return False


class GatewayProcess:
    """The generated gateway in a subprocess on 127.0.0.1, in front of ``pocketbase_url``."""

    def __init__(
        self,
        pocketbase_url: str,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
        generated: Path | None = None,
    ) -> None:
        self.pocketbase_url = pocketbase_url
        #: The directory holding the ``gateway`` package to run (default: ``generated/``).
        self.generated = generated or GENERATED_DIR
        self.extra_env = dict(env or {})
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServiceError("gateway not started")
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return None if self._workdir is None else self._workdir / "gateway.log"

    def start(self) -> Self:
        self._workdir = Path(tempfile.mkdtemp(prefix="hapta-gw-"))
        self.port = self.port or free_port()
        env = {**os.environ, "POCKETBASE_URL": self.pocketbase_url, **self.extra_env}
        cwd = self.generated if (self.generated / "gateway").is_dir() else self._workdir
        assert self.log_path is not None
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "--host", LOCALHOST, "--port", str(self.port),
                 *self.extra_args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_http(f"{self.url}/health", timeout=self.startup_timeout, proc=self._proc,
                      log=self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the gateway process has used so far, or None where
        ``/proc`` does not tell (one worker runs in this process; more run in children)."""
        if self._proc is None:
            return None
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServiceError("gateway not started")
        return self._proc.pid

    def log_text(self) -> str:
        path = self.log_path
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {upstream}
    {cache_zone}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass {target};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            {keepalive_headers}
            {cache_use}
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
    )


class NginxProxy:
    """Debian's nginx as a reverse proxy (``proxy_pass``; ``cache``: with ``proxy_cache``) to
    ``upstream_url``.

    ``keepalive`` keeps a pool of upstream connections (off by default: plain ``proxy_pass``
    opens one upstream connection per request, as the performance anchors measured it).
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        workers: str = "auto",
        keepalive: int = 0,
        cache: bool = False,
        startup_timeout: float = 15.0,
    ) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        #: ``proxy_cache`` of 200 answers for 10 minutes (one fetch per key: ``proxy_cache_lock``).
        self.cache = cache
        self.workers = workers
        self.keepalive = keepalive
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServiceError("nginx not started")
        return f"http://{LOCALHOST}:{self.port}"

    def config_text(self, tmp: Path, port: int) -> str:
        upstream_host = self.upstream_url.split("://", 1)[-1]
        if self.keepalive > 0:
            upstream = f"upstream pb {{ server {upstream_host}; keepalive {self.keepalive}; }}"
            target = "http://pb"
            keepalive_headers = 'proxy_http_version 1.1;\n            proxy_set_header Connection "";'
        else:
            upstream, target, keepalive_headers = "", self.upstream_url, ""
        cache_zone = cache_use = ""
        if self.cache:
            cache_zone = (
                f"proxy_cache_path {tmp}/cache levels=1:2 keys_zone=hapta:16m max_size=256m "
                "inactive=10m use_temp_path=off;"
            )
            cache_use = (
                "proxy_cache hapta;\n            proxy_cache_valid 200 10m;\n"
                "            proxy_cache_lock on;\n"
                "            add_header X-Cache-Status $upstream_cache_status;"
            )
        return NGINX_CONF.format(
            workers=self.workers, tmp=tmp, host=LOCALHOST, port=port, upstream=upstream,
            target=target, keepalive_headers=keepalive_headers, cache_zone=cache_zone,
            cache_use=cache_use,
        )

    def start(self) -> Self:
        exe = find_nginx()
        if exe is None:
            raise ServiceError("nginx not found; install it with: apt-get install -y nginx")
        self._tmp = Path(tempfile.mkdtemp(prefix="hapta-nginx-"))
        self._tmp.chmod(0o755)  # workers may run as another user when started by root
        self.port = free_port()
        conf = self._tmp / "nginx.conf"
        conf.write_text(self.config_text(self._tmp, self.port), "utf-8")
        log = self._tmp / "error.log"
        self._proc = subprocess.Popen(
            [exe, "-p", str(self._tmp), "-c", str(conf), "-e", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self._tmp / "stderr.log").open("ab"),
        )
        try:
            wait_http(f"{self.url}/api/health", timeout=self.startup_timeout, proc=self._proc,
                      log=log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
