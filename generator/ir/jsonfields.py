"""Typed json fields: ``hapta.yaml``'s ``json_schemas`` (``<collection>.<field>`` → a JSON Schema
file), read and checked once, for the models (``emit/jsonmodels.py``), ``openapi.json`` and the
gateway's run-time check (``templates/service/package/jsonchecks.py``).

Every fault is one ``ConfigError`` line naming the key: a file that is missing or not JSON, a
document that is not a valid JSON Schema (checked against its draft's meta-schema by
``jsonschema_rs``, the validator the gateway runs), and, in ``check_fields``, a key that names no
collection, no field, or a field that is not of type ``json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

from ..errors import ConfigError
from ..schema.model import PBSchema
from .config import Config

#: What an openapi.json component name may hold (``^[a-zA-Z0-9._-]+$``); the rest becomes ``_``.
_COMPONENT_CHARS = re.compile(r"[^A-Za-z0-9._-]")
#: Keys of a schema document that describe the file, not the value (left out of openapi.json).
DOCUMENT_KEYS = ("$schema", "$id")


@dataclass(frozen=True)
class JsonSchemaDoc:
    """One ``json_schemas`` entry, read: the key, the path as written, the parsed schema."""

    collection: str
    field: str
    source: str
    schema: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.collection}.{self.field}"


@dataclass(frozen=True)
class JsonFieldIR:
    """A typed json field in the IR: where its models go and the schema the gateway checks."""

    collection: str
    field: str
    #: The module under ``<package>/models/json_fields/`` that holds its models.
    module: str
    #: The root model's class (``PostsMeta``), also the openapi.json component's name.
    class_name: str
    source: str
    schema: Mapping[str, Any]


def load_json_schemas(config: Config) -> tuple[JsonSchemaDoc, ...]:
    """Read and check every file ``json_schemas`` names (relative to the hapta.yaml)."""
    docs = []
    for key, source in config.json_schemas.items():
        collection, _, field = key.partition(".")
        path = config.base_dir / source
        docs.append(JsonSchemaDoc(collection, field, source, _read(key, source, path)))
    return tuple(docs)


def _read(key: str, source: str, path: Path) -> Mapping[str, Any]:
    where = f"json_schemas: {key}: {source}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file (paths are relative to hapta.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read ({exc})") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(schema, dict):
        raise ConfigError(f"{where} is not a JSON Schema: expected an object at the top level")
    problem = schema_problem(schema)
    if problem:
        raise ConfigError(f"{where} is not a valid JSON Schema: {problem}")
    return schema


def schema_problem(schema: Mapping[str, Any]) -> str:
    """"" when ``schema`` is a JSON Schema the gateway can check with; else what is wrong."""
    try:
        jsonschema_rs.meta.validate(dict(schema))
    except jsonschema_rs.ValidationError as exc:
        at = "/".join(str(p) for p in exc.instance_path)
        return f"{exc.message} (at /{at})" if at else exc.message
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        return str(exc).splitlines()[0]
    try:
        jsonschema_rs.validator_for(dict(schema), validate_formats=True, offline=True)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        return str(exc).splitlines()[0]
    return ""


def check_fields(docs: tuple[JsonSchemaDoc, ...], schema: PBSchema, exposed: set[str]) -> None:
    """Every key names a json field of an exposed collection."""
    for doc in docs:
        where = f"json_schemas: {doc.key}"
        col = next((c for c in schema.collections if c.name == doc.collection), None)
        if col is None:
            raise ConfigError(f"{where}: the schema has no collection {doc.collection!r}")
        if col.name not in exposed:
            raise ConfigError(f"{where}: collection {col.name!r} is not exposed by the gateway")
        field = col.field(doc.field)
        if field is None:
            raise ConfigError(f"{where}: collection {col.name!r} has no field {doc.field!r}")
        if field.type != "json":
            raise ConfigError(f"{where}: field {doc.field!r} is a {field.type} field, not json")


def openapi_components(jf: JsonFieldIR) -> dict[str, dict[str, Any]]:
    """The schema as openapi.json components: the root under ``class_name``, each of its
    ``$defs``/``definitions`` as ``<class_name>.<name>``, local ``$ref``s rewritten to match."""
    schema = dict(jf.schema)
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        defs.update({f"{key}/{name}": value for name, value in (schema.pop(key, None) or {}).items()})
    for key in DOCUMENT_KEYS:
        schema.pop(key, None)

    def name_of(pointer: str) -> str:
        return _COMPONENT_CHARS.sub("_", f"{jf.class_name}.{pointer.split('/', 1)[1]}")

    def target(ref: str) -> str:
        """A local ``$ref`` (``#/$defs/a/properties/b``) as a pointer into openapi.json."""
        parts = [p for p in ref[1:].split("/") if p]
        if len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in defs:
            base, rest = name_of(f"{parts[0]}/{parts[1]}"), parts[2:]
        else:
            base, rest = jf.class_name, parts
        return "#/components/schemas/" + base + "".join("/" + p for p in rest)

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: rewrite(v) for k, v in value.items()}
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                out["$ref"] = target(ref)
            return out
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    components = {jf.class_name: rewrite(schema)}
    components |= {name_of(pointer): rewrite(value) for pointer, value in defs.items()}
    return components
