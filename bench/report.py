"""Where benchmark results go: ``bench/results/NAME.json`` and ``NAME.md`` (gitignored)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def results_dir() -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


def stamp() -> str:
    """A sortable local timestamp for result file names."""
    return time.strftime("%Y%m%d-%H%M%S")


def write_results(directory: Path, name: str, data: dict[str, Any], table: str) -> tuple[Path, Path]:
    json_path = directory / f"{name}.json"
    md_path = directory / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    md_path.write_text(table, "utf-8")
    return json_path, md_path
