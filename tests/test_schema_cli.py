"""``hapta-gen schema pull|diff`` end to end, against a real PocketBase.

Most cases run in-process (typer's CliRunner); the error cases run as a real process
(``python -m hapta_gen.cli.schema``) so exit codes and stderr are exactly what a user sees.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import PB_ENV_VARS, POSTLY_SCHEMA_PATH, REPO_ROOT, CliRun, Routes
from typer.testing import CliRunner

from hapta_gen.cli.schema import schema_app
from hapta_gen.dev.pbserver import PocketBaseServer

Invoke = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Invoke ``schema_app`` in-process, in tmp_path, with no PB_* variables set."""
    monkeypatch.chdir(tmp_path)
    for var in PB_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(schema_app, list(args), env=env)

    return invoke


def _login(pb: PocketBaseServer) -> list[str]:
    return ["--url", pb.url, "--email", pb.email, "--password", pb.password]


def _env(pb: PocketBaseServer) -> dict[str, str]:
    return {"PB_URL": pb.url, "PB_SUPERUSER_EMAIL": pb.email, "PB_SUPERUSER_PASSWORD": pb.password}


def _committed() -> bytes:
    return POSTLY_SCHEMA_PATH.read_bytes()


# ---------------------------------------------------------------------------- pull


def test_pull_round_trip_is_byte_identical(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    """examples/postly/pb_schema.json imported into PocketBase and pulled back is unchanged."""
    result = cli("pull", *_login(pb))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pb_schema.json").read_bytes() == _committed()
    assert result.stdout == "wrote pb_schema.json: 8 collections, 64 fields\n"
    assert result.stderr.splitlines() == [
        f"connecting to {pb.url}",
        f"authenticated as superuser {pb.email}",
        "read 13 collections",
    ]
    assert pb.password not in result.output


def test_pull_as_a_process_with_env_vars(pb: PocketBaseServer, run_schema_cli: CliRun,
                                         tmp_path: Path) -> None:
    done = run_schema_cli("pull", "--out", "schema/out.json", env=_env(pb))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "schema" / "out.json").read_bytes() == _committed()
    assert done.stdout == "wrote schema/out.json: 8 collections, 64 fields\n"
    assert pb.password not in done.stdout + done.stderr
    assert not list((tmp_path / "schema").glob(".*.tmp"))


def test_hapta_gen_schema_pull(pb: PocketBaseServer, tmp_path: Path) -> None:
    """The installed ``hapta-gen`` (main CLI) mounts this sub-app as ``schema``."""
    script = shutil.which("hapta-gen") or str(Path(sys.executable).parent / "hapta-gen")
    if Path(script).is_file():
        command = [script]
    else:  # not installed: the same entry point, through Python
        command = [sys.executable, "-c", "from hapta_gen.cli.main import main; main()"]
    env = {k: v for k, v in os.environ.items() if k not in PB_ENV_VARS}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [*command, "schema", "pull", "--out", "pulled.json", *_login(pb)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pulled.json").read_bytes() == _committed()
    assert done.stdout == "wrote pulled.json: 8 collections, 64 fields\n"


def test_pull_reads_dotenv(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"PB_URL={pb.url}\nPB_SUPERUSER_EMAIL={pb.email}\nPB_SUPERUSER_PASSWORD='{pb.password}'\n"
    )
    result = cli("pull")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pb_schema.json").read_bytes() == _committed()


def test_environment_beats_dotenv(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"PB_URL={pb.url}\nPB_SUPERUSER_EMAIL={pb.email}\nPB_SUPERUSER_PASSWORD=wrong-from-dotenv\n"
    )
    assert cli("pull", env={"PB_SUPERUSER_PASSWORD": pb.password}).exit_code == 0
    (tmp_path / ".env").write_text(
        f"PB_URL={pb.url}\nPB_SUPERUSER_EMAIL={pb.email}\nPB_SUPERUSER_PASSWORD={pb.password}\n"
    )
    result = cli("pull", env={"PB_SUPERUSER_PASSWORD": "wrong-from-environment"})
    assert result.exit_code == 2
    assert "refused the superuser login" in result.stderr


def test_flags_beat_environment(pb: PocketBaseServer, cli: Invoke, closed_port: int) -> None:
    env = {**_env(pb), "PB_URL": f"http://127.0.0.1:{closed_port}"}
    assert cli("pull", "--url", pb.url, env=env).exit_code == 0


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("PB_URL", "error: no PocketBase URL: pass --url or set PB_URL (environment or .env)"),
        ("PB_SUPERUSER_EMAIL", "error: no superuser email: pass --email or set PB_SUPERUSER_EMAIL"),
        ("PB_SUPERUSER_PASSWORD", "error: no superuser password: set PB_SUPERUSER_PASSWORD"),
    ],
)
def test_missing_settings(pb: PocketBaseServer, cli: Invoke, tmp_path: Path, missing: str,
                          expected: str) -> None:
    env = {k: v for k, v in _env(pb).items() if k != missing}
    result = cli("pull", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(expected)
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "pb_schema.json").exists()


