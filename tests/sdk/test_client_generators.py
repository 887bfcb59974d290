"""Client generators consume the committed spec (``generated/openapi.json``) whole.

* ``openapi-python-client`` (PyPI, pinned in the ``dev`` extra): generates a package with no
  warning (no schema refused, no endpoint or response left out); the package imports, has one
  endpoint module per operationId, reads the file download as bytes, and carries the update
  modifiers (``tags+``...) of a PATCH body as additional properties.
* ``openapi-typescript`` (npm, devDependency in ``tests/sdk/js``): emits types that ``tsc``
  (``typescript``, same place) compiles in strict mode, together with a few bodies written
  against them: a PATCH body mixing plain fields and modifiers compiles, a wrongly typed field
  does not.

No network: both come from what is installed (``pip install -e .[dev]``, ``npm ci``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO_ROOT / "generated" / "openapi.json"
PACKAGE = "pb_client_check"

#: Imports the generated package (argv: its parent directory, its name); prints what it found.
PY_CHECK = """
import importlib, json, pkgutil, sys, typing
sys.path.insert(0, sys.argv[1])
name = sys.argv[2]
api = importlib.import_module(name + ".api")
endpoints = []
for info in pkgutil.walk_packages(api.__path__, name + ".api."):
    module = importlib.import_module(info.name)
    if all(hasattr(module, f) for f in ("sync", "sync_detailed", "asyncio", "asyncio_detailed")):
        endpoints.append(info.name.rsplit(".", 1)[1])
files = importlib.import_module(name + ".types").File
get_file = importlib.import_module(name + ".api.files.get_file")
answers = typing.get_args(typing.get_type_hints(get_file.sync)["return"])
models = importlib.import_module(name + ".models")
body = models.PostsUpdate.from_dict({"title": "Hi", "tags+": ["go"], "+tags": "news", "views-": 2})
print(json.dumps({
    "endpoints": endpoints,
    "file_as_bytes": files in answers,
    "title": body.title,
    "body": body.to_dict(),
}))
"""

#: Written next to the generated ``api.d.ts``; compiled with it.
TS_USAGE = """\
import type { components, operations } from "./api";

type PostsUpdate = components["schemas"]["PostsUpdate"];

// Plain fields and modifiers in one PATCH body, as PocketBase takes it.
export const mixed: PostsUpdate = {
  title: "Hello",
  published: true,
  location: { lon: 1, lat: 2 },
  "tags+": ["go"],
  "+tags": "news",
  "views-": 1,
};
export const later: PostsUpdate = {};
later["gallery-"] = ["old.png"];

// @ts-expect-error: plain fields keep their types
export const wrong: PostsUpdate = { title: 5 };

export type FileBytes =
  operations["getFile"]["responses"][200]["content"]["application/octet-stream"];
"""


def normalized(name: str) -> str:
    """``authWithOAuth2Users`` and ``auth_with_o_auth_2_users`` both give ``authwithoauth2users``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SPEC_FILE.read_text("utf-8"))
    return doc


def operation_ids(spec: dict[str, Any]) -> list[str]:
    return [
        op["operationId"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_openapi_python_client_generates_every_operation(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"post_hooks": []}), encoding="utf-8")
    out = tmp_path / PACKAGE
    done = run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(SPEC_FILE),
            "--output-path",
            str(out),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for sign in ("warning", "will not be generated", "omitted", "unable to"):
        assert sign not in output.lower(), output

    checked = run([sys.executable, "-c", PY_CHECK, str(tmp_path), PACKAGE], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    found = json.loads(checked.stdout.strip().splitlines()[-1])
    ids = operation_ids(spec)
    assert len(ids) == len({normalized(i) for i in ids})  # the names below tell them apart
    assert sorted(normalized(e) for e in found["endpoints"]) == sorted(
        normalized(i) for i in ids
    )
    assert found["file_as_bytes"] is True
    assert found["title"] == "Hi"
    assert found["body"] == {"title": "Hi", "tags+": ["go"], "+tags": "news", "views-": 2}


def test_openapi_typescript_types_compile(node: str, js_sdk_dir: Path, tmp_path: Path) -> None:
    modules = js_sdk_dir / "node_modules"
    types = tmp_path / "api.d.ts"
    done = run(
        [node, str(modules / "openapi-typescript" / "bin" / "cli.js"), str(SPEC_FILE), "-o", str(types)],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = types.read_text("utf-8")
    assert '"application/octet-stream": string' in text  # the file download, kept
    (tmp_path / "usage.ts").write_text(TS_USAGE, encoding="utf-8")
    (tmp_path / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "target": "es2022",
                    "module": "es2022",
                    "moduleResolution": "bundler",
                    "types": [],
                },
                "files": ["api.d.ts", "usage.ts"],
            }
        ),
        encoding="utf-8",
    )
    compiled = run([node, str(modules / "typescript" / "bin" / "tsc"), "-p", "tsconfig.json"], tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
