"""Turn any PocketBase export into one that PocketBase 0.23+ imports without losing anything.

PocketBase 0.23+ answers ``PUT /api/collections/import`` with 204 for a legacy export (``schema``
with nested ``options``) and silently keeps none of its fields. ``convert`` rewrites an export
of any shape the loader reads into the current format, ready for that import:

* the loader's ``normalize`` maps the legacy options to their current names and places and adds
  the fields older exports leave implicit (``id``, ``created`` / ``updated`` autodate fields, the
  auth system fields), as PocketBase's own 0.23 upgrade does;
* collections without an id, or whose id is their name (PocketBase refuses a name that matches a
  collection id), get PocketBase's own id (``pbc_<crc32(type + name)>``); an auth collection
  named ``users`` becomes PocketBase's system ``users`` (``_pb_users_auth_``), which every
  PocketBase has;
* fields without an id get PocketBase's ``<type><crc32(name)>``; so do the fields of ``users``
  that a fresh PocketBase already has under the same name (an import replaces the field list by
  id, and a different id for the same column name fails);
* relations that name their target collection, or its old id, point at its id.

Then every key PocketBase stores is filled in with PocketBase's value (``pb_defaults``), so the
result is byte for byte what ``schema pull`` writes after importing it.

What cannot be converted is a ``Problem`` naming the collection and field: a field name used
twice, an index on a column that does not exist, a relation whose target is in neither the file
nor a fresh PocketBase, a rule naming a field that does not exist (``rules``), a ``users`` field
whose type clashes with the system one, a base collection named ``users``. ``convert`` raises
the first as a ``SchemaError``; with ``force`` it drops what each one names (the later
duplicate, the index, the field, the rule, which becomes superuser-only, the collection) and
lists it. Pure functions.
"""

from __future__ import annotations

import copy
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SchemaError
from .loader import JsonDict, normalize, parse
from .model import PBSchema
from .pb_defaults import (
    AUTH_DEFAULTS,
    COMMON_FIELD_DEFAULTS,
    FIELD_DEFAULTS,
    FRESH_USERS_FIELDS,
    SYSTEM_COLLECTIONS,
)
from .rules import rule_paths, unresolved_path

#: The id of the auth collection ``users`` that every PocketBase has (since before 0.23).
USERS_ID = "_pb_users_auth_"
_FRESH_USERS = {f["name"]: f for f in FRESH_USERS_FIELDS}
_RULE_KEYS = ("listRule", "viewRule", "createRule", "updateRule", "deleteRule", "authRule", "manageRule")


@dataclass(frozen=True)
class Problem:
    """Something in the export that PocketBase cannot take, and what ``--force`` drops for it."""

    collection: str
    field: str | None
    message: str
    dropped: str

    def error(self) -> SchemaError:
        return SchemaError(self.message, collection=self.collection, field=self.field)


@dataclass(frozen=True)
class Conversion:
    collections: list[JsonDict]
    #: The loader's reading of ``collections`` (the same schema the generator would build).
    schema: PBSchema
    #: What ``force`` dropped (empty without ``force``: a problem is an error then).
    dropped: tuple[Problem, ...]
    #: ``"legacy"`` (< 0.23: ``schema``, nested ``options``), ``"current"``, ``"hybrid"`` (``fields``
    #: with nested ``options``) or ``"mixed"``.
    source_format: str


def convert(data: object, *, force: bool = False) -> Conversion:
    """Any export → import-ready current-format collections; problems raise unless ``force``."""
    items = _collection_items(data)
    collections = [c for c in normalize(data) if c["name"] not in SYSTEM_COLLECTIONS]
    problems = _users_name_clash(collections)
    gone = {str(c.get("id") or c["name"]) for c in collections if _is_base_users(c)}
    collections = [c for c in collections if not _is_base_users(c)]
    if not collections:
        raise SchemaError("the schema holds only PocketBase's own system collections")
    _assign_collection_ids(collections)
    for col in collections:
        problems += _dedupe_fields(col)
        problems += _assign_field_ids(col)
    problems += _resolve_relations(collections, (gone | {"users"}) if gone else set())
    for col in collections:
        problems += _check_indexes(col)
    problems += _check_rules(collections)
    if problems and not force:
        raise problems[0].error()
    collections = [_complete(c) for c in collections]
    return Conversion(
        collections=collections,
        schema=parse(copy.deepcopy(collections)),
        dropped=tuple(problems),
        source_format=_source_format(items),
    )


def field_id(ftype: str, name: str) -> str:
    """PocketBase's id for a field created without one: ``<type><crc32(name)>``."""
    return f"{ftype}{zlib.crc32(name.encode())}"


def collection_id(ctype: str, name: str) -> str:
    """PocketBase's id for a collection created without one: ``pbc_<crc32(type + name)>``."""
    return f"pbc_{zlib.crc32((ctype + name).encode())}"


# --------------------------------------------------------------------------------------------


