"""Synthetic PocketBase schemas of any size, for the build benchmark.

``synthetic_schema(n)`` returns ``n`` collections in PocketBase's collections-import format
(0.23+, flat field options), deterministic for a given ``n``: one auth collection (``users``,
taken from the postly example), then base collections with a mix of every field type and
relations (single to ``users``, multiple to an earlier collection), and every 20th collection a
view over the base collection before it. Rules cycle through public, superuser-only, signed-in
and owner expressions, so every code path of the generator is exercised.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any

from hapta_gen.dev.seed import postly_schema

USERS_ID = "_pb_users_auth_"
VIEW_EVERY = 20

_RULES: tuple[dict[str, str | None], ...] = (
    {"listRule": "", "viewRule": "", "createRule": "@request.auth.id != ''",
     "updateRule": "owner = @request.auth.id", "deleteRule": "owner = @request.auth.id"},
    {"listRule": None, "viewRule": None, "createRule": None, "updateRule": None, "deleteRule": None},
    {"listRule": "@request.auth.id != ''", "viewRule": "@request.auth.id != ''",
     "createRule": "@request.auth.id != ''", "updateRule": None, "deleteRule": None},
    {"listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
     "createRule": "@request.auth.id != '' && owner = @request.auth.id",
     "updateRule": "owner = @request.auth.id", "deleteRule": "owner = @request.auth.id"},
)


def _fid(kind: str, name: str, coll: str) -> str:
    return f"{kind}{zlib.crc32(f'{coll}.{name}'.encode())}"


def _id_field(max_len: int = 15) -> dict[str, Any]:
    return {
        "autogeneratePattern": "[a-z0-9]{15}", "help": "", "hidden": False, "id": "text3208210256",
        "max": max_len, "min": max_len, "name": "id", "pattern": "^[a-z0-9]+$",
        "presentable": False, "primaryKey": True, "required": True, "system": True, "type": "text",
    }


def _common(name: str, kind: str, coll: str, **extra: Any) -> dict[str, Any]:
    field = {"help": "", "hidden": False, "id": _fid(kind, name, coll), "name": name,
             "presentable": False, "required": False, "system": False, "type": kind}
    if kind == "autodate":  # PocketBase's autodate fields carry no "required" flag
        del field["required"]
    field.update(extra)
    return field


def _base_fields(coll: str, index: int, previous_id: str | None) -> list[dict[str, Any]]:
    text = {"autogeneratePattern": "", "pattern": "", "primaryKey": False}
    fields = [
        _id_field(),
        _common("title", "text", coll, required=True, min=1, max=200, presentable=True, **text),
        _common("slug", "text", coll, min=0, max=80, **{**text, "pattern": "^[a-z0-9-]+$"}),
        _common("body", "editor", coll, maxSize=50000, convertURLs=False),
        _common("count", "number", coll, min=0, max=None, onlyInt=True),
        _common("score", "number", coll, min=0, max=10, onlyInt=False),
        _common("active", "bool", coll),
        _common("contact", "email", coll, onlyDomains=[], exceptDomains=["spam.test"]),
        _common("homepage", "url", coll, onlyDomains=[], exceptDomains=[]),
        _common("due", "date", coll, min="2020-01-01 00:00:00.000Z", max=""),
        _common("state", "select", coll, required=True, maxSelect=1,
                values=["draft", "live", "archived"]),
        _common("labels", "select", coll, maxSelect=3,
                values=["a", "b", "c", "4K", "1", "c++", "for"]),
        _common("image", "file", coll, maxSelect=1, maxSize=1048576,
                mimeTypes=["image/png", "image/jpeg"], thumbs=["100x100"], protected=False),
        _common("docs", "file", coll, maxSelect=4, maxSize=5242880, mimeTypes=[], thumbs=[],
                protected=index % 2 == 0),
        _common("owner", "relation", coll, collectionId=USERS_ID, maxSelect=1, minSelect=0,
                cascadeDelete=False),
        _common("data", "json", coll, maxSize=100000),
        _common("where", "geoPoint", coll),
    ]
    if previous_id is not None:
        fields.append(_common("related", "relation", coll, collectionId=previous_id,
                              maxSelect=5, minSelect=0, cascadeDelete=index % 3 == 0))
    if index % 7 == 0:
        fields.append(_common("internal", "text", coll, hidden=True, min=0, max=0, **text))
    fields += [
        _common("created", "autodate", coll, onCreate=True, onUpdate=False),
        _common("updated", "autodate", coll, onCreate=True, onUpdate=True),
    ]
    return fields


def _base(index: int, previous_id: str | None) -> dict[str, Any]:
    name = f"items_{index:04d}"
    coll_id = f"pbc_syn_{index:06d}"
    return {
        "id": coll_id, "name": name, "type": "base", "system": False,
        "fields": _base_fields(name, index, previous_id),
        "indexes": [f"CREATE INDEX `idx_{name}_owner` ON `{name}` (`owner`)"],
        **_RULES[index % len(_RULES)],
    }


def _view(index: int, source: dict[str, Any]) -> dict[str, Any]:
    name = f"stats_{index:04d}"
    src = source["name"]
    title = next(f for f in source["fields"] if f["name"] == "title")
    return {
        "id": f"pbc_syn_{index:06d}", "name": name, "type": "view", "system": False,
        "fields": [
            {**_id_field(0), "autogeneratePattern": ""},
            copy.deepcopy(title),
            _common("total", "number", name, min=None, max=None, onlyInt=True),
        ],
        "indexes": [],
        "viewQuery": f"SELECT id, title, count AS total FROM {src}",
        "listRule": "", "viewRule": "", "createRule": None, "updateRule": None, "deleteRule": None,
    }


def synthetic_schema(n: int) -> list[dict[str, Any]]:
    """``n`` collections (``n >= 1``): ``users`` first, then base and view collections."""
    if n < 1:
        raise ValueError("a schema needs at least one collection")
    users = next(c for c in postly_schema() if c["name"] == "users")
    collections: list[dict[str, Any]] = [copy.deepcopy(users)]
    previous: dict[str, Any] | None = None
    for index in range(1, n):
        if index % VIEW_EVERY == 0 and previous is not None:
            collections.append(_view(index, previous))
            continue
        base = _base(index, previous["id"] if previous is not None else None)
        collections.append(base)
        previous = base
    return collections
