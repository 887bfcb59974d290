"""Format generated files so the output is stable: black (pinned) for Python."""

from __future__ import annotations

import black
from black.mode import Mode, TargetVersion
from black.parsing import InvalidInput

from .errors import HaptaError

_MODE = Mode(target_versions={TargetVersion.PY311}, line_length=100)


def format_files(files: dict[str, str]) -> dict[str, str]:
    """Every ``.py`` file through black; others unchanged. A failure names the file."""
    out = {}
    for path, text in files.items():
        if path.endswith(".py"):
            try:
                text = black.format_str(text, mode=_MODE)
            except InvalidInput as exc:
                first = str(exc).splitlines()[0]
                raise HaptaError(f"generated {path} is not valid Python ({first}); this is a hapta-gen bug") from None
        out[path] = text
    return out
