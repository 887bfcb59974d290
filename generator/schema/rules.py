"""Which record paths a PocketBase API rule names, and whether a schema has them.

Offline and lenient: it checks what it can be sure of (a field name, through relations and
back-relations ``<collection>_via_<field>``, and ``@collection.<name>.<path>``) and leaves the
rest to PocketBase (``@request.*``, macros, json paths, modifiers, functions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .pb_defaults import SYSTEM_COLLECTIONS

Collection = dict[str, Any]

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_IDENT = re.compile(r"@?[A-Za-z_][\w]*(?:\.@?[\w]+)*(?::\w+)?(?P<call>\s*\()?")
_COMMENT = re.compile(r"//[^\n]*")
_KEYWORDS = frozenset({"true", "false", "null", "TRUE", "FALSE", "NULL"})


def rule_paths(rule: str) -> list[str]:
    """The record paths a rule names (``author.name``, ``@collection.posts.author``), in order."""
    text = _COMMENT.sub("", _STRING.sub("''", rule))
    out = []
    for match in _IDENT.finditer(text):
        token = match.group(0)
        if match.group("call") or token in _KEYWORDS:
            continue
        start = match.start()
        if start and (text[start - 1].isalnum() or text[start - 1] in "_.:"):
            continue  # the tail of a number or of another token
        out.append(token.split(":")[0])
    return out


def unresolved_path(
    path: str, col: Collection, by_name: Mapping[str, Collection], by_id: Mapping[str, Collection]
) -> str:
    """Why ``path`` names no field (\"\" when it does, or when it is not checked offline)."""
    parts = path.split(".")
    if parts[0].startswith("@"):
        if parts[0] != "@collection" or len(parts) < 3:
            return ""  # @request.*, @now and the other macros
        target = by_name.get(parts[1])
        if target is None:
            if parts[1] == "users" or parts[1] in SYSTEM_COLLECTIONS:
                return ""  # every PocketBase has them
            return f"names collection {parts[1]!r}, which is not in the file"
        return _walk(parts[2:], target, by_name, by_id)
    return _walk(parts, col, by_name, by_id)


def _walk(
    parts: list[str], col: Collection, by_name: Mapping[str, Collection], by_id: Mapping[str, Collection]
) -> str:
    current: Collection | None = col
    for i, part in enumerate(parts):
        if current is None:
            return ""  # past a relation whose target is not in the file
        fields = {f["name"]: f for f in current["fields"]}
        field = fields.get(part)
        if field is None:
            back = re.fullmatch(r"(\w+)_via_(\w+)", part)
            if back and back.group(1) in by_name:
                current = by_name[back.group(1)]
                continue
            where = "" if current is col else f" of collection {current['name']!r}"
            return f"names {'.'.join(parts[: i + 1])!r}, but there is no field {part!r}{where}"
        if field["type"] == "relation":
            current = by_id.get(str(field.get("collectionId")))
        elif i + 1 < len(parts):
            return ""  # json paths, and modifiers PocketBase checks itself
    return ""
