"""`hapta-gen build`: writing, --check drift detection, --dump-ir, and refusing bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hapta_gen.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
POSTLY = ROOT / "examples" / "postly"
ARGS = ["build", "--schema", str(POSTLY / "pb_schema.json"), "--config", str(POSTLY / "hapta.yaml")]
runner = CliRunner()


def test_build_writes_then_check_is_clean_then_detects_drift(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    first = runner.invoke(app, [*ARGS, "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "built 8 collections" in first.stderr and "reading" in first.stderr  # progress + summary
    assert (out / "gateway" / "models" / "posts.py").is_file() and (out / "openapi.json").is_file()

    clean = runner.invoke(app, [*ARGS, "--out", str(out), "--check"])
    assert clean.exit_code == 0 and "up to date" in clean.stderr

    posts = out / "gateway" / "models" / "posts.py"
    posts.write_text(posts.read_text() + "# hand edit\n")
    (out / "gateway" / "models" / "likes.py").unlink()
    stale = runner.invoke(app, [*ARGS, "--out", str(out), "--check"])
    assert stale.exit_code == 1
    assert "-# hand edit" in stale.stdout and "b/gateway/models/likes.py" in stale.stdout
    assert "1 missing, 1 changed" in stale.stderr
    assert posts.read_text().endswith("# hand edit\n")  # --check writes nothing


def test_build_removes_files_no_longer_generated_and_keeps_foreign_ones(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert runner.invoke(app, [*ARGS, "--out", str(out)]).exit_code == 0
    stale = out / "gateway" / "models" / "old_collection.py"
    shutil.copy(out / "gateway" / "models" / "likes.py", stale)
    mine = out / "NOTES.md"
    mine.write_text("my notes\n")
    assert runner.invoke(app, [*ARGS, "--out", str(out)]).exit_code == 0
    assert not stale.exists() and mine.read_text() == "my notes\n"


def test_build_refuses_to_overwrite_a_hand_written_file(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    (out / "gateway").mkdir(parents=True)
    mine = out / "gateway" / "__init__.py"
    mine.write_text("# my own package\n")
    result = runner.invoke(app, [*ARGS, "--out", str(out)])
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.stderr and mine.read_text() == "# my own package\n"


def test_dump_ir_prints_json(tmp_path: Path) -> None:
    result = runner.invoke(app, [*ARGS, "--out", str(tmp_path / "gen"), "--dump-ir", "-q"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["collections"]][:2] == ["attachments", "audit_log"]
    assert not (tmp_path / "gen").exists()


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "hapta.yaml"
    cfg.write_text("package: [not, a, name]\n")
    result = runner.invoke(app, ["build", "--schema", str(POSTLY / "pb_schema.json"), "--config", str(cfg), "--out", str(tmp_path / "g")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {cfg}: 'package' has the wrong type (list)"
    cfg.write_text("a: [unclosed\n")
    result = runner.invoke(app, ["build", "--schema", str(POSTLY / "pb_schema.json"), "--config", str(cfg)])
    assert result.exit_code == 2 and "is not valid YAML" in result.stderr


def test_real_process_bad_input_has_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "pb_schema.json"
    garbage.write_bytes(b"\x00\xff garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "hapta_gen.cli", "build", "--schema", str(garbage), "--out", str(tmp_path / "g")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("  ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert not (tmp_path / "g").exists()


def test_help_explains() -> None:
    result = runner.invoke(app, ["build", "--help"])
    assert result.exit_code == 0 and "--check" in result.stdout and "--dump-ir" in result.stdout
