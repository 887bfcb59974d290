"""``hapta-gen demo``: PocketBase + seed + gateway up, URLs printed, all stopped on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hapta_gen.dev.demo import _gateway_source
from hapta_gen.dev.pbserver import free_port


def _start_demo(out: Path, *args: str) -> subprocess.Popen[bytes]:
    """``hapta-gen demo ARGS`` in its own process group; returns once it says it is running."""
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hapta_gen.cli", "demo", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a terminal's Ctrl-C sees it
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
    deadline = time.monotonic() + 60
    while "is running" not in out.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            raise AssertionError(out.read_text(errors="replace"))
        time.sleep(0.1)  # poll interval against the deadline
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_demo_runs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "demo.out"
    proc = _start_demo(out, "--port", str(port))
    try:
        text = out.read_text(errors="replace")
        assert f"http://127.0.0.1:{port}/docs" in text and "/_/" in text
        resp = httpx.get(f"http://127.0.0.1:{port}/api/collections/posts/records", params={"perPage": 1})
        assert resp.status_code == 200 and resp.json()["totalItems"] == 4
        assert f"http://127.0.0.1:{port}/demo/live/posts" in text
        page = httpx.get(f"http://127.0.0.1:{port}/demo/live/posts")
        assert page.status_code == 200 and 'id="posts-records"' in page.text and "/datastar/posts" in page.text
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "stopped: gateway and PocketBase" in out.read_text(errors="replace")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            raise AssertionError("the gateway still answers")
        except httpx.TransportError:
            pass
    finally:
        _kill(proc)


def test_demo_builds_the_example_without_a_checkout(tmp_path: Path) -> None:
    package_dir, package = _gateway_source(tmp_path, checkout=tmp_path / "no-generated-here")
    assert package == "gateway" and (package_dir / "gateway" / "__main__.py").is_file()
    done = subprocess.run([sys.executable, "-c", "import gateway.app"], cwd=package_dir,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_demo_pocketbase_only_serves_the_seeded_example(tmp_path: Path) -> None:
    """`task pb:up`: just the seeded PocketBase on a chosen port, stopped by Ctrl-C."""
    pb_port = free_port()
    out = tmp_path / "pb.out"
    proc = _start_demo(out, "--pocketbase-only", "--pb-port", str(pb_port))
    try:
        resp = httpx.get(f"http://127.0.0.1:{pb_port}/api/collections/posts/records", params={"perPage": 1})
        assert resp.status_code == 200 and resp.json()["totalItems"] == 4
        assert "hapta-gen schema pull" in out.read_text(errors="replace")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "stopped: PocketBase" in out.read_text(errors="replace")
    finally:
        _kill(proc)
