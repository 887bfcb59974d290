"""Format generated files so the output is stable: black (pinned) for Python."""

from __future__ import annotations

import os
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor

import black
from black.mode import Mode, TargetVersion
from black.parsing import InvalidInput

from ..errors import HaptaError

MODE = Mode(target_versions={TargetVersion.PY311}, line_length=100)


#: From this many files on, black runs in one process per core (it is most of a build's time).
PARALLEL_FROM = 48


def format_files(files: dict[str, str], *, preformatted: Collection[str] = ()) -> dict[str, str]:
    """Every rendered ``.py`` file through black; others (and ``preformatted``) unchanged."""
    todo = [p for p in files if p.endswith(".py") and p not in preformatted]
    workers = min(os.cpu_count() or 1, 8)
    if len(todo) >= PARALLEL_FROM and workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, len(todo) // (workers * 4))
            formatted = dict(zip(todo, pool.map(_format, todo, [files[p] for p in todo], chunksize=chunk), strict=True))
    else:
        formatted = {p: _format(p, files[p]) for p in todo}
    return {path: formatted.get(path, text) for path, text in files.items()}


def _format(path: str, text: str) -> str:
    try:
        return black.format_str(text, mode=MODE)
    except InvalidInput as exc:
        first = str(exc).splitlines()[0]
        raise HaptaError(f"generated {path} is not valid Python ({first}); this is a hapta-gen bug") from None