def _collection_items(data: object) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for key in ("collections", "items"):
            if isinstance(data.get(key), list):
                return list(data[key])
        return [data]
    return []


def _source_format(items: Iterable[Any]) -> str:
    kinds = {_format_of(c) for c in items if isinstance(c, Mapping)}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _format_of(collection: Mapping[str, Any]) -> str:
    if "fields" not in collection and "schema" in collection:
        return "legacy"
    fields = collection.get("fields")
    nested = isinstance(fields, list) and any(
        isinstance(f, Mapping) and isinstance(f.get("options"), Mapping) for f in fields
    )
    return "hybrid" if nested else "current"


def _assign_collection_ids(collections: list[JsonDict]) -> None:
    """Give every collection an id PocketBase accepts; relations follow in ``_resolve_relations``."""
    names = {c["name"] for c in collections}
    for col in collections:
        old = col.get("id")
        if col["type"] == "auth" and col["name"] == "users":
            col["id"] = USERS_ID  # the users collection every PocketBase has, whatever its id was
        elif not isinstance(old, str) or not old or old in names:
            col["id"] = collection_id(col["type"], col["name"])
        col["_old_id"] = old if isinstance(old, str) and old else col["name"]
        if col["id"] == USERS_ID:
            # The username index the loader added was named after the old id.
            col["indexes"] = [
                i.replace(f"`_{col['_old_id']}_username_idx`", f"`_{USERS_ID}_username_idx`")
                for i in col["indexes"]
            ]


def _is_base_users(col: JsonDict) -> bool:
    return bool(col["name"] == "users" and col["type"] != "auth")


def _users_name_clash(collections: list[JsonDict]) -> list[Problem]:
    return [
        Problem(
            c["name"], None,
            f"every PocketBase has an auth collection named 'users'; a {c['type']} collection "
            "cannot take its name (rename it)",
            dropped=f"collection {c['name']}",
        )
        for c in collections
        if _is_base_users(c)
    ]


def _dedupe_fields(col: JsonDict) -> list[Problem]:
    seen: dict[str, str] = {}
    kept: list[JsonDict] = []
    problems = []
    for f in col["fields"]:
        key = f["name"].lower()
        if key in seen:
            problems.append(Problem(
                col["name"], f["name"],
                f"the field name is used twice (also by {seen[key]!r})",
                dropped=f"field {col['name']}.{f['name']} (the second one, {f['type']})",
            ))
            continue
        seen[key] = f["name"]
        kept.append(f)
    col["fields"] = kept
    return problems


def _assign_field_ids(col: JsonDict) -> list[Problem]:
    """PocketBase's ids where fields have none; ``users`` fields take the fresh ``users``' ids."""
    used: set[str] = set()
    kept = []
    problems = []
    for f in col["fields"]:
        fid = f.get("id")
        fresh = _FRESH_USERS.get(f["name"]) if col["id"] == USERS_ID else None
        if fresh is not None and fresh["type"] != f["type"]:
            problems.append(Problem(
                col["name"], f["name"],
                f"every PocketBase's users collection has a {fresh['type']} field {f['name']!r} and an "
                f"import cannot change a field's type (rename the {f['type']} field)",
                dropped=f"field {col['name']}.{f['name']} ({f['type']})",
            ))
            continue
        # A view's fields are PocketBase's reading of its query, with PocketBase's ids.
        if fresh is not None or col["type"] == "view" or not isinstance(fid, str) or not fid or fid in used:
            f["id"] = field_id(f["type"], f["name"])
        used.add(f["id"])
        kept.append(f)
    col["fields"] = kept
    return problems


def _resolve_relations(collections: list[JsonDict], gone: set[str]) -> list[Problem]:
    by_key: dict[str, str] = {}
    for col in collections:
        by_key[col["name"]] = col["id"]
        by_key.setdefault(col["_old_id"], col["id"])
        by_key.setdefault(col["id"], col["id"])
    problems = []
    for col in collections:
        kept = []
        for f in col["fields"]:
            if f["type"] == "relation":
                target = f.get("collectionId")
                if isinstance(target, str) and target in by_key:
                    f["collectionId"] = by_key[target]
                elif target in (USERS_ID, "users") and target not in gone:
                    f["collectionId"] = USERS_ID  # every PocketBase has it
                else:
                    why = (
                        f"relation target {target!r} is neither in the file nor a collection every "
                        "PocketBase has"
                        if target else "relation field has no target collection (`collectionId`)"
                    )
                    problems.append(Problem(
                        col["name"], f["name"], why,
                        dropped=f"field {col['name']}.{f['name']} (relation)",
                    ))
                    continue
            kept.append(f)
        col["fields"] = kept
    for col in collections:
        del col["_old_id"]
    return problems


# ------------------------------------------------------------------------------ completion

_COLLECTION_KEYS = ("id", "name", "type", "system", "fields", "indexes", *_RULE_KEYS[:5])