def test_include_system(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    result = cli("pull", "--include-system", *_login(pb))
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads((tmp_path / "pb_schema.json").read_text())]
    assert names == sorted(names)
    assert {"_superusers", "_mfas", "_otps", "_externalAuths", "_authOrigins", "posts"} <= set(names)
    assert result.stdout.startswith("wrote pb_schema.json: 13 collections, ")


def test_pull_to_stdout(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    result = cli("pull", "--out", "-", *_login(pb))
    assert result.exit_code == 0, result.output
    assert result.stdout.encode() == _committed()
    assert result.stderr.splitlines()[-1] == "wrote stdout: 8 collections, 64 fields"
    assert not list(tmp_path.iterdir())


def test_pull_paginates_through_the_cli(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    result = cli("pull", "--page-size", "2", *_login(pb))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pb_schema.json").read_bytes() == _committed()


def test_failed_pull_keeps_the_existing_file(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "pb_schema.json").write_text("previous\n")
    result = cli("pull", "--url", pb.url, "--email", pb.email, "--password", "bad-password-x")
    assert result.exit_code == 2
    assert (tmp_path / "pb_schema.json").read_text() == "previous\n"


# ---------------------------------------------------------------------------- errors as a process

PB_HEALTH = (200, "application/json", '{"message":"API is healthy.","code":200,"data":{}}')


def _assert_one_line_error(
    done: subprocess.CompletedProcess[str], expected: str, progress: tuple[str, ...] = ()
) -> None:
    """Exit 2; stderr is the given progress lines (prefixes) and then exactly one error line."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == len(progress) + 1, done.stderr
    for line, prefix in zip(lines, progress, strict=False):
        assert line.startswith(prefix), line
    assert lines[-1].startswith("error: "), lines[-1]
    assert expected in lines[-1]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-password", "refused the superuser login for 'admin@example.com'"),
        ("closed-port", "cannot reach PocketBase at http://127.0.0.1:"),
        ("not-pocketbase", "does not look like a PocketBase server"),
        ("too-old", "PocketBase older than 0.23 is not supported"),
    ],
)
def test_pull_errors_are_one_line(
    case: str,
    expected: str,
    pb: PocketBaseServer,
    run_schema_cli: CliRun,
    http_stub: Callable[[Routes], str],
    closed_port: int,
    tmp_path: Path,
) -> None:
    env = _env(pb)
    if case == "wrong-password":
        env["PB_SUPERUSER_PASSWORD"] = "wrong-password-123"
    elif case == "closed-port":
        env["PB_URL"] = f"http://127.0.0.1:{closed_port}"
    elif case == "not-pocketbase":
        env["PB_URL"] = http_stub({("GET", "/"): (200, "text/html", "<h1>hi</h1>")})
    else:
        env["PB_URL"] = http_stub({("GET", "/api/health"): PB_HEALTH})
    done = run_schema_cli("pull", env=env)
    _assert_one_line_error(done, expected, progress=("connecting to ",))
    assert env["PB_SUPERUSER_PASSWORD"] not in done.stderr + done.stdout
    assert not (tmp_path / "pb_schema.json").exists()
    assert done.stdout == ""


def test_quiet_error_is_exactly_one_line(pb: PocketBaseServer, run_schema_cli: CliRun,
                                         tmp_path: Path) -> None:
    env = {**_env(pb), "PB_SUPERUSER_PASSWORD": "wrong-password-456"}
    done = run_schema_cli("pull", "--quiet", env=env)
    _assert_one_line_error(done, "refused the superuser login")
    assert "wrong-password-456" not in done.stderr
    assert not (tmp_path / "pb_schema.json").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ this is not json", "is not valid JSON (line 1, column 3"),
        ('{"hello": "world"}', "not a PocketBase schema"),
        ("[]", "the schema holds no collections"),
        ('[{"name": "posts", "type": "table", "fields": []}]', "unknown collection type 'table'"),
        (None, "no such file"),
    ],
)
def test_diff_bad_schema_files_are_one_line(
    content: str | None, expected: str, run_schema_cli: CliRun, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    done = run_schema_cli("diff", "--schema", str(bad), "--against", str(POSTLY_SCHEMA_PATH))
    _assert_one_line_error(done, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.json"] if content else [])


# ---------------------------------------------------------------------------- diff


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def _changed_schema() -> list[dict[str, Any]]:
    schema: list[dict[str, Any]] = json.loads(_committed())
    posts = next(c for c in schema if c["name"] == "posts")
    posts["listRule"] = "published = true"
    next(f for f in posts["fields"] if f["name"] == "title")["max"] = 300
    return schema


def test_diff_files_equal(cli: Invoke, tmp_path: Path) -> None:
    noisy = copy.deepcopy(json.loads(_committed()))
    for collection in noisy:
        collection["created"] = "2020-01-01 00:00:00.000Z"
        collection["updated"] = "2026-01-01 00:00:00.000Z"
    _write(tmp_path / "pb_schema.json", {"collections": noisy})
    result = cli("diff", "--against", str(POSTLY_SCHEMA_PATH))
    assert (result.exit_code, result.stdout) == (0, "no changes\n")


def test_diff_files_drift(cli: Invoke, tmp_path: Path) -> None:
    changed = _write(tmp_path / "changed.json", _changed_schema())
    result = cli("diff", "--schema", str(POSTLY_SCHEMA_PATH), "--against", str(changed))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'posts: listRule "" -> "published = true"',
        "posts.title: max 200 -> 300",
    ]


def test_diff_legacy_file_against_current(cli: Invoke, tmp_path: Path) -> None:
    from test_diff import LEGACY_COMMENTS

    current = [c for c in json.loads(_committed()) if c["name"] == "comments"]
    legacy = _write(tmp_path / "legacy.json", [LEGACY_COMMENTS])
    result = cli("diff", "--schema", str(legacy), "--against", str(_write(tmp_path / "c.json", current)))
    assert (result.exit_code, result.stdout) == (0, "no changes\n")


def test_diff_live_equal(pb: PocketBaseServer, cli: Invoke) -> None:
    result = cli("diff", "--schema", str(POSTLY_SCHEMA_PATH), env=_env(pb))
    assert (result.exit_code, result.stdout) == (0, "no changes\n")
    assert "read 13 collections" in result.stderr


def test_diff_live_drift(pb: PocketBaseServer, cli: Invoke, tmp_path: Path) -> None:
    changed = _write(tmp_path / "pb_schema.json", _changed_schema())
    result = cli("diff", *_login(pb))
    assert result.exit_code == 1
    # old = the file, new = the live server
    assert result.stdout.splitlines() == [
        'posts: listRule "published = true" -> ""',
        "posts.title: max 300 -> 200",
    ]
    assert changed.read_text() == json.dumps(_changed_schema(), indent=2)  # untouched


def test_diff_live_errors(pb: PocketBaseServer, cli: Invoke, closed_port: int) -> None:
    result = cli("diff", "--schema", str(POSTLY_SCHEMA_PATH), "--url", f"http://127.0.0.1:{closed_port}",
                 "--email", pb.email, "--password", pb.password)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach PocketBase at")


def test_diff_needs_something_to_compare(cli: Invoke) -> None:
    result = cli("diff", "--schema", str(POSTLY_SCHEMA_PATH))
    assert result.exit_code == 2
    assert result.stderr == (
        "error: no PocketBase URL: pass --against FILE, or --url or set PB_URL (environment or .env)\n"
    )


def test_diff_against_and_url_conflict(cli: Invoke) -> None:
    result = cli("diff", "--against", str(POSTLY_SCHEMA_PATH), "--url", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert result.stderr == "error: pass either --against FILE or --url, not both\n"
