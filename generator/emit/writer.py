"""Write generated files to disk, or compare them with what is there (``--check``).

The writer owns only files that carry the DO-NOT-EDIT marker: it refuses to overwrite a file
someone wrote by hand, removes generated files the new output no longer has, and never
writes outside the output directory.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from ..errors import WriteError
from .header import HEADER

_MARKER_BYTES = 600  # the marker stands in the first lines of every generated file


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.added or self.changed or self.removed)


def is_generated(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return HEADER in fh.read(_MARKER_BYTES)
    except OSError:
        return False


def _target(out: Path, rel: str) -> Path:
    root = out.resolve()
    path = (root / rel).resolve()
    if rel.startswith("/") or not path.is_relative_to(root):
        raise WriteError(f"refusing to write {rel!r}: it is outside the output directory {out}")
    return path


def _existing_generated(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    return {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and is_generated(p)
    }


def compare(files: dict[str, str], out: Path) -> Changes:
    """What writing ``files`` into ``out`` would change."""
    added, changed = [], []
    for rel, text in files.items():
        path = _target(out, rel)
        if not path.exists():
            added.append(rel)
        elif path.read_text(encoding="utf-8") != text:
            changed.append(rel)
    removed = sorted(_existing_generated(out) - set(files))
    return Changes(tuple(added), tuple(changed), tuple(removed))


def diff_text(files: dict[str, str], out: Path, changes: Changes, *, limit: int = 200) -> str:
    """A unified diff of the changes (``--check`` prints it), cut at ``limit`` lines."""
    lines: list[str] = []
    for rel in (*changes.changed, *changes.added, *changes.removed):
        path = out / rel
        old = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
        new = files.get(rel, "").splitlines(keepends=True)
        lines += difflib.unified_diff(old, new, f"a/{rel}", f"b/{rel}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)\n"]
    return "".join(lines)


def write(files: dict[str, str], out: Path) -> Changes:
    """Write ``files`` into ``out``; remove generated files that are no longer produced."""
    changes = compare(files, out)
    for rel in (*changes.added, *changes.changed):
        path = _target(out, rel)
        if path.exists() and not is_generated(path):
            raise WriteError(
                f"refusing to overwrite {path}: it has no hapta-gen header (move it away or choose another --out)"
            )
    for rel in (*changes.added, *changes.changed):
        path = _target(out, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel], encoding="utf-8")
    for rel in changes.removed:
        _target(out, rel).unlink()
    return changes
