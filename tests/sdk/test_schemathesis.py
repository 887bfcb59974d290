"""schemathesis against the gateway and its own ``/openapi.json`` (and, as the control, against
PocketBase itself with the committed ``generated/openapi.json``): no 5xx, and every response
conforms to the spec (schema, status code, content type). As a guest and as a seeded user.

The CLI runs in a subprocess with a fixed seed and a bounded number of examples per operation
(``HAPTA_ST_EXAMPLES`` / ``HAPTA_ST_SEED`` override them for deeper local runs). Path ids come
from the seed data half of the time (a schemathesis dictionary), so views, updates and deletes
reach PocketBase's logic instead of always answering 404.

Every operation but the realtime stream is fuzzed. ``KNOWN_DISAGREEMENTS`` is empty: a
disagreement with PocketBase is fixed in the spec or the gateway, not listed there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.servers import GatewayProcess
from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import postly_schema, postly_seed, seed_postly

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO_ROOT / "generated" / "openapi.json"
CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,"
    "content_type_conformance"
)
EXAMPLES = int(os.environ.get("HAPTA_ST_EXAMPLES", "8"))
SEED = int(os.environ.get("HAPTA_ST_SEED", "20261121"))
CALLER = ("bob@postly.test", "bob-pass-12345")  # seeded user: author of two posts
CALLER_ID = "usr000000000002"
#: Not fuzzed at all: an SSE stream never ends (the SDK tests cover realtime), and the gateway's
#: own streams and their tickets are not PocketBase's (tests/gateway/test_sse.py covers them).
NOT_FUZZED = (
    "/api/realtime",
    *(p for p in json.loads(SPEC_FILE.read_text("utf-8"))["paths"] if p.startswith(("/sse/", "/datastar/"))),
)
#: path -> why the spec or the gateway disagrees with PocketBase there (found by these runs).
KNOWN_DISAGREEMENTS: dict[str, str] = {}


@dataclass(frozen=True)
class Stack:
    pb: PocketBaseServer
    gateway: GatewayProcess
    token: str
    seeded: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def st_stack() -> Iterator[Stack]:
    """A PocketBase of its own (fuzzing writes to it), seeded, batch on; the gateway in front."""
    with PocketBaseServer() as server:
        server.import_collections(postly_schema())
        seeded = seed_postly(server)
        server.patch_settings(
            {"batch": {"enabled": True, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}}
        )
        resp = server.http.post(
            "/api/collections/users/auth-with-password",
            json={"identity": CALLER[0], "password": CALLER[1]},
        )
        assert resp.status_code == 200, resp.text
        token = resp.json()["token"]
        env = {"PB_SUPERUSER_EMAIL": server.email, "PB_SUPERUSER_PASSWORD": server.password}
        with GatewayProcess(server.url, env=env) as gateway:
            yield Stack(server, gateway, token, seeded)


def config_toml(seeded: dict[str, list[dict[str, Any]]]) -> str:
    """schemathesis config: seed ids, collection names and stored file names as dictionaries.

    The caller's own id is left out, so fuzzing never deletes the account it is signed in as.
    """
    ids = [r["id"] for records in postly_seed().values() for r in records if r.get("id")]
    ids = [i for i in ids if i != CALLER_ID]
    files: list[str] = []
    for records in seeded.values():
        for record in records:
            for value in record.values():
                names = value if isinstance(value, list) else [value]
                files += [n for n in names if isinstance(n, str) and "_" in n and "." in n[-5:]]
    lines = [
        "[dictionaries.record_ids]",
        f"values = {json.dumps(ids)}",
        "[dictionaries.collections]",
        f"values = {json.dumps(sorted(postly_seed()))}",
    ]
    if files:
        lines += ["[dictionaries.filenames]", f"values = {json.dumps(sorted(set(files)))}"]
    lines += [
        "[parameters]",
        '"path.id" = { dictionary = "record_ids", probability = 0.5 }',
        '"path.recordId" = { dictionary = "record_ids", probability = 0.5 }',
        '"path.collection" = { dictionary = "collections", probability = 0.5 }',
    ]
    if files:
        lines.append('"path.filename" = { dictionary = "filenames", probability = 0.5 }')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Run:
    code: int
    output: str
    cases: int
    failures: int

    def failure_text(self) -> str:
        """The FAILURES and ERRORS sections of the output (or its end)."""
        text = self.output
        starts = [i for i in (text.find("= FAILURES ="), text.find("= ERRORS =")) if i >= 0]
        return text[max(0, min(starts) - 40) :][:8000] if starts else text[-4000:]


def schemathesis(
    stack: Stack, target: str, caller: str, tmp_path: Path, *, paths: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> Run:
    """One ``schemathesis run``; ``paths`` limits it to those paths, ``exclude`` leaves some out."""
    if target == "gateway":
        location = [f"{stack.gateway.url}/openapi.json"]
    else:
        location = [str(SPEC_FILE), "--url", stack.pb.url]
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_toml(stack.seeded), "utf-8")
    junit = tmp_path / "junit.xml"
    exe = Path(sys.executable).parent / "schemathesis"
    if not exe.is_file():
        pytest.fail("schemathesis is not installed next to this Python: pip install 'schemathesis>=4.32,<5'")
    cmd = [
        str(exe), "--no-color", "--config-file", str(config), "run", *location,
        "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--phases", "examples,fuzzing", "--workers", "1", "--request-timeout", "10",
        "--continue-on-failure", "--no-shrink", "--warnings", "off",
        "--generation-database", "none", "--output-truncate", "false",
        "--report", "junit", "--report-junit-path", str(junit),
    ]
    for path in (*NOT_FUZZED, *exclude):
        cmd += ["--exclude-path", path]
    for path in paths:
        cmd += ["--include-path", path]
    if caller == "user":
        cmd += ["--header", f"Authorization: {stack.token}"]
    done = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    cases = failures = 0
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            cases += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failures += 1
    return Run(done.returncode, done.stdout + done.stderr, cases, failures)


def operation_count(*, exclude: tuple[str, ...]) -> int:
    spec = json.loads(SPEC_FILE.read_text("utf-8"))
    methods = {"get", "post", "put", "patch", "delete"}
    return sum(
        1
        for path, item in spec["paths"].items()
        if path not in exclude
        for method in item
        if method in methods
    )


@pytest.mark.parametrize("caller", ["guest", "user"])
@pytest.mark.parametrize("target", ["pocketbase", "gateway"])
def test_schemathesis(st_stack: Stack, target: str, caller: str, tmp_path: Path) -> None:
    known = tuple(KNOWN_DISAGREEMENTS)
    run = schemathesis(st_stack, target, caller, tmp_path, exclude=known)
    expected = operation_count(exclude=(*NOT_FUZZED, *known))
    assert run.cases == expected, (
        f"schemathesis tested {run.cases} operations, the spec has {expected} to test:\n"
        f"{run.output[-3000:]}"
    )
    assert run.code == 0 and run.failures == 0, (
        f"schemathesis against {target} as {caller}: {run.failures} operations failed\n"
        f"{run.failure_text()}"
    )


def test_gateway_serves_the_generated_spec(st_stack: Stack) -> None:
    resp = httpx.get(f"{st_stack.gateway.url}/openapi.json", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == json.loads(SPEC_FILE.read_text("utf-8"))
