"""Checks made before PocketBase is touched: query parameters and record bodies.

Query: ``page`` and ``perPage`` within PocketBase's bounds, ``sort`` and ``expand`` only on real
fields and relations of exposed collections, ``filter`` never naming a collection the gateway
does not expose; neither names a field ``hapta.yaml`` hides. Bodies: the generated
``Create``/``Update`` models (select values, text length and pattern, number bounds, relation
counts, required fields, ``field+``/``field-`` modifiers), and the typed json fields against
their JSON Schemas (``jsonchecks``: the schema decides there).
Failures are ``ApiError`` 400s in PocketBase's envelope with the offending field named.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ValidationError

from .catalog import BY_NAME, COLLECTIONS
from .errors import BAD_REQUEST, NOT_FOUND, ApiError, field_error, invalid
from .gorequest import json_field_value, payload, query_pairs, url_form_pairs
from .jsonchecks import TYPED, json_errors, typed_fields
from .routing import match
from .spec import CollectionSpec, FieldSpec

MAX_PER_PAGE = 1000
MAX_SORT_TERMS = 8  # PocketBase's limits
MAX_EXPAND_DEPTH = 6
MAX_FILTER_LENGTH = 3500
_SORT_SPECIAL = frozenset({"@random", "@rowid"})
_MODIFIERS = frozenset({"lower", "length", "each"})
_COLLECTION_REF = re.compile(r"@collection\.([A-Za-z0-9_]+)")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")  # Go's \w
_PATH = re.compile(r"[A-Za-z0-9_@#.:]+")
_ENCODED_SEPARATOR = re.compile(r"%(2[fFeE]|5[cC])")
#: Relation fields that lead out of the exposed collections: a path may not go through them.
_OUTWARD = frozenset(
    f.name for c in COLLECTIONS for f in c.fields if f.type == "relation" and f.target is None
)
#: Fields ``hapta.yaml`` hides (``collections: <name>: hidden``), in any exposed collection: a
#: filter naming one anywhere in its text (string literals too: the gateway does not parse the
#: expression as PocketBase does) is refused, so a hidden value cannot be probed.
_WITHHELD = frozenset(name for c in COLLECTIONS for name in c.hidden)
_FAILED = {
    "records.create": "Failed to create record.",
    "records.update": "Failed to update record.",
}


# ----------------------------------------------------------------------------- query


def check_query(route_name: str, spec: CollectionSpec | None, query_string: bytes) -> None:
    """Raise a 400 naming the parameter when the query cannot be right for this collection."""
    for key, value in query_pairs(query_string):  # as PocketBase's Go reads them

        if key == "page":
            _int_param(key, value, 1, None)
        elif key == "perPage":
            _int_param(key, value, 0, MAX_PER_PAGE)
        elif key == "sort" and spec is not None and route_name == "records.list":
            check_sort(spec, value)
        elif key == "expand" and spec is not None:
            check_expand(spec, value)
        elif key == "filter":
            check_filter(value)


def _int_param(key: str, value: str, low: int, high: int | None) -> None:
    if value == "":
        return
    try:
        number = int(value)
    except ValueError:
        raise invalid(
            BAD_REQUEST, key, "validation_not_an_integer", "Must be an integer."
        ) from None
    if number < low:
        raise invalid(
            BAD_REQUEST,
            key,
            "validation_min_number_constraint",
            f"Must be at least {low}.",
            min=low,
        )
    if high is not None and number > high:
        raise invalid(
            BAD_REQUEST,
            key,
            "validation_max_number_constraint",
            f"Must be at most {high}.",
            max=high,
        )


def check_sort(spec: CollectionSpec, value: str) -> None:
    terms = [t.strip() for t in value.split(",") if t.strip()]
    if len(terms) > MAX_SORT_TERMS:
        raise invalid(
            BAD_REQUEST,
            "sort",
            "validation_too_many_sort_terms",
            f"At most {MAX_SORT_TERMS} sort expressions are allowed.",
        )
    for term in terms:
        name = term[1:] if term[:1] in "+-" else term
        if name in _SORT_SPECIAL:
            continue
        problem = _field_path(spec, name)
        if problem:
            raise invalid(BAD_REQUEST, "sort", "validation_invalid_sort", problem, value=name)


def _field_path(spec: CollectionSpec, path: str) -> str:
    """ "" when ``path`` (``author.name``, ``meta.lang``, ``title:lower``) names real fields."""
    path, _, modifier = path.partition(":")
    if modifier and modifier not in _MODIFIERS:
        return f"Unknown modifier {modifier!r}."
    current: CollectionSpec | None = spec
    segments = path.split(".")
    for i, segment in enumerate(segments):
        assert current is not None
        last = i == len(segments) - 1
        field = current.field_by_name.get(segment)
        if segment in current.hidden:
            field = None  # withheld by hapta.yaml: as unknown as PocketBase makes its hidden ones
        if field is None:
            back = current.expand_by_key.get(segment)
            if back is None or not back.back:
                return f"Unknown field {segment!r} in {current.name!r}."
            if last:
                return f"{segment!r} is a back-relation; name one of its fields."
            current = BY_NAME.get(back.target)
            if current is None:
                return f"Unknown field {segment!r}."
            continue
        if last:
            return ""
        if field.type in ("json", "geoPoint"):
            return ""  # any path inside the value
        if field.type == "relation":
            current = BY_NAME.get(field.target or "")
            if current is None:
                return f"{segment!r} leads to a collection that is not exposed."
            continue
        return f"{segment!r} has no fields to sort by."
    return ""


def expanded(spec: CollectionSpec, value: str) -> list[CollectionSpec]:
    """Every collection an (already checked) ``expand`` value reaches."""
    out: list[CollectionSpec] = []
    for item in value.split(","):
        current: CollectionSpec | None = spec
        for segment in item.strip().split("."):
            found = current.expand_by_key.get(segment.strip()) if current else None
            current = BY_NAME.get(found.target) if found is not None else None
            if current is not None:
                out.append(current)
    return out


def check_expand(spec: CollectionSpec, value: str) -> None:
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        segments = item.split(".")
        if len(segments) > MAX_EXPAND_DEPTH:
            raise invalid(
                BAD_REQUEST,
                "expand",
                "validation_expand_too_deep",
                f"Expand at most {MAX_EXPAND_DEPTH} levels deep.",
                value=item,
            )
        current = spec
        for segment in segments:
            found = current.expand_by_key.get(segment.strip())
            target = BY_NAME.get(found.target) if found is not None else None
            if target is None:
                raise invalid(
                    BAD_REQUEST,
                    "expand",
                    "validation_invalid_expand",
                    f"{current.name!r} has no relation {segment!r} to expand.",
                    value=item,
                )
            current = target


def check_filter(value: str) -> None:
    if len(value) > MAX_FILTER_LENGTH:
        raise invalid(
            BAD_REQUEST,
            "filter",
            "validation_max_text_constraint",
            f"Must be less than {MAX_FILTER_LENGTH} character(s).",
        )
    for name in _collections_named(value):
        if name not in BY_NAME:
            raise invalid(
                BAD_REQUEST,
                "filter",
                "validation_invalid_collection",
                f"Unknown collection {name!r}.",
                value=name,
            )
    for path in _PATH.findall(value):
        for segment in path.split("."):
            name = segment.partition(":")[0]
            if name in _WITHHELD:
                raise invalid(
                    BAD_REQUEST,
                    "filter",
                    "validation_invalid_field",
                    f"Unknown field {name!r}.",
                    value=name,
                )
        through = [s.partition(":")[0] for s in path.split(".")[:-1]]
        for segment in through:
            if segment in _OUTWARD:
                raise invalid(
                    BAD_REQUEST,
                    "filter",
                    "validation_invalid_collection",
                    f"{segment!r} leads to a collection that is not exposed.",
                    value=segment,
                )


def _collections_named(value: str) -> list[str]:
    """Every collection a filter may name: ``@collection.<name>`` and the ``<name>`` of each
    back-relation ``<name>_via_<field>`` (PocketBase: ``^(\\w+)_via_(\\w+)$`` on a segment),
    read in the whole text, string literals included, so that no way of writing one is missed;
    every ``_via_`` of a segment counts."""
    names = _COLLECTION_REF.findall(value)
    for via in re.finditer("_via_", value):
        start = via.start()
        while start > 0 and value[start - 1] in _WORD:
            start -= 1
        names.append(value[start : via.start()])
    return names


# ----------------------------------------------------------------------------- bodies


def model_for(route_name: str, spec: CollectionSpec) -> type[BaseModel] | None:
    return spec.create if route_name == "records.create" else spec.update


def check_json_body(route_name: str, spec: CollectionSpec, raw: bytes) -> None:
    """Validate a JSON record body; the bytes forwarded to PocketBase stay the client's."""
    model = model_for(route_name, spec)
    if model is None:
        return  # views: PocketBase answers "Unsupported collection type."
    if not raw.strip():
        raw = b"{}"
    try:
        model.model_validate_json(raw)
    except ValidationError as exc:
        if _is_json_error(exc):
            raise ApiError(400, BAD_REQUEST) from None
        # PocketBase also takes a list for a single select/relation/file (the last item wins):
        # only on this slow path is the body decoded and tried again in that reading.
        data = orjson.loads(raw)
        single = _singles(spec, data)
        if single is not data:
            check_data(route_name, spec, single)
        elif spec.name in TYPED:
            check_typed(route_name, spec, data, exc)
        else:
            raise body_error(route_name, exc) from None
        return
    if spec.name in TYPED:
        check_typed(route_name, spec, orjson.loads(raw), None)


