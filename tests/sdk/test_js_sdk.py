"""The official PocketBase JS SDK (npm ``pocketbase``) runs a whole user session.

``tests/sdk/js/session.mjs`` signs up, logs in, creates a post with a file (and downloads it),
lists with ``expand`` and ``filter``, updates, deletes, refreshes the token, subscribes to
realtime and receives a create event, and logs out, asserting every step. It must pass against
PocketBase itself (the control) and against the gateway, unchanged but for the base URL. The
CRUD part and the realtime part run as separate tests so one gap does not hide the other.

Every part also runs against a gateway with rolling sessions (``HAPTA_SESSIONS=rolling``,
target ``gateway-rolling``), and once more with ``--sessions=rolling``: the SDK keeps working with the gateway's keys (JWT-shaped, so its
``authStore.isValid`` reads their ``exp``), the key changes on refresh, and logout revokes it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sdk_support import CRUD_STEPS, REALTIME_STEPS, Target

from bench.servers import GatewayProcess
from hapta_gen.dev.pbserver import PocketBaseServer, free_port
from hapta_gen.dev.seed import postly_seed


@pytest.fixture
def rolling_target(sdk_pb: tuple[PocketBaseServer, Any], sdk_rolling_gateway: GatewayProcess) -> Target:
    server, seed = sdk_pb
    return Target("gateway-rolling", sdk_rolling_gateway.url, server, seed)


def run_session(
    node: str, js_dir: Path, url: str, part: str, *options: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(js_dir / "session.mjs"), f"--part={part}", *options, url],
        cwd=js_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def passed_session(
    node: str, js_dir: Path, target: Target, part: str, *options: str
) -> dict[str, Any]:
    """Run one part; assert it passed; return the steps by name."""
    done = run_session(node, js_dir, target.url, part, *options)
    assert done.returncode == 0, (
        f"JS SDK session ({part}) against {target.name} failed (exit {done.returncode}):\n"
        f"{done.stderr.strip()}\n{done.stdout.strip()}"
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["baseUrl"] == target.url
    steps: dict[str, Any] = {s["name"]: s for s in summary["steps"]}
    steps["_summary"] = summary
    return steps


def test_js_sdk_crud_session(target: Target, node: str, js_sdk_dir: Path) -> None:
    steps = passed_session(node, js_sdk_dir, target, "crud")
    assert [s["name"] for s in steps["_summary"]["steps"]] == list(CRUD_STEPS)
    # what the SDK did reached PocketBase: the user exists, the post was created and deleted
    post = steps["create-with-file"]["post"]
    assert target.pb.http.get(f"/api/collections/posts/records/{post}").status_code == 404
    user = steps["signup"]["user"]
    assert target.pb.http.get(f"/api/collections/users/records/{user}").status_code == 200


def test_js_sdk_crud_session_with_rolling_sessions(
    rolling_target: Target, node: str, js_sdk_dir: Path
) -> None:
    steps = passed_session(node, js_sdk_dir, rolling_target, "all", "--sessions=rolling")
    assert [s["name"] for s in steps["_summary"]["steps"]] == [*CRUD_STEPS[:-1], "realtime", "logout"]
    assert steps["auth-refresh"]["tokenChanged"] is True
    post = steps["create-with-file"]["post"]
    assert rolling_target.pb.http.get(f"/api/collections/posts/records/{post}").status_code == 404


def test_js_sdk_realtime(target: Target, node: str, js_sdk_dir: Path) -> None:
    steps = passed_session(node, js_sdk_dir, target, "realtime")
    assert [s["name"] for s in steps["_summary"]["steps"]] == list(REALTIME_STEPS)
    live = steps["realtime"]["post"]
    assert {"action": "create", "id": live} in steps["_summary"]["realtimeEvents"]
    assert target.pb.http.get(f"/api/collections/posts/records/{live}").status_code == 404


def test_js_session_reports_the_failing_step(node: str, js_sdk_dir: Path) -> None:
    """A target that refuses connections fails at the first step with a clear message."""
    done = run_session(node, js_sdk_dir, f"http://127.0.0.1:{free_port()}", "all")
    assert done.returncode == 1
    assert done.stderr.startswith("FAIL signup: no HTTP answer")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] is False and summary["failedStep"] == "signup"


def test_js_sdk_realtime_mixes_public_and_owner_only_topics(target: Target, node: str, js_sdk_dir: Path) -> None:
    """Three SDK clients at once (``realtime_mix.mjs``): public ``posts/*`` events reach the
    guest and a signed-in user; owner-only ``attachments/*`` events reach their owner only;
    alice, mixing both on one client, gets both. Through the gateway the public topic is
    served from its shared stream and the owner-only one from each client's own; PocketBase
    itself is the control."""
    users = {u["email"].split("@")[0]: u["password"] for u in postly_seed()["users"]}
    done = subprocess.run(
        [node, str(js_sdk_dir / "realtime_mix.mjs"), target.url],
        cwd=js_sdk_dir, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PB_USERS": json.dumps(users)},
    )
    assert done.returncode == 0, f"{target.name}: {done.stderr.strip()}\n{done.stdout.strip()}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    ids, received = summary["ids"], summary["received"]
    creates = {name: {(e["topic"], e["id"]) for e in events if e["action"] == "create"}
               for name, events in received.items()}
    assert ("attachments/*", ids["alice"]) in creates["alice"]
    assert ("posts/*", ids["post"]) in creates["alice"]
    assert ("posts/*", ids["post"]) in creates["guest"]
    assert ("attachments/*", ids["bob"]) in creates["bob"]
    # nobody received an attachment that is not theirs (read after each one's marker)
    assert not [e for e in received["guest"] if e["topic"] == "attachments/*"]
    assert [e["id"] for e in received["bob"] if e["action"] == "create"] == [ids["bob"]]
    assert ("attachments/*", ids["bob"]) not in creates["alice"]
