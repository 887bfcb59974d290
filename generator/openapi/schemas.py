"""JSON Schemas (OpenAPI 3.1, i.e. JSON Schema 2020-12) of records, bodies and shared objects.

Response schemas describe what PocketBase returns: every non-hidden field with its zero value
(``""``, ``0``, ``false``, ``[]``, ``null`` for json), dates as ``YYYY-MM-DD HH:MM:SS.sssZ``.
No key is required in a response: ``?fields=`` may pick any subset, and auth records leave
``email`` out for other callers. Request schemas mirror the generated pydantic input models
(``ir/fieldtypes.py``): both are printed from the same ``TypeIR`` (``json_schema`` here), with the
same constraints, ``""`` where the model accepts a blank, ``null`` where the key is optional,
unknown keys allowed (PocketBase ignores them).
"""

from __future__ import annotations

from typing import Any

from ..ir.model import CollectionIR, FieldIR
from ..ir.types import SlotIR, TypeIR

JsonSchema = dict[str, Any]

SCHEMAS = "#/components/schemas/"
#: PocketBase's stored date, or ``""`` when unset (``2026-01-02 03:04:05.678Z``).
PB_DATE_PATTERN = r"^(|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?Z)$"
#: Dates a body may carry (as ``models/base.py``'s ``_DATE_INPUT``): PocketBase's or ISO 8601.
DATE_INPUT_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
#: As ``models/base.py``'s ``_EMAIL`` (with its ``max_length``).
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
EMAIL_MAX = 255
#: What ``required`` refuses in a json field (``NonBlank``).
_JSON_BLANKS: list[Any] = [None, "", 0, False, [], {}]


def ref(name: str, **extra: Any) -> JsonSchema:
    return {"$ref": SCHEMAS + name, **extra}


# ---------------------------------------------------------------------------------------------
# component names beyond the IR's classes (suffixes no IR class ends with, so no clashes)


def create_form_name(c: CollectionIR) -> str:
    return c.class_prefix + "CreateForm"


def update_form_name(c: CollectionIR) -> str:
    return c.class_prefix + "UpdateForm"


def auth_response_name(c: CollectionIR) -> str:
    return c.class_prefix + "AuthResponse"


def event_name(c: CollectionIR) -> str:
    return c.class_prefix + "Event"


def has_files(c: CollectionIR) -> bool:
    return any(f.type == "file" and not f.hidden for f in c.fields)


def has_form(c: CollectionIR) -> bool:
    """Writable collections with file fields also take ``multipart/form-data`` bodies."""
    return c.create_class is not None and any(f.type == "file" for f in c.create_fields)


# ---------------------------------------------------------------------------------------------
# responses


def record_field(f: FieldIR, c: CollectionIR) -> JsonSchema:
    """A field as PocketBase returns it (its zero value included)."""
    assert f.record is not None
    if f.name == "id":
        return {"type": "string", "description": "The record id."}
    schema = json_schema(f.record.type)
    if f.type == "autodate":
        schema = {**schema, "readOnly": True}
    return _described(schema, _record_note(f, c))


def record_schema(c: CollectionIR) -> JsonSchema:
    props: JsonSchema = {}
    fields = c.record_fields
    for f in fields:
        if f.name == "id":
            props[f.name] = record_field(f, c)
    props["collectionId"] = {"type": "string", "examples": [c.id]}
    props["collectionName"] = {"type": "string", "const": c.name}
    for f in fields:
        if f.name != "id":
            props[f.name] = record_field(f, c)
    props["expand"] = ref(
        c.expand_class, description="Present when `?expand=` filled something in."
    )
    return {
        "type": "object",
        "description": (
            f"A `{c.name}` record as PocketBase returns it: every field present with its zero "
            "value when unset (`?fields=` may pick fewer keys). Hidden fields are never listed."
        ),
        "properties": props,
    }


def expand_schema(c: CollectionIR) -> JsonSchema:
    props: JsonSchema = {}
    for e in c.expands:
        target = ref(e.target_class)
        if e.multiple:
            props[e.key] = {"type": "array", "items": target}
        else:
            props[e.key] = target
        via = (
            f"records of `{e.target}` whose `{e.via_field}` points here" if e.back else f"`{e.key}`"
        )
        props[e.key] = _described(props[e.key], f"Expanded {via}.")
    return {
        "type": "object",
        "description": (
            f"Relations of `{c.name}` that `?expand=` can fill in (dot for nesting). Every key "
            "is optional: the related collection's view rule may leave any of them out."
        ),
        "properties": props,
    }


