"""Compare two schemas and describe the differences, one human-readable line each.

Collections and fields are matched by name; ids are ignored (a field or collection that got a
new id under the same name has not changed), except that a field whose name changed but whose id
did not is reported as a rename. Relation targets are compared by collection name. A field key
that one side leaves out (or sets to ``null``) compares as PocketBase's default for it, so a
hand-written or legacy export and a pulled schema of the same thing have no differences; a key
with no known default is only compared when both sides have it. Output order is deterministic:
collections by name, then collection keys, then fields in schema order, then field order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Collection = Mapping[str, Any]

_MISSING: Any = object()
_RULES = ("listRule", "viewRule", "createRule", "updateRule", "deleteRule", "authRule", "manageRule")
#: Keys of a collection not compared as options (handled separately, or identity only).
_COLLECTION_SKIP = frozenset({"id", "name", "type", "fields", "created", "updated"})
_FIELD_SKIP = frozenset({"id", "name", "type"})

_FIELD_COMMON: dict[str, Any] = {
    "system": False, "hidden": False, "presentable": False, "required": False, "help": "",
}
_FIELD_DEFAULTS: dict[str, dict[str, Any]] = {
    "text": {"min": 0, "max": 0, "pattern": "", "autogeneratePattern": "", "primaryKey": False},
    "password": {"min": 0, "max": 0, "pattern": "", "cost": 0},
    "editor": {"maxSize": 0, "convertURLs": False},
    "number": {"min": None, "max": None, "onlyInt": False},
    "bool": {},
    "email": {"onlyDomains": [], "exceptDomains": []},
    "url": {"onlyDomains": [], "exceptDomains": []},
    "date": {"min": "", "max": ""},
    "autodate": {"onCreate": False, "onUpdate": False},
    "select": {"values": [], "maxSelect": 1},
    "file": {"maxSelect": 1, "maxSize": 0, "mimeTypes": [], "thumbs": [], "protected": False},
    "relation": {"collectionId": "", "cascadeDelete": False, "minSelect": 0, "maxSelect": 1},
    "json": {"maxSize": 0},
    "geoPoint": {},
}


def diff_collections(old: Sequence[Collection], new: Sequence[Collection]) -> list[str]:
    """Lines describing how ``new`` differs from ``old``; empty when they describe the same schema."""
    old_by_name = {str(c.get("name")): c for c in old}
    new_by_name = {str(c.get("name")): c for c in new}
    old_ids = _id_to_name(old)
    new_ids = _id_to_name(new)
    lines: list[str] = []
    for name in sorted(old_by_name.keys() | new_by_name.keys()):
        before = old_by_name.get(name)
        after = new_by_name.get(name)
        if before is None and after is not None:
            count = len(_fields(after))
            lines.append(f"{name}: collection added ({after.get('type', 'base')}, {count} fields)")
        elif after is None:
            lines.append(f"{name}: collection removed")
        elif before is not None:
            lines += _diff_collection(name, before, after, old_ids, new_ids)
    return lines


def _id_to_name(collections: Sequence[Collection]) -> dict[str, str]:
    return {str(c["id"]): str(c.get("name")) for c in collections if c.get("id")}


def _fields(collection: Collection) -> list[Mapping[str, Any]]:
    fields = collection.get("fields")
    if not isinstance(fields, list):
        return []
    return [f for f in fields if isinstance(f, Mapping) and isinstance(f.get("name"), str)]


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested objects become dotted keys (``oauth2.enabled``); lists and scalars are leaves."""
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _diff_collection(
    name: str,
    old: Collection,
    new: Collection,
    old_ids: Mapping[str, str],
    new_ids: Mapping[str, str],
) -> list[str]:
    lines: list[str] = []
    if old.get("type") != new.get("type"):
        lines.append(f"{name}: type {old.get('type')} -> {new.get('type')}")
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    skip = _COLLECTION_SKIP | {"indexes"}
    _flatten("", {k: v for k, v in old.items() if k not in skip}, before)
    _flatten("", {k: v for k, v in new.items() if k not in skip}, after)
    for key in _RULES:
        if key in before or key in after:
            before.setdefault(key, None)
            after.setdefault(key, None)
    for key in sorted(before.keys() & after.keys()):
        if before[key] != after[key]:
            lines.append(f"{name}: {key} {_show(before[key])} -> {_show(after[key])}")
    old_indexes = _strings(old.get("indexes"))
    new_indexes = _strings(new.get("indexes"))
    lines += [f"{name}: index removed: {i}" for i in old_indexes if i not in new_indexes]
    lines += [f"{name}: index added: {i}" for i in new_indexes if i not in old_indexes]
    lines += _diff_fields(name, _fields(old), _fields(new), old_ids, new_ids)
    return lines


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _diff_fields(
    collection: str,
    old: list[Mapping[str, Any]],
    new: list[Mapping[str, Any]],
    old_ids: Mapping[str, str],
    new_ids: Mapping[str, str],
) -> list[str]:
    old_by_name = {str(f["name"]): f for f in old}
    new_by_name = {str(f["name"]): f for f in new}
    removed = [n for n in old_by_name if n not in new_by_name]
    added = [n for n in new_by_name if n not in old_by_name]
    renamed: dict[str, str] = {}  # new name -> old name
    removed_by_id = {str(old_by_name[n].get("id")): n for n in removed if old_by_name[n].get("id")}
    for name in added:
        field_id = new_by_name[name].get("id")
        if field_id and str(field_id) in removed_by_id:
            renamed[name] = removed_by_id.pop(str(field_id))
    renamed_from = set(renamed.values())

    lines: list[str] = []
    for name in old_by_name:
        if name in removed and name not in renamed_from:
            lines.append(f"{collection}.{name}: field removed ({old_by_name[name].get('type')})")
    for name, field in new_by_name.items():
        where = f"{collection}.{name}"
        if name in renamed:
            lines.append(f"{collection}.{renamed[name]}: renamed to {name}")
            before = old_by_name[renamed[name]]
        elif name in added:
            lines.append(f"{where}: field added ({field.get('type')})")
            continue
        else:
            before = old_by_name[name]
        lines += _diff_field(where, before, field, old_ids, new_ids)

    def common_order(fields: list[Mapping[str, Any]], names: Mapping[str, str]) -> list[str]:
        return [names.get(str(f["name"]), str(f["name"])) for f in fields]

    old_order = [n for n in common_order(old, {}) if n not in removed or n in renamed_from]
    new_order = [n for n in common_order(new, renamed) if n in old_by_name]
    if old_order != new_order:
        lines.append(f"{collection}: field order {', '.join(old_order)} -> {', '.join(new_order)}")
    return lines


def _diff_field(
    where: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    old_ids: Mapping[str, str],
    new_ids: Mapping[str, str],
) -> list[str]:
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type:
        return [f"{where}: type {old_type} -> {new_type}"]
    defaults = {**_FIELD_COMMON, **_FIELD_DEFAULTS.get(str(new_type), {})}
    if new_type == "autodate":
        defaults.pop("required")
        defaults.pop("help")
    lines: list[str] = []
    for key in sorted((old.keys() | new.keys()) - _FIELD_SKIP):
        before = _value(old, key, defaults)
        after = _value(new, key, defaults)
        if before is _MISSING or after is _MISSING:
            continue
        if key == "collectionId":
            before = old_ids.get(str(before), before)
            after = new_ids.get(str(after), after)
        if before != after:
            lines.append(f"{where}: {key} {_show(before)} -> {_show(after)}")
    return lines


def _value(field: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> Any:
    """The field's value for ``key``; absent or ``null`` means PocketBase's default (Go zero)."""
    value = field.get(key, _MISSING)
    if (value is _MISSING or value is None) and key in defaults:
        return defaults[key]
    return value
