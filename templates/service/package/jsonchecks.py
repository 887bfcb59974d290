"""The typed json fields' check (``hapta.yaml``'s ``json_schemas``): each value in a record body
against its JSON Schema (``jsonschemas``), compiled once with ``jsonschema_rs`` (formats checked,
no ``$ref`` fetched), before PocketBase is touched.

The schema decides, not the generated models: ``validation`` leaves the models' own verdict on a
typed field aside and reports these errors instead, nested under the field the way PocketBase
nests its errors (``data.meta.tags.0``: ``{code, message, params}``). ``null`` (or no key)
clears the field and is not checked against the schema; ``required`` is PocketBase's: null,
``""``, ``0``, ``false``, ``[]`` and ``{}`` are blank.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from .errors import field_error
from .gorequest import json_field_value
from .jsonschemas import SCHEMAS
from .spec import CollectionSpec

_VALIDATORS: dict[str, dict[str, jsonschema_rs.Validator]] = {}
for (_collection, _field), _schema in SCHEMAS.items():
    _VALIDATORS.setdefault(_collection, {})[_field] = jsonschema_rs.validator_for(
        _schema, validate_formats=True, offline=True
    )
#: Collections with a typed json field (their bodies are decoded for this check).
TYPED: frozenset[str] = frozenset(_VALIDATORS)
CODE = "validation_json_schema"


def typed_fields(collection: str) -> frozenset[str]:
    """The names of ``collection``'s typed json fields."""
    return frozenset(_VALIDATORS.get(collection, ()))


def json_errors(spec: CollectionSpec, data: Any, *, create: bool) -> dict[str, Any]:
    """``data``'s typed json fields against their schemas: PocketBase's ``data`` of the 400,
    ``{}`` when every value fits."""
    validators = _VALIDATORS.get(spec.name)
    if not validators or not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for name, validator in validators.items():
        value = json_field_value(data.get(name))  # what PocketBase will store
        field = spec.field_by_name.get(name)
        if _blank(value) and field is not None and field.required and (create or name in data):
            out[name] = field_error("validation_required", "Cannot be blank.")
            continue
        if value is None or validator.is_valid(value):
            continue
        tree: dict[str, Any] = {}
        for error in validator.iter_errors(value):
            _put(tree, [str(p) for p in error.instance_path], error)
        if tree:
            out[name] = tree.get("", tree)
    return out


def _blank(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", [], {})


def _put(tree: dict[str, Any], path: list[str], error: jsonschema_rs.ValidationError) -> None:
    """``error`` at ``path`` in ``tree`` (the value itself at ``""``), the first one kept where
    two land on the same place."""
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        path = [*path, str(kind.property)]
        entry = field_error("validation_required", "Cannot be blank.")
    else:
        entry = field_error(CODE, _sentence(error.message), {"keyword": kind.name})
    if not path:
        tree.setdefault("", entry)
        return
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if "code" in child:
            return  # an error on the enclosing value already
        node = child
    node.setdefault(path[-1], entry)


def _sentence(message: str) -> str:
    message = message.strip()
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