def page_schema(c: CollectionIR) -> JsonSchema:
    return {
        "type": "object",
        "description": (
            f"PocketBase's list envelope for `{c.name}` "
            "(`totalItems`/`totalPages` are -1 with `skipTotal`)."
        ),
        "properties": {
            "page": {"type": "integer"},
            "perPage": {"type": "integer"},
            "totalItems": {"type": "integer"},
            "totalPages": {"type": "integer"},
            "items": {"type": "array", "items": ref(c.record_class)},
        },
        "required": ["page", "perPage", "totalItems", "totalPages", "items"],
    }


def auth_response_schema(c: CollectionIR) -> JsonSchema:
    # No key is required: `?fields=` picks from the whole answer (`fields=record.id` leaves the
    # token out, `fields=abc` answers `{}`), not from the record alone.
    return {
        "type": "object",
        "description": (
            f"A PocketBase auth token and the authenticated `{c.name}` record "
            "(`?fields=` may pick fewer keys, `token` included)."
        ),
        "properties": {
            "token": {"type": "string", "description": "Send as `Authorization: <token>`."},
            "record": ref(c.record_class),
            "meta": {
                "type": "object",
                "description": "OAuth2 only: the provider's user data and `isNew`.",
            },
        },
    }


def event_schema(c: CollectionIR) -> JsonSchema:
    return {
        "type": "object",
        "description": f"The `data` of a realtime event for a `{c.sse_topic}` or `{c.name}/<id>` subscription.",
        "properties": {
            "action": {"type": "string", "enum": ["create", "update", "delete"]},
            "record": ref(c.record_class, description="Delete events carry the last state."),
        },
        "required": ["action", "record"],
    }


# ---------------------------------------------------------------------------------------------
# request bodies


def input_field(f: FieldIR, slot: SlotIR, *, form: bool = False) -> JsonSchema:
    """A body key, printed from ``slot`` (the IR's type for it, as the pydantic model has it).

    ``form``: the ``multipart/form-data`` spelling (uploads as binary parts, no ``null``).
    """
    schema = _upload(f) if form and f.type == "file" else json_schema(slot.type, null=not form)
    if f.type == "password":
        schema = {**schema, "writeOnly": True}
    return _described(schema, _input_note(f, form=form))


def create_schema(c: CollectionIR, *, form: bool = False) -> JsonSchema:
    props: JsonSchema = {}
    required: list[str] = []
    for f in c.create_fields:
        assert f.create is not None
        props[f.name] = input_field(f, f.create, form=form)
        if f.create.required or (form and f.type == "file" and f.required):
            required.append(f.name)
    how = "multipart/form-data (files as parts)" if form else "JSON"
    schema: JsonSchema = {
        "type": "object",
        "description": f"The {how} body of `POST {c.records_path}`. Unknown keys are ignored.",
        "properties": props,
    }
    if required:
        schema["required"] = required
    return schema


def update_schema(c: CollectionIR, *, form: bool = False) -> JsonSchema:
    """The PATCH body: the plain fields as ``properties``, the modifiers as ``patternProperties``.

    ``tags+``, ``+tags`` and ``tags-`` are keys of the same body on the wire, but client
    generators name a property by its letters alone (all three would be ``tags``), and refuse
    the schema. Each modifier is therefore a ``patternProperties`` entry matching exactly its
    key, which JSON Schema validators apply like a property and generators leave to their
    "additional properties" (``dict[str, Any]`` in Python, ``[key: string]: unknown`` in
    TypeScript); ``x-pb-modifier`` names its field and operation.
    """
    props: JsonSchema = {}
    for f in c.update_fields:
        assert f.update is not None
        props[f.name] = input_field(f, f.update, form=form)
    modifiers: JsonSchema = {}
    by_name = {f.name: f for f in c.fields}
    for m in c.modifiers:
        src = by_name[m.field]
        if form and src.type == "file" and src.multiple:
            key = f"{m.field}+"
            upload = _described(_upload(src), f"Uploads appended to `{m.field}`.")
            modifiers[key_pattern(key)] = {**upload, MODIFIER_KEY: _modifier_ext(key, src)}
        op = _modifier_op(m.key, src)
        modifiers[key_pattern(m.key)] = {
            **_described(json_schema(m.type, null=not form), _modifier_note(op, src)),
            MODIFIER_KEY: _modifier_ext(m.key, src),
        }
    how = "multipart/form-data (files as parts)" if form else "JSON"
    schema: JsonSchema = {
        "type": "object",
        "description": (
            f"The {how} body of `PATCH {c.records_path}/{{id}}`: every key optional; "
            "`field+`/`+field`/`field-` modify numbers, lists and files in place."
        ),
        "properties": props,
    }
    if modifiers:
        schema["description"] += (
            " The modifier keys are listed under `patternProperties` (one exact key each, "
            "`x-pb-modifier` tells field and operation)."
        )
        schema["patternProperties"] = modifiers
        # Unknown keys are allowed anyway (the default, said out loud): generators then type
        # the body as "fields plus any key" instead of making every field fit the modifiers.
        schema["additionalProperties"] = True
    return schema


