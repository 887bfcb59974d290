"""The TypeScript printer of the type model, and the ``types.ts`` file ``build`` writes with it.

A third printer of the same ``TypeIR`` (after ``emit/pytypes.py`` and ``openapi/schemas.py``'s
``json_schema``), in the shape pocketbase-typegen gives its output so front ends can switch:
a ``Collections`` enum, ``<Name>Record`` (the fields), ``<Name>Response<Texpand>`` (with the
system fields; ``expand`` required once ``Texpand`` is given), ``CollectionRecords`` /
``CollectionResponses``, and ``TypedPocketBase`` for ``pb.collection("posts")``. Beyond it:
select options as string unions (the IR's aliases), ``<Name>Expand`` typed from relations and
back-relations, and ``<Name>Create`` / ``<Name>Update`` (modifier keys included) as the gateway
checks them. The file is computed here, not templated: it is all type printing.

Where it differs from typegen: json fields are ``unknown`` with no type parameter of their own
(typegen's ``<Name>Response<Tjson, Texpand>`` is ``<Name>Response<Texpand>`` here), and the
field types are the gateway's (a required select is its union, ``""`` only where PocketBase
may return it). Like typegen's, a Response has every field (``Required<>``): ``?fields=`` and
an auth record's hidden ``email`` are the caller's to narrow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..ir.model import CollectionIR, FieldIR, SchemaIR
from ..ir.types import SlotIR, TypeIR

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

#: What each kind is in TypeScript, where it is one name (the aliases are in ``_PRELUDE``).
_NAMES = {
    "str": "string",
    "email": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "json": "unknown",
    "date": "IsoDateString",
    "date_input": "IsoDateString",
    "geo_point": "GeoPoint",
    "geo_point_input": "GeoPoint",
    # kept file names in a JSON body, or uploads (the SDK then sends multipart/form-data)
    "file_names": "FileNames | FileUpload",
}

_IMPORTS = """\
import type PocketBase from "pocketbase"
import type { RecordService } from "pocketbase"
"""

_PRELUDE = """\
// Alias types (as pocketbase-typegen names them)
export type IsoDateString = string
export type RecordIdString = string
export type HTMLString = string
export type GeoPoint = { lon: number; lat: number }
/** Kept file names, in a JSON body. */
export type FileNames = string | string[]
/** Uploads (a File is a Blob): the SDK sends such a body as multipart/form-data. */
export type FileUpload = Blob | Blob[]

// System fields: `expand` is optional and untyped, or required once its type is given
type ExpandType<T> = unknown extends T
\t? T extends unknown
\t\t? { expand?: unknown }
\t\t: { expand: T }
\t: { expand: T }

export type BaseSystemFields<T = unknown> = {
\tcollectionId: string
\tcollectionName: Collections
} & ExpandType<T>

