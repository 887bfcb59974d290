"""Style gates that CI must hold: ruff and strict mypy on the generator and on the generated
gateway package (the generated code is held to the same standard as hand-written code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True)


def test_ruff_generator_tests_bench() -> None:
    proc = _run("ruff", "check", "--output-format", "concise", "generator", "tests", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_generator() -> None:
    proc = _run("mypy", "generator")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_generated_package() -> None:
    proc = _run("ruff", "check", "--output-format", "concise", ".", cwd=ROOT / "generated")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_generated_package() -> None:
    proc = _run("mypy", "--strict", "gateway", cwd=ROOT / "generated")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_static_runtime_templates_are_black_formatted() -> None:
    """Static files skip black at build time, so they must already be in black's style."""
    import black

    from hapta_gen.emit.formatting import MODE
    from hapta_gen.emit.render import templates_dir

    static = sorted((templates_dir() / "service").rglob("*.py"))
    assert static
    for path in static:
        text = path.read_text("utf-8")
        assert black.format_str(text, mode=MODE) == text, f"run black -l 100 on {path}"