#: Extension on each modifier of an Update schema: ``{"key", "field", "op"}``.
MODIFIER_KEY = "x-pb-modifier"


def key_pattern(key: str) -> str:
    """The ``patternProperties`` regex matching exactly ``key`` (field names are ``\\w+``)."""
    return "^" + key.replace("+", "\\+") + "$"


def body_keys(schema: JsonSchema) -> set[str]:
    """The keys a body schema names: its properties and its modifiers."""
    modifiers = schema.get("patternProperties", {}).values()
    return {*schema["properties"], *(m[MODIFIER_KEY]["key"] for m in modifiers)}


def _modifier_op(key: str, src: FieldIR) -> str:
    if key.startswith("+"):
        return "prepend"
    if src.type == "number":
        return "add" if key.endswith("+") else "subtract"
    return "append" if key.endswith("+") else "remove"


def _modifier_ext(key: str, src: FieldIR) -> JsonSchema:
    return {"key": key, "field": src.name, "op": _modifier_op(key, src)}


# ---------------------------------------------------------------------------------------------
# the JSON Schema printer of the type model


def json_schema(t: TypeIR, *, null: bool = True) -> JsonSchema:
    """``t`` as JSON Schema; ``null=False`` leaves ``null`` out (multipart form values)."""
    schema = _value(t)
    if t.or_item:
        assert t.item is not None
        schema = {"anyOf": [schema, json_schema(t.item)]}
    if t.blank:
        schema = _with_blank(schema)
    if t.nullable and null:
        schema = _nullable(schema)
    return schema


def _value(t: TypeIR) -> JsonSchema:
    """A present, non-blank value."""
    c = t.constraints
    schema: JsonSchema
    if t.kind == "str":
        schema = {"type": "string"}
        if c.min_length or t.non_zero:
            schema["minLength"] = c.min_length or 1
        if c.max_length is not None:
            schema["maxLength"] = c.max_length
        if c.pattern:
            schema["pattern"] = c.pattern
        return schema
    if t.kind in ("int", "float"):
        schema = {"type": "integer" if t.kind == "int" else "number"}
        if c.minimum is not None:
            schema["minimum"] = _num(c.minimum)
        if c.maximum is not None:
            schema["maximum"] = _num(c.maximum)
        if t.non_zero:
            schema["not"] = {"const": 0}
        return schema
    if t.kind == "bool":
        return {"type": "boolean", "const": True} if t.non_zero else {"type": "boolean"}
    if t.kind == "json":
        return {"not": {"enum": _JSON_BLANKS}} if t.non_zero else {}
    if t.kind == "email":
        return {"type": "string", "format": "email", "pattern": EMAIL_PATTERN, "maxLength": EMAIL_MAX}
    if t.kind == "date":
        return {"type": "string", "pattern": PB_DATE_PATTERN}
    if t.kind == "date_input":
        pattern = DATE_INPUT_PATTERN if t.non_zero else _or_blank(DATE_INPUT_PATTERN)
        return {"type": "string", "pattern": pattern}
    if t.kind == "geo_point":
        return ref("GeoPoint")
    if t.kind == "geo_point_input":
        if t.non_zero:
            return ref(
                "GeoPointInput",
                **{"not": {"properties": {"lon": {"const": 0}, "lat": {"const": 0}}}},
            )
        return ref("GeoPointInput")
    if t.kind == "file_names":
        names = {"type": "string"}
        return {"anyOf": [names, {"type": "array", "items": names}]}
    if t.kind == "literal":
        return {"type": "string", "enum": list(t.values)}
    if t.kind == "model":
        return ref(t.name)
    assert t.kind == "list" and t.item is not None
    schema = {"type": "array", "items": json_schema(t.item)}
    if c.min_length:
        schema["minItems"] = c.min_length
    if c.max_length:
        schema["maxItems"] = c.max_length
    return schema


