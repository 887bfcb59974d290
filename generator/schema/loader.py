"""Load any PocketBase schema export into the validated input model.

Two steps, both pure:

* ``normalize`` turns every export shape seen in the wild into current-format (0.23+)
  collection dicts: a bare array, ``{"collections": [...]}``, a saved ``/api/collections`` list
  response (``{"items": [...]}``), the legacy format (< 0.23: ``schema`` with nested
  ``options``, implicit system fields) and hybrids of the two. The result can be imported into
  a PocketBase with ``PUT /api/collections/import``.
* ``parse`` checks those dicts and builds the typed ``PBSchema``. Whatever cannot be accepted is
  a ``SchemaError`` naming the collection and field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SchemaError
from .model import (
    COLLECTION_TYPES,
    FIELD_TYPES,
    AuthOptions,
    PBCollection,
    PBField,
    PBSchema,
    Rules,
)

JsonDict = dict[str, Any]

_RULE_KEYS = ("listRule", "viewRule", "createRule", "updateRule", "deleteRule")
#: Keys that only the legacy format has on a field; dropped after conversion.
_LEGACY_FIELD_KEYS = ("options", "unique", "displayFields", "noDecimal", "convertUrls")
#: Legacy relations without ``maxSelect`` held any number of ids.
LEGACY_UNBOUNDED_SELECT = 999


def load_file(path: Path) -> PBSchema:
    """Read, normalise and parse a schema file; every failure is one ``SchemaError`` line."""
    return parse(normalize(read_json(path)))


def read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file (run `hapta-gen schema pull` to create it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read the file: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


# --------------------------------------------------------------------------------------------
# normalize


def normalize(data: object) -> list[JsonDict]:
    """Any accepted export shape → a list of current-format collection dicts."""
    items = _unwrap(data)
    if not items:
        raise SchemaError("the schema holds no collections")
    out: list[JsonDict] = []
    for index, raw in enumerate(items):
        if not isinstance(raw, Mapping):
            raise SchemaError(f"collection #{index + 1} is not a JSON object")
        out.append(_normalize_collection(raw, index))
    return out


def _unwrap(data: object) -> list[object]:
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for key in ("collections", "items"):
            inner = data.get(key)
            if isinstance(inner, list):
                return inner
        if "name" in data and ("fields" in data or "schema" in data):
            return [data]
    raise SchemaError(
        "not a PocketBase schema: expected a JSON array of collections, "
        '{"collections": [...]} or a saved /api/collections response'
    )


def _normalize_collection(raw: Mapping[str, Any], index: int) -> JsonDict:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"collection #{index + 1} has no name")
    ctype = raw.get("type", "base")
    if ctype not in COLLECTION_TYPES:
        raise SchemaError(f"unknown collection type {ctype!r} (expected base, auth or view)", collection=name)
    legacy = "fields" not in raw and "schema" in raw
    raw_fields = raw.get("fields") if not legacy else raw.get("schema")
    if raw_fields is None:
        raw_fields = []
    if not isinstance(raw_fields, list):
        raise SchemaError("`fields` must be a list", collection=name)
    options = raw.get("options") if isinstance(raw.get("options"), Mapping) else {}
    assert isinstance(options, Mapping)

    col: JsonDict = {
        k: v
        for k, v in raw.items()
        if k not in ("schema", "fields", "options", "created", "updated", "description", "$schema")
    }
    col["name"] = name
    col["type"] = ctype
    col.setdefault("system", False)
    for key in _RULE_KEYS:
        col.setdefault(key, None)
    if not isinstance(col.get("indexes"), list):
        col["indexes"] = []

    fields = [_normalize_field(f, name, i) for i, f in enumerate(raw_fields)]
    if ctype == "view":
        col["viewQuery"] = str(raw.get("viewQuery") or options.get("query") or "")
        for key in ("createRule", "updateRule", "deleteRule"):
            col[key] = None
    if ctype == "auth":
        if legacy:
            col.setdefault("authRule", "verified=true" if options.get("onlyVerified") else "")
            col.setdefault("manageRule", options.get("manageRule") or None)
            col.update(_legacy_auth_options(options))
        col.setdefault("authRule", "")
        col.setdefault("manageRule", None)
    col["fields"] = _with_system_fields(fields, ctype, legacy, options)
    if any(isinstance(f, Mapping) and f.get("unique") is True for f in raw_fields):
        col["indexes"] = col["indexes"] + _unique_indexes(raw_fields, name)
    if legacy and ctype == "auth":
        col["indexes"] = [_username_index(col), *col["indexes"]]
    for key in (*_RULE_KEYS, "authRule", "manageRule"):
        if isinstance(col.get(key), str):
            col[key] = _current_rule(col[key])
    return col


def _current_rule(rule: str) -> str:
    """PocketBase 0.23 renamed ``@request.data`` to ``@request.body`` (its upgrade does the same)."""
    return rule.replace("@request.data", "@request.body")


def _unique_indexes(raw_fields: list[Any], collection: str) -> list[str]:
    """Very old exports (< 0.16) mark unique fields with ``unique``; PocketBase made them indexes."""
    out = []
    for f in raw_fields:
        if isinstance(f, Mapping) and f.get("unique") is True and isinstance(f.get("name"), str):
            key = f.get("id") or f["name"]
            out.append(f"CREATE UNIQUE INDEX `idx_unique_{key}` ON `{collection}` (`{f['name']}`)")
    return out


def _username_index(col: Mapping[str, Any]) -> str:
    """Legacy usernames were unique; the 0.23 upgrade keeps them unique with this index."""
    cid = col.get("id") or col["name"]
    return f"CREATE UNIQUE INDEX `_{cid}_username_idx` ON `{col['name']}` (username COLLATE NOCASE)"


def _normalize_field(raw: object, collection: str, index: int) -> JsonDict:
    if not isinstance(raw, Mapping):
        raise SchemaError(f"field #{index + 1} is not a JSON object", collection=collection)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"field #{index + 1} has no name", collection=collection)
    ftype = raw.get("type")
    if ftype not in FIELD_TYPES:
        known = ", ".join(FIELD_TYPES)
        raise SchemaError(f"unknown field type {ftype!r} (PocketBase knows: {known})", collection=collection, field=name)
    field: JsonDict = {k: v for k, v in raw.items() if k not in _LEGACY_FIELD_KEYS}
    nested = raw.get("options")
    if isinstance(nested, Mapping):
        for key, value in nested.items():
            field.setdefault(key, value)
        field.pop("noDecimal", None)
        field.pop("displayFields", None)
        field.pop("convertUrls", None)
    opts: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    if raw.get("noDecimal") or opts.get("noDecimal"):
        field["onlyInt"] = True
    if "convertUrls" in opts and "convertURLs" not in field:
        field["convertURLs"] = bool(opts["convertUrls"])
    if ftype in ("text", "password"):
        # Legacy exports write `null` (or nothing) where 0.23+ writes 0 for "no limit" on text.
        for key in ("min", "max"):
            if field.get(key) is None:
                field[key] = 0
    if ftype in ("select", "file") and field.get("maxSelect") in (None, 0):
        field["maxSelect"] = 1
    if ftype == "relation" and isinstance(nested, Mapping) and field.get("maxSelect") in (None, 0):
        field["maxSelect"] = LEGACY_UNBOUNDED_SELECT
    if ftype == "date":
        for key in ("min", "max"):
            if field.get(key) is None:
                field[key] = ""
    if ftype in ("email", "url"):
        for key in ("onlyDomains", "exceptDomains"):
            if field.get(key) is None:
                field[key] = []
    field["name"] = name
    field["type"] = ftype
    return field


def _legacy_auth_options(options: Mapping[str, Any]) -> JsonDict:
    identity = []
    if options.get("allowEmailAuth", True):
        identity.append("email")
    if options.get("allowUsernameAuth", False):
        identity.append("username")
    return {
        "passwordAuth": {"enabled": bool(identity), "identityFields": identity or ["email"]},
        "oauth2": {"enabled": bool(options.get("allowOAuth2Auth", False)), "providers": []},
    }


def _with_system_fields(
    fields: list[JsonDict], ctype: str, legacy: bool, options: Mapping[str, Any]
) -> list[JsonDict]:
    """Add the fields PocketBase always has but older exports leave implicit."""
    names = {f["name"] for f in fields}
    head: list[JsonDict] = []
    tail: list[JsonDict] = []
    if "id" not in names:
        if ctype == "view":
            head.append({"name": "id", "type": "text", "system": True, "primaryKey": True, "required": True,
                         "min": 0, "max": 0, "pattern": "^[a-z0-9]+$", "autogeneratePattern": ""})
        else:
            head.append(_ID_FIELD)
    if ctype == "auth" and legacy:
        head += [_legacy_auth_field(f, options) for f in _AUTH_FIELDS if f["name"] not in names]
    if legacy and ctype != "view":
        tail += [f for f in _AUTODATE_FIELDS if f["name"] not in names]
    return [dict(f) for f in head] + fields + [dict(f) for f in tail]


def _legacy_auth_field(field: JsonDict, options: Mapping[str, Any]) -> JsonDict:
    """A system auth field with the legacy collection options that now live on it."""
    out = dict(field)
    if field["name"] == "password" and isinstance(options.get("minPasswordLength"), int):
        out["min"] = options["minPasswordLength"] or field["min"]
    if field["name"] == "email":
        out["required"] = bool(options.get("requireEmail", field["required"]))
        out["exceptDomains"] = list(options.get("exceptEmailDomains") or [])
        out["onlyDomains"] = list(options.get("onlyEmailDomains") or [])
    return out


_ID_FIELD: JsonDict = {
    "autogeneratePattern": "[a-z0-9]{15}", "hidden": False, "max": 15, "min": 15, "name": "id",
    "pattern": "^[a-z0-9]+$", "presentable": False, "primaryKey": True, "required": True,
    "system": True, "type": "text",
}
_AUTH_FIELDS: tuple[JsonDict, ...] = (
    {"cost": 0, "hidden": True, "max": 0, "min": 8, "name": "password", "pattern": "",
     "presentable": False, "required": True, "system": True, "type": "password"},
    {"autogeneratePattern": "[a-zA-Z0-9]{50}", "hidden": True, "max": 60, "min": 30,
     "name": "tokenKey", "pattern": "", "presentable": False, "primaryKey": False,
     "required": True, "system": True, "type": "text"},
    {"exceptDomains": [], "hidden": False, "name": "email", "onlyDomains": [], "presentable": False,
     "required": True, "system": True, "type": "email"},
    {"hidden": False, "name": "emailVisibility", "presentable": False, "required": False,
     "system": True, "type": "bool"},
    {"hidden": False, "name": "verified", "presentable": False, "required": False, "system": True,
     "type": "bool"},
    # Before 0.23 every auth collection had a username; the upgrade kept it as a plain field
    # (required, autogenerated when blank, unique through an index: see _username_index).
    {"autogeneratePattern": "users[0-9]{6}", "hidden": False, "max": 150, "min": 3, "name": "username",
     "pattern": "^[\\w][\\w\\.\\-]*$", "presentable": False, "primaryKey": False, "required": True,
     "system": False, "type": "text"},
)
_AUTODATE_FIELDS: tuple[JsonDict, ...] = (
    {"hidden": False, "name": "created", "onCreate": True, "onUpdate": False, "presentable": False,
     "system": False, "type": "autodate"},
    {"hidden": False, "name": "updated", "onCreate": True, "onUpdate": True, "presentable": False,
     "system": False, "type": "autodate"},
)


# --------------------------------------------------------------------------------------------
# parse


def parse(collections: list[JsonDict]) -> PBSchema:
    """Current-format collection dicts → the typed, checked ``PBSchema``."""
    parsed: list[PBCollection] = []
    seen: dict[str, str] = {}
    for raw in collections:
        col = _parse_collection(raw)
        key = col.name.lower()
        if key in seen:
            raise SchemaError(f"the collection name is used twice (also by {seen[key]!r})", collection=col.name)
        seen[key] = col.name
        parsed.append(col)
    warnings = _check_relations(parsed)
    return PBSchema(collections=tuple(parsed), warnings=tuple(warnings))


def _parse_collection(raw: JsonDict) -> PBCollection:
    name: str = raw["name"]
    fields: list[PBField] = []
    seen: set[str] = set()
    for rf in raw.get("fields", []):
        f = _parse_field(rf, name)
        if f.name.lower() in seen:
            raise SchemaError("the field name is used twice", collection=name, field=f.name)
        seen.add(f.name.lower())
        fields.append(f)
    rules = Rules(
        list=_rule(raw, "listRule", name),
        view=_rule(raw, "viewRule", name),
        create=_rule(raw, "createRule", name),
        update=_rule(raw, "updateRule", name),
        delete=_rule(raw, "deleteRule", name),
        auth=_rule(raw, "authRule", name) if raw["type"] == "auth" else None,
        manage=_rule(raw, "manageRule", name) if raw["type"] == "auth" else None,
    )
    indexes = tuple(i for i in raw.get("indexes", []) if isinstance(i, str))
    cid = raw.get("id")
    return PBCollection(
        name=name,
        type=raw["type"],
        id=cid if isinstance(cid, str) and cid else name,
        system=bool(raw.get("system", False)),
        fields=tuple(fields),
        rules=rules,
        indexes=indexes,
        view_query=str(raw.get("viewQuery") or ""),
        auth=_auth_options(raw) if raw["type"] == "auth" else None,
    )


def _rule(raw: JsonDict, key: str, collection: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise SchemaError(f"`{key}` must be a string or null", collection=collection)


def _auth_options(raw: JsonDict) -> AuthOptions:
    pw = raw.get("passwordAuth") if isinstance(raw.get("passwordAuth"), Mapping) else {}
    oauth = raw.get("oauth2") if isinstance(raw.get("oauth2"), Mapping) else {}
    otp = raw.get("otp") if isinstance(raw.get("otp"), Mapping) else {}
    mfa = raw.get("mfa") if isinstance(raw.get("mfa"), Mapping) else {}
    assert isinstance(pw, Mapping) and isinstance(oauth, Mapping)
    assert isinstance(otp, Mapping) and isinstance(mfa, Mapping)
    providers = oauth.get("providers") or []
    identity = pw.get("identityFields") or ["email"]
    return AuthOptions(
        password_enabled=bool(pw.get("enabled", True)),
        identity_fields=tuple(str(i) for i in identity),
        oauth2_enabled=bool(oauth.get("enabled", False)),
        oauth2_providers=tuple(
            str(p.get("name")) for p in providers if isinstance(p, Mapping) and p.get("name")
        ),
        otp_enabled=bool(otp.get("enabled", False)),
        mfa_enabled=bool(mfa.get("enabled", False)),
    )


def _parse_field(raw: JsonDict, collection: str) -> PBField:
    name: str = raw["name"]
    get = _Getter(raw, collection, name)
    ftype = raw["type"]
    is_number = ftype == "number"
    return PBField(
        name=name,
        type=ftype,
        id=get.text("id"),
        system=get.flag("system"),
        hidden=get.flag("hidden"),
        required=get.flag("required"),
        presentable=get.flag("presentable"),
        help=get.text("help"),
        min=get.num("min") if ftype in ("text", "password", "number") else None,
        max=get.num("max") if ftype in ("text", "password", "number") else None,
        pattern=get.text("pattern"),
        autogenerate_pattern=get.text("autogeneratePattern"),
        primary_key=get.flag("primaryKey"),
        only_int=get.flag("onlyInt") if is_number else False,
        max_size=int(get.num("maxSize") or 0),
        convert_urls=get.flag("convertURLs"),
        only_domains=get.strs("onlyDomains"),
        except_domains=get.strs("exceptDomains"),
        date_min=get.text("min") if ftype == "date" else "",
        date_max=get.text("max") if ftype == "date" else "",
        on_create=get.flag("onCreate"),
        on_update=get.flag("onUpdate"),
        values=get.strs("values"),
        max_select=int(get.num("maxSelect") or 0),
        min_select=int(get.num("minSelect") or 0),
        mime_types=get.strs("mimeTypes"),
        thumbs=get.strs("thumbs"),
        protected=get.flag("protected"),
        collection_id=get.text("collectionId"),
        cascade_delete=get.flag("cascadeDelete"),
    )


class _Getter:
    """Typed access to one field's options, with errors that name the collection and field."""

    def __init__(self, raw: JsonDict, collection: str, field: str) -> None:
        self.raw, self.collection, self.field = raw, collection, field

    def _bad(self, key: str, expected: str) -> SchemaError:
        return SchemaError(f"option `{key}` must be {expected}, not {self.raw[key]!r}",
                           collection=self.collection, field=self.field)

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def num(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number")
        return int(value) if float(value).is_integer() else float(value)

    def strs(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)


def _check_relations(collections: list[PBCollection]) -> list[str]:
    known = {c.id for c in collections} | {c.name for c in collections}
    warnings = []
    for col in collections:
        for f in col.fields:
            if f.type != "relation":
                continue
            if not f.collection_id:
                raise SchemaError("relation field has no `collectionId`", collection=col.name, field=f.name)
            if f.collection_id not in known:
                warnings.append(
                    f"{col.name}.{f.name}: relation target {f.collection_id!r} is not in the schema; "
                    "typed as plain record ids, not expandable"
                )
    return warnings
