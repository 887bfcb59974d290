"""The official PocketBase JS SDK (npm ``pocketbase``) runs a whole user session.

``tests/sdk/js/session.mjs`` signs up, logs in, creates a post with a file (and downloads it),
lists with ``expand`` and ``filter``, updates, deletes, refreshes the token, subscribes to
realtime and receives a create event, and logs out, asserting every step. It must pass against
PocketBase itself (the control) and against the gateway, unchanged but for the base URL.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sdk_support import STEPS, Target

from generator.pbserver import free_port


def run_session(node: str, js_dir: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(js_dir / "session.mjs"), url],
        cwd=js_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_js_sdk_session(target: Target, node: str, js_sdk_dir: Path) -> None:
    done = run_session(node, js_sdk_dir, target.url)
    assert done.returncode == 0, (
        f"JS SDK session against {target.name} failed (exit {done.returncode}):\n"
        f"{done.stderr.strip()}\n{done.stdout.strip()}"
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["baseUrl"] == target.url
    assert [s["name"] for s in summary["steps"]] == list(STEPS)
    steps = {s["name"]: s for s in summary["steps"]}
    live = steps["realtime"]["post"]
    assert {"action": "create", "id": live} in summary["realtimeEvents"]
    # the session's posts went through to PocketBase and are gone again (deleted through the SDK)
    for post in (steps["create-with-file"]["post"], live):
        assert target.pb.http.get(f"/api/collections/posts/records/{post}").status_code == 404
    user = steps["signup"]["user"]
    assert target.pb.http.get(f"/api/collections/users/records/{user}").status_code == 200


def test_js_session_reports_the_failing_step(node: str, js_sdk_dir: Path) -> None:
    """A target that refuses connections fails at the first step with a clear message."""
    done = run_session(node, js_sdk_dir, f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert done.stderr.startswith("FAIL signup: no HTTP answer")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] is False and summary["failedStep"] == "signup"