def _upload(src: FieldIR) -> JsonSchema:
    binary: JsonSchema = {"type": "string", "format": "binary"}
    if src.multiple:
        return {"type": "array", "items": binary, "maxItems": src.max_select}
    return binary


def _with_blank(schema: JsonSchema) -> JsonSchema:
    if "enum" in schema:
        return {**schema, "enum": _unique((*schema["enum"], ""))}
    return {"anyOf": [schema, {"const": ""}]}


def _nullable(schema: JsonSchema) -> JsonSchema:
    if not schema:
        return schema  # any value, null included
    if "enum" in schema and set(schema) <= {"type", "enum"}:
        return {"type": [schema["type"], "null"], "enum": [*schema["enum"], None]}
    if isinstance(schema.get("type"), str) and not set(schema) & {
        "enum",
        "const",
        "not",
        "anyOf",
        "$ref",
    }:
        return {**schema, "type": [schema["type"], "null"]}
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def _or_blank(pattern: str) -> str:
    return "^$|" + pattern


def _unique(values: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(values))


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _described(schema: JsonSchema, note: str) -> JsonSchema:
    return {**schema, "description": note} if note else schema


def _record_note(f: FieldIR, c: CollectionIR) -> str:
    notes = [f.description] if f.description else []
    lo, hi = f.bounds
    if f.type == "relation":
        target = f"`{f.target}`" if f.target else "a collection the gateway does not expose"
        notes.append(f"Record id(s) in {target}; `?expand={f.name}` fills in the record(s).")
    elif f.type == "file":
        notes.append(f"Filename(s); download from `/api/files/{c.name}/{{id}}/{{filename}}`.")
    elif f.type in ("date", "autodate"):
        notes.append('UTC `YYYY-MM-DD HH:MM:SS.sssZ`, `""` when unset.')
    elif f.type == "json" and f.record is not None and f.record.type.kind == "model":
        notes.append(f"JSON matching `{f.record.type.name}` (hapta.yaml's json_schemas); `null` when unset.")
    elif f.type == "json":
        notes.append("Any JSON value; `null` when unset.")
    elif f.type == "number" and (lo is not None or hi is not None):
        low = "-∞" if lo is None else _num(lo)
        high = "∞" if hi is None else _num(hi)
        notes.append(f"Writes must be within [{low}, {high}] (0 means unset).")
    return " ".join(notes)


def _input_note(f: FieldIR, *, form: bool) -> str:
    notes = [f.description] if f.description else []
    if f.name == "passwordConfirm":
        notes.append("Must equal `password`.")
    elif f.name == "oldPassword":
        notes.append(
            "The current password; needed to change `password` unless the caller manages the record."
        )
    elif f.file is not None:
        notes.append(_file_note(f, form=form))
    elif f.type == "relation" and f.target:
        notes.append(f"Record id(s) in `{f.target}`.")
    elif f.type == "date":
        notes.append("PocketBase's `YYYY-MM-DD HH:MM:SS.sssZ` or ISO 8601.")
    return " ".join(notes)


def _file_note(f: FieldIR, *, form: bool) -> str:
    assert f.file is not None
    note = (
        ""
        if form
        else "JSON bodies may only keep or clear filenames; upload with multipart/form-data."
    )
    limits = []
    if f.file.max_size:
        limits.append(f"at most {f.file.max_size} bytes each")
    if f.file.mime_types:
        limits.append("types " + ", ".join(f.file.mime_types))
    if not limits:
        return note
    return (note + " " if note else "") + "Uploads: " + "; ".join(limits) + "."


def _modifier_note(op: str, src: FieldIR) -> str:
    if op == "remove":
        what = "Filenames" if src.type == "file" else "Values"
        return f"{what} to remove from `{src.name}`."
    verb = {"prepend": "Prepends to", "add": "Adds to", "subtract": "Subtracts from"}
    return f"{verb.get(op, 'Appends to')} `{src.name}`."


def obj(description: str, props: JsonSchema, required: tuple[str, ...] = ()) -> JsonSchema:
    schema: JsonSchema = {"type": "object", "properties": props}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = list(required)
    return schema