def check_data(route_name: str, spec: CollectionSpec, data: dict[str, Any]) -> None:
    """Validate an already-decoded body (multipart fields, ``@jsonPayload``, batch items)."""
    model = model_for(route_name, spec)
    if model is None:
        return
    try:
        model.model_validate(_singles(spec, data))
    except ValidationError as exc:
        if spec.name not in TYPED:
            raise body_error(route_name, exc) from None
        check_typed(route_name, spec, data, exc)
        return
    if spec.name in TYPED:
        check_typed(route_name, spec, data, None)


def check_typed(
    route_name: str, spec: CollectionSpec, data: Any, exc: ValidationError | None
) -> None:
    """A body of a collection with typed json fields: those against their JSON Schemas, the
    other fields by the model (``exc``: its errors, if any); one 400 naming them all."""
    errors = json_errors(spec, data, create=route_name == "records.create")
    if exc is not None:
        typed = typed_fields(spec.name)
        rest = [e for e in exc.errors() if not e["loc"] or str(e["loc"][0]) not in typed]
        errors = {**_field_errors(rest), **errors}
    if errors:
        raise ApiError(400, _FAILED.get(route_name, "Failed to process the request."), errors)


_LISTABLE = ("select", "relation", "file")


def _singles(spec: CollectionSpec, data: Any) -> Any:
    """``data`` with lists given to single select/relation/file fields read as PocketBase reads
    them (the last item; ``[]`` clears); ``data`` itself when there is nothing to change."""
    if not isinstance(data, dict):
        return data
    changed: dict[str, Any] | None = None
    for key, value in data.items():
        if not isinstance(value, list):
            continue
        field = spec.field_by_name.get(key)
        if field is None or field.multiple or field.type not in _LISTABLE:
            continue
        if changed is None:
            changed = dict(data)
        changed[key] = value[-1] if value else ""
    return data if changed is None else changed