/** An auth record's own fields (email, verified...) are in its Record type. */
export type AuthSystemFields<T = unknown> = BaseSystemFields<T>
export type ViewSystemFields<T = unknown> = BaseSystemFields<T>
"""


def ts_type(t: TypeIR, models: Mapping[str, str] | None = None) -> str:
    """``t`` in TypeScript: ``PostsTags[] | PostsTags | null`` and the like.

    ``models`` maps a ``model`` type's name (the Python Record class) to its TypeScript name.
    """
    parts = [_value(t, models or {})]
    if t.or_item:
        assert t.item is not None
        parts.append(ts_type(t.item, models))
    if t.blank:
        parts.append('""')
    if t.nullable:
        parts.append("null")
    if "unknown" in parts:
        return "unknown"  # any value: null and "" included
    return " | ".join(dict.fromkeys(parts))


def _value(t: TypeIR, models: Mapping[str, str]) -> str:
    if t.kind == "bool" and t.non_zero:
        return "true"
    if t.kind in _NAMES:
        return _NAMES[t.kind]
    if t.kind == "literal":
        return t.name or " | ".join(json.dumps(v, ensure_ascii=False) for v in t.values)
    if t.kind == "model":
        return models.get(t.name, t.name)
    assert t.kind == "list" and t.item is not None
    item = ts_type(t.item, models)
    return f"{item}[]" if _IDENT.match(item) else f"Array<{item}>"


def key(name: str) -> str:
    """An object key: bare where it is an identifier, quoted otherwise (``"views+"``)."""
    return name if _IDENT.match(name) else json.dumps(name, ensure_ascii=False)


def member(name: str, slot: SlotIR, models: Mapping[str, str] | None = None) -> str:
    """``name?: type`` (``?`` where the key may be left out)."""
    return f"{key(name)}{'' if slot.required else '?'}: {ts_type(slot.type, models)}"


def _doc(text: str) -> list[str]:
    text = " ".join(text.split()).replace("*/", "*\\/")
    return [f"\t/** {text} */"] if text else []


def _object(lines: list[str]) -> str:
    return "{\n" + "\n".join(lines) + "\n}" if lines else "Record<string, never>"


# --- the file ---------------------------------------------------------------------------------


def typescript_text(ir: SchemaIR) -> str:
    """The whole ``types.ts`` (without its DO-NOT-EDIT header, which ``render`` adds)."""
    names = {c.record_class: response_name(c) for c in ir.collections}
    parts = [
        _IMPORTS.rstrip("\n"),
        _enum(ir),
        _PRELUDE.rstrip("\n"),
        *(["// Select options"] if any(c.literals for c in ir.collections) else []),
        *[_literals(c) for c in ir.collections if c.literals],
        *(["// Typed json fields (hapta.yaml's json_schemas)"] if ir.json_fields else []),
        *[f"export type {jf.class_name} = {schema_ts(jf.schema)}" for jf in ir.json_fields],
        "// Record types: each collection's fields",
        *[_record(c) for c in ir.collections],
        "// Response types: the fields and the system fields, as PocketBase returns them",
        "\n".join(_response(c) for c in ir.collections),
        "// Expand types: what `?expand=` may fill in (relations and back-relations)",
        *[_expand(c, names) for c in ir.collections],
        "// Request bodies: what the gateway accepts for create and update",
        *[_create(c) for c in ir.collections if c.create_class],
        *[_update(c) for c in ir.collections if c.update_class],
        "// Types containing all Records and Responses, useful for creating typing helper functions",
        _map("CollectionRecords", ir, lambda c: c.class_prefix + "Record"),
        _map("CollectionResponses", ir, response_name),
        _typed_pocketbase(ir),
    ]
    return "\n\n".join(parts) + "\n"


_TS_PRIMITIVES = {"string": "string", "integer": "number", "number": "number",
                  "boolean": "boolean", "null": "null"}


def schema_ts(schema: Any, root: Any = None, depth: int = 0) -> str:
    """A JSON Schema as a TypeScript type, where it is simple (types, enums, objects, arrays,
    unions, local ``$ref``s); ``unknown`` for the rest (the gateway checks the schema itself)."""
    root = schema if root is None else root
    if depth > 8 or not isinstance(schema, dict):
        return "unknown" if schema is not False else "never"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _pointer(root, ref)
        return schema_ts(target, root, depth + 1) if target is not None else "unknown"
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if isinstance(schema.get("enum"), list):
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"]) or "never"
    for word, joiner in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
        if isinstance(schema.get(word), list) and schema[word]:
            return "(" + joiner.join(schema_ts(s, root, depth + 1) for s in schema[word]) + ")"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_typed(schema, k, root, depth) for k in kind) or "unknown"
    return _typed(schema, kind, root, depth)


def _typed(schema: dict[str, Any], kind: Any, root: Any, depth: int) -> str:
    if kind in _TS_PRIMITIVES:
        return _TS_PRIMITIVES[kind]
    if kind == "array":
        items = schema.get("items")
        return f"Array<{schema_ts(items, root, depth + 1) if isinstance(items, dict) else 'unknown'}>"
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        members = [
            f"{key(name)}{'' if name in required else '?'}: {schema_ts(sub, root, depth + 1)}"
            for name, sub in props.items()
        ]
        extra = schema.get("additionalProperties")
        if not props:
            value = schema_ts(extra, root, depth + 1) if isinstance(extra, dict) else "unknown"
            return f"Record<string, {value}>"
        return "{ " + "; ".join(members) + " }"
    return "unknown"


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[2:].split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def response_name(c: CollectionIR) -> str:
    return c.class_prefix + "Response"


def _enum(ir: SchemaIR) -> str:
    lines = [f"\t{c.class_prefix} = {json.dumps(c.name)}," for c in ir.collections]
    return "export enum Collections {\n" + "\n".join(lines) + "\n}"


def _literals(c: CollectionIR) -> str:
    return "\n".join(f"export type {lit.name} = {ts_type(lit.type)}" for lit in c.literals)


def _record(c: CollectionIR) -> str:
    lines: list[str] = []
    for f in c.record_fields:
        assert f.record is not None
        lines += [*_doc(f.description), "\t" + member(f.name, f.record)]
    return f"export type {c.class_prefix}Record = {_object(lines)}"


def _response(c: CollectionIR) -> str:
    system = {"auth": "AuthSystemFields", "view": "ViewSystemFields"}.get(c.type, "BaseSystemFields")
    return (
        f"export type {response_name(c)}<Texpand = unknown> = "
        f"Required<{c.class_prefix}Record> & {system}<Texpand>"
    )


def _expand(c: CollectionIR, models: Mapping[str, str]) -> str:
    lines: list[str] = []
    for e in c.expands:
        # The IR's type is nullable (the Python default); PocketBase leaves the key out instead.
        via = f"`{e.target}` records whose `{e.via_field}` points here" if e.back else e.key
        lines += _doc(f"Expanded {via}.")
        lines.append(f"\t{key(e.key)}?: {ts_type(replace(e.type, nullable=False), models)}")
    return f"export type {c.expand_class} = {_object(lines)}"


def _create(c: CollectionIR) -> str:
    lines = []
    for f in c.create_fields:
        assert f.create is not None
        lines.append("\t" + member(f.name, f.create))
    return f"export type {c.create_class} = {_object(lines)}"


def _update(c: CollectionIR) -> str:
    lines = []
    for f in c.update_fields:
        assert f.update is not None
        lines.append("\t" + member(f.name, f.update))
    for m in c.modifiers:
        lines.append("\t" + member(m.key, SlotIR(m.type)))
    # Multi-file fields: `field+` appends uploads (multipart only, which the SDK picks for Blobs).
    lines += [f"\t{key(f.name + '+')}?: FileUpload" for f in _appendable_files(c)]
    return f"export type {c.update_class} = {_object(lines)}"


def _appendable_files(c: CollectionIR) -> list[FieldIR]:
    return [f for f in c.update_fields if f.type == "file" and f.multiple]


def _map(name: str, ir: SchemaIR, type_name: Callable[[CollectionIR], str]) -> str:
    lines = [f"\t{key(c.name)}: {type_name(c)}" for c in ir.collections]
    return f"export type {name} = {_object(lines)}"


def _typed_pocketbase(ir: SchemaIR) -> str:
    lines = [
        f"\tcollection(idOrName: Collections.{c.class_prefix} | {json.dumps(c.name)}): "
        f"RecordService<{response_name(c)}>"
        for c in ir.collections
    ]
    lines.append("\tcollection(idOrName: string): RecordService")
    return (
        "// A PocketBase client typed per collection: `new PocketBase(url) as TypedPocketBase`\n"
        "// (https://github.com/pocketbase/js-sdk#specify-typescript-definitions)\n"
        "export interface TypedPocketBase extends PocketBase {\n" + "\n".join(lines) + "\n}"
    )