def _complete(col: JsonDict) -> JsonDict:
    """Exactly the keys PocketBase stores, with its values where the export has none."""
    keys: tuple[str, ...] = _COLLECTION_KEYS
    if col["type"] == "view":
        keys += ("viewQuery",)
    out: JsonDict = {k: col.get(k) for k in keys}
    out["system"] = False  # only PocketBase's own collections are system ones
    fields = [_complete_field(f) for f in col["fields"]]
    if col["id"] == USERS_ID:
        # An import keeps the fields the existing users collection has and the file does not.
        names = {f["name"] for f in fields}
        fields += [copy.deepcopy(f) for f in FRESH_USERS_FIELDS if f["name"] not in names]
    out["fields"] = fields
    if col["type"] == "auth":
        out["authRule"] = col.get("authRule")
        out["manageRule"] = col.get("manageRule")
        for key, default in AUTH_DEFAULTS.items():
            out[key] = _merged(default, col.get(key))
        out["indexes"] = _with_auth_indexes(col)
    return out


def _complete_field(field: JsonDict) -> JsonDict:
    defaults = {**COMMON_FIELD_DEFAULTS, **FIELD_DEFAULTS[field["type"]]}
    if field["type"] == "autodate":
        del defaults["required"], defaults["help"]
    out = {"id": field["id"], "name": field["name"], "type": field["type"]}
    for key, default in defaults.items():
        value = field.get(key)
        out[key] = copy.deepcopy(default) if value is None and (default is not None or key not in field) else value
    return out


def _merged(default: Any, given: Any) -> Any:
    if isinstance(default, dict) and isinstance(given, Mapping):
        return {k: _merged(v, given.get(k)) for k, v in default.items()} | {
            k: v for k, v in given.items() if k not in default
        }
    return copy.deepcopy(default) if given is None else given


def _with_auth_indexes(col: JsonDict) -> list[str]:
    """PocketBase adds a unique index on ``tokenKey`` and on ``email`` when none exists."""
    indexes = list(col["indexes"])
    covered = {tuple(index_columns(i) or ()) for i in indexes if "UNIQUE" in i.upper()}
    if ("tokenKey",) not in covered:
        indexes.append(f"CREATE UNIQUE INDEX `idx_tokenKey_{col['id']}` ON `{col['name']}` (`tokenKey`)")
    if ("email",) not in covered:
        indexes.append(
            f"CREATE UNIQUE INDEX `idx_email_{col['id']}` ON `{col['name']}` (`email`) WHERE `email` != ''"
        )
    return indexes


# ------------------------------------------------------------------------------ indexes

_INDEX_COLUMNS = re.compile(r"\bON\s+[`\"\[]?[\w]+[`\"\]]?\s*\((?P<cols>.*)\)", re.IGNORECASE | re.DOTALL)
_PLAIN_COLUMN = re.compile(r"^[`\"\[]?(?P<name>\w+)[`\"\]]?(\s+COLLATE\s+\w+)?(\s+(ASC|DESC))?$", re.IGNORECASE)


def index_columns(sql: str) -> list[str] | None:
    """The plain column names an index covers, or None when it is not a simple column index."""
    match = _INDEX_COLUMNS.search(sql.split(" WHERE ")[0].split("\nWHERE ")[0])
    if match is None:
        return None
    names = []
    for part in match.group("cols").split(","):
        column = _PLAIN_COLUMN.match(part.strip())
        if column is None:
            return None  # an expression: PocketBase checks it when it creates the index
        names.append(column.group("name"))
    return names


def _index_name(sql: str) -> str:
    match = re.search(r"INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)", sql, re.IGNORECASE)
    return match.group(1) if match else " ".join(sql.split())


def _check_indexes(col: JsonDict) -> list[Problem]:
    if col["type"] == "view":
        return []
    columns = {f["name"].lower() for f in col["fields"]}
    kept = []
    problems = []
    for sql in col["indexes"]:
        missing = [c for c in index_columns(sql) or [] if c.lower() not in columns]
        if missing:
            problems.append(Problem(
                col["name"], None,
                f"index {_index_name(sql)} is on column {missing[0]!r}, which is not a field",
                dropped=f"index {_index_name(sql)} of {col['name']}",
            ))
            continue
        kept.append(sql)
    col["indexes"] = kept
    return problems


# ------------------------------------------------------------------------------ rules


def _check_rules(collections: list[JsonDict]) -> list[Problem]:
    by_name = {c["name"]: c for c in collections}
    by_id = {c["id"]: c for c in collections}
    problems = []
    for col in collections:
        for key in _RULE_KEYS:
            rule = col.get(key)
            if not isinstance(rule, str) or not rule.strip():
                continue
            for path in rule_paths(rule):
                why = unresolved_path(path, col, by_name, by_id)
                if why:
                    problems.append(Problem(
                        col["name"], None, f"`{key}` {why}",
                        dropped=f"{key} of {col['name']} (now superusers only)",
                    ))
                    col[key] = None
                    break
    return problems