def form_data(spec: CollectionSpec, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields (``Request.Form``: multipart / urlencoded, with the URL's query) → the dict
    the JSON body would have been, as PocketBase builds it: the plain fields first, then the
    ``@jsonPayload`` object merged over them (two payloads: a 400).

    Repeated keys make lists; json and geoPoint values are JSON text; an empty number or bool
    means "not given", as PocketBase reads it.
    """
    plain: dict[str, list[str]] = {}
    for key, value in pairs:
        if key != "@jsonPayload":
            plain.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for key, values in plain.items():
        if key.startswith("@"):
            out[key] = values[0] if len(values) == 1 else values
            continue
        field = spec.field_by_name.get(key.strip("+-"))
        value = _form_value(field, key, values)
        if value is not _SKIP:
            out[key] = value
    found = payload(pairs, fold=False)
    if found is not None:
        out.update(found)
    return out


_SKIP = object()


def _form_value(field: FieldSpec | None, key: str, values: list[str]) -> Any:
    if field is None:
        return values[0] if len(values) == 1 else values
    if field.type in ("json", "geoPoint"):
        text = values[-1]
        if text == "":
            return _SKIP if field.type == "geoPoint" else None
        if field.type == "json":
            return json_field_value(text)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"invalid": text}
    if field.type in ("number", "bool") and values[-1] == "":
        return _SKIP
    # select/relation/file modifiers (`tags+`, `gallery-`) take lists even on single fields
    multiple = field.multiple or (
        key != field.name and field.type in ("select", "relation", "file")
    )
    if multiple:
        return values
    return values[-1] if len(values) == 1 else values


def _is_json_error(exc: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in exc.errors()) or any(
        e["type"] == "model_type" and not e["loc"] for e in exc.errors()
    )


#: pydantic error type → (PocketBase code, message template)
_CODES: dict[str, tuple[str, str]] = {
    "missing": ("validation_required", "Cannot be blank."),
    "string_too_short": (
        "validation_min_text_constraint",
        "Must be at least {min_length} character(s).",
    ),
    "string_too_long": (
        "validation_max_text_constraint",
        "Must be less than {max_length} character(s).",
    ),
    "string_pattern_mismatch": ("validation_invalid_format", "Invalid value format."),
    "too_short": ("validation_not_enough_values", "Select at least {min_length}."),
    "too_long": ("validation_too_many_values", "Select no more than {max_length}."),
    "greater_than_equal": ("validation_min_number_constraint", "Must be larger than {ge}."),
    "less_than_equal": ("validation_max_number_constraint", "Must be less than {le}."),
    "int_from_float": ("validation_only_int_constraint", "Decimal numbers are not allowed."),
    "int_parsing": ("validation_invalid_number", "Must be a valid number."),
    "float_parsing": ("validation_invalid_number", "Must be a valid number."),
    "bool_parsing": ("validation_invalid_bool", "Must be a valid boolean."),
    "literal_error": ("validation_invalid_value", "Invalid value {input}."),
}
_TYPE_ERRORS = frozenset(
    {
        "none_required",
        "string_type",
        "int_type",
        "float_type",
        "bool_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "is_instance_of",
        "literal_error",
        "json_type",
        "union_tag_invalid",
    }
)


def body_error(route_name: str, exc: ValidationError) -> ApiError:
    """PocketBase's 400 for a record body: one ``{code, message}`` per field, best match first."""
    data = _field_errors(exc.errors())
    return ApiError(400, _FAILED.get(route_name, "Failed to process the request."), data)


def _field_errors(errors: Any) -> dict[str, Any]:
    """The model's errors as PocketBase's ``data``: the most telling one per field."""
    best: dict[str, tuple[int, dict[str, Any]]] = {}
    for err in errors:
        loc = err["loc"]
        if not loc:
            continue
        field = str(loc[0])
        rank = _rank(err)
        if field in best and best[field][0] <= rank:
            continue
        best[field] = (rank, _entry(err))
    return {field: entry for field, (_, entry) in best.items()}


def _rank(err: Any) -> int:
    """Lower is more telling: a value error inside the union member that fits beats a mismatch."""
    kind = err["type"]
    if kind == "literal_error" and isinstance(err.get("input"), str):
        return 0 if len(err["loc"]) > 2 else 1
    return 3 if kind in _TYPE_ERRORS else 0


def _entry(err: Any) -> dict[str, Any]:
    kind = err["type"]
    ctx = dict(err.get("ctx") or {})
    if kind == "value_error":
        message = str(ctx.get("error") or err["msg"])
        code = (
            "validation_required" if message == "Cannot be blank." else "validation_invalid_value"
        )
        return field_error(code, message)
    if kind in _CODES:
        code, template = _CODES[kind]
        try:
            message = template.format(input=err.get("input"), **ctx)
        except (KeyError, IndexError):
            message = err["msg"]
        params = {k: v for k, v in ctx.items() if isinstance(v, int | float | str)} or None
        if kind == "literal_error":
            params = {"value": err.get("input")}
        return field_error(code, message, params)
    return field_error("validation_invalid_value", str(err["msg"]).rstrip(".") + ".")


def required_files(route_name: str, spec: CollectionSpec, present: Any) -> None:
    """A create must bring every required file field (as an upload or a kept name)."""
    if route_name != "records.create":
        return
    keys = set(present)
    for name, file_field in spec.file_fields.items():
        if (
            file_field.required
            and name not in keys
            and f"{name}+" not in keys
            and f"+{name}" not in keys
        ):
            raise ApiError(
                400,
                _FAILED[route_name],
                {name: field_error("validation_required", "Cannot be blank.")},
            )


def check_batch_requests(requests: list[Any]) -> list[tuple[str, str]]:
    """Every item: a record write (POST/PUT/PATCH/DELETE) to an exposed collection, valid body.
    The items' operations, as (route name, collection name): an upsert counts as a create."""
    operations: list[tuple[str, str]] = []
    for index, item in enumerate(requests):
        try:
            if not isinstance(item, dict):
                raise ApiError(400, BAD_REQUEST)
            method = str(item.get("method", "")).upper()
            raw_url = str(item.get("url", ""))
            url = urlsplit(raw_url)
            # PocketBase matches the raw URL (``^/api/collections/<name>/records...``, no
            # decoding, no fragment): anything this split could read otherwise is refused
            if (
                not raw_url.startswith("/api/")
                or "#" in raw_url
                or _ENCODED_SEPARATOR.search(url.path)
            ):
                raise ApiError(404, NOT_FOUND)
            upsert = method == "PUT"
            route = match("POST" if upsert else method, url.path)
            if (
                route.name not in ("records.create", "records.update", "records.delete")
                or route.collection is None
            ):
                raise ApiError(400, "Invalid batch request.")
            operations.append((route.name, route.collection.name))
            if url.query:
                check_query(route.name, route.collection, url.query.encode())
            body = item.get("body")
            if route.name != "records.delete" and (body is None or isinstance(body, dict)):
                # PocketBase runs the item as a multipart request: the URL's query parameters
                # are form fields too, with the body (its ``@jsonPayload``) over them
                data = form_data(route.collection, url_form_pairs(url.query.encode()))
                data.update(body or {})
                check_data("records.update" if upsert else route.name, route.collection, data)
        except ApiError as exc:
            response = {"data": exc.data, "message": exc.message, "status": exc.status}
            failure = field_error("batch_request_failed", "Batch request failed.")
            failure["response"] = response
            raise ApiError(
                400, "Batch transaction failed.", {"requests": {str(index): failure}}
            ) from None
    return operations
