"""The TypeScript types ``hapta-gen build`` writes (``types.ts``) against the real ``pocketbase`` SDK.

* ``tests/sdk/js/typed_session.ts`` (sign up, create from ``PostsCreate``, list with ``expand``
  typed by ``PostsExpand``, update with modifier keys from ``PostsUpdate``, delete) compiles
  with ``tsc --strict`` against the committed ``generated/types.ts`` and runs with node, against
  PocketBase itself (the control) and through the gateway.
* Wrong uses are refused by the compiler (``@ts-expect-error`` lines that must stay errors), so
  the types are not ``any`` in disguise.
* The types of every real-world schema in ``../shared/schemas`` and of every schema case in
  ``tests/cases`` that builds compile, in one ``tsc`` run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sdk_support import Target

from hapta_gen import generate
from hapta_gen.emit.header import HEADER
from hapta_gen.schema.loader import load_file

ROOT = Path(__file__).resolve().parent.parent.parent
TYPES = ROOT / "generated" / "types.ts"
SCHEMAS = ROOT.parent / "shared" / "schemas"
#: The schema cases that build (odd names, keywords, every field type...): ``tests/cases``.
CASES = sorted(p.parent for p in (ROOT / "tests" / "cases").glob("*/expect.json"))

#: Uses the types must refuse: each line after ``@ts-expect-error`` must fail to compile
#: (tsc reports an unused directive otherwise).
MISUSES = """\
import PocketBase from "pocketbase"
import type { PostsCreate, PostsExpand, PostsResponse, PostsUpdate, TypedPocketBase } from "./types.js"

export async function misuses(pb: TypedPocketBase): Promise<unknown[]> {
  const post = await pb.collection("posts").getOne("x")
  // @ts-expect-error a title is a string
  const n: number = post.title
  // @ts-expect-error expand is untyped unless its type is given
  const a: string = post.expand.author
  const expanded = await pb.collection("posts").getOne<PostsResponse<PostsExpand>>("x")
  // @ts-expect-error an expanded author is a users record, not an id
  const id: string = expanded.expand.author
  // @ts-expect-error not one of the status options
  const c: PostsCreate = { title: "t", status: "archived", author: "u" }
  // @ts-expect-error a required key is missing
  const c2: PostsCreate = { title: "t", status: "draft" }
  // @ts-expect-error views+ takes a number
  const u: PostsUpdate = { "views+": "4" }
  // @ts-expect-error not a tag
  const u2: PostsUpdate = { "tags+": ["rust"] }
  const pb2 = new PocketBase("http://127.0.0.1") as TypedPocketBase
  return [n, a, id, c, c2, u, u2, pb2]
}
"""


def tsc(node: str, js_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(js_dir / "node_modules" / "typescript" / "bin" / "tsc"), "-p", "tsconfig.json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ts_project(directory: Path, js_dir: Path, files: list[str], *, emit: bool) -> None:
    """A tsc project in ``directory``: strict, ES modules, ``pocketbase`` from ``js_dir``."""
    (directory / "node_modules").symlink_to(js_dir / "node_modules", target_is_directory=True)
    (directory / "package.json").write_text('{"type": "module"}\n', encoding="utf-8")
    options: dict[str, Any] = {
        "strict": True,
        "target": "es2022",
        "module": "es2022",
        "moduleResolution": "bundler",
        "types": [],
    }
    options |= {"outDir": "out"} if emit else {"noEmit": True}
    config = {"compilerOptions": options, "files": files}
    (directory / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def typed_session(node: str, js_sdk_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``typed_session.ts`` and ``generated/types.ts`` compiled (``tsc --strict``) to JS."""
    work = tmp_path_factory.mktemp("typed")
    (work / "types.ts").write_text(TYPES.read_text("utf-8"), encoding="utf-8")
    (work / "typed_session.ts").write_text(
        (js_sdk_dir / "typed_session.ts").read_text("utf-8"), encoding="utf-8"
    )
    (work / "misuses.ts").write_text(MISUSES, encoding="utf-8")
    ts_project(work, js_sdk_dir, ["types.ts", "typed_session.ts", "misuses.ts"], emit=True)
    done = tsc(node, js_sdk_dir, work)
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "out" / "typed_session.js"


def test_types_file_is_generated_with_the_typegen_shape() -> None:
    text = TYPES.read_text("utf-8")
    assert text.startswith(f"// {HEADER}\n")
    for line in (
        "export enum Collections {",
        '\tPosts = "posts",',
        "export type PostsRecord = {",
        "export type PostsResponse<Texpand = unknown> = Required<PostsRecord> & BaseSystemFields<Texpand>",
        "export type UsersResponse<Texpand = unknown> = Required<UsersRecord> & AuthSystemFields<Texpand>",
        'export type PostsStatus = "draft" | "review" | "published"',
        "\tcomments_via_post?: CommentsResponse[]",
        '\t"views+"?: number | null',
        "export interface TypedPocketBase extends PocketBase {",
        '\tcollection(idOrName: Collections.Posts | "posts"): RecordService<PostsResponse>',
    ):
        assert line in text.splitlines(), line


def test_typed_session_runs(typed_session: Path, node: str, target: Target) -> None:
    done = subprocess.run(
        [node, str(typed_session), target.url],
        cwd=typed_session.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{target.name}: {done.stderr.strip()}\n{done.stdout.strip()}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["baseUrl"] == target.url
    assert summary["steps"] == ["signup", "create", "list-expand", "update-modifiers", "delete"]
    # it reached PocketBase: the user exists, the post is gone again
    assert target.pb.http.get(f"/api/collections/users/records/{summary['user']}").status_code == 200
    assert target.pb.http.get(f"/api/collections/posts/records/{summary['post']}").status_code == 404


def test_real_schemas_types_compile(node: str, js_sdk_dir: Path, tmp_path: Path) -> None:
    """The ``types.ts`` of every real schema and every building case, in one ``tsc`` run."""
    real = sorted(SCHEMAS.glob("*.json"))
    assert len(real) >= 20 and CASES
    files = []
    for path in [*real, *(case / "schema.json" for case in CASES)]:
        result = generate(load_file(path))
        assert result.ok, (path, result.errors)
        stem = (path.stem if path.parent == SCHEMAS else path.parent.name).replace(".", "_")
        (tmp_path / stem).mkdir()
        (tmp_path / stem / "types.ts").write_text(result.files["types.ts"], encoding="utf-8")
        files.append(f"{stem}/types.ts")
    ts_project(tmp_path, js_sdk_dir, files, emit=False)
    done = tsc(node, js_sdk_dir, tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
