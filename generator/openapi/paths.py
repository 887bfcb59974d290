"""The operations of a collection in the gateway's OpenAPI document: PocketBase's record and
auth endpoints, each with its rule spelled out in its description; and the building blocks
(error responses, shared parameters, ``operation``) that ``shared`` uses too.

operationIds are ``<verb><ClassPrefix>`` (``listPosts``, ``authWithPasswordUsers``); the verbs
are chosen so that no verb is a prefix of another, which keeps every id unique.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ir.model import CollectionIR
from .schemas import (
    JsonSchema,
    body_keys,
    create_form_name,
    create_schema,
    has_form,
    ref,
    update_form_name,
    update_schema,
)

Operation = dict[str, Any]

RESPONSES = "#/components/responses/"
PARAMETERS = "#/components/parameters/"
OPTIONAL_AUTH: list[dict[str, list[str]]] = [{}, {"pbAuth": []}]
REQUIRED_AUTH: list[dict[str, list[str]]] = [{"pbAuth": []}]

#: status → (component name, description) of the error responses; all carry ``Error``.
ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "Invalid input; per-field errors in `data`."),
    "401": ("Unauthorized", "A valid auth token is required."),
    "403": ("Forbidden", "The caller is not allowed to do this."),
    "404": ("NotFound", "Not found, or hidden from the caller by the rule."),
    "429": ("TooManyRequests", "Rate limited: retry after `Retry-After` seconds."),
    "502": ("BadGateway", "PocketBase could not be reached."),
    "504": ("GatewayTimeout", "PocketBase did not answer in time."),
}
UPSTREAM = ("429", "502", "504")


def rule_words(rule: str | None) -> str:
    if rule is None:
        return "superusers only"
    return "public" if rule == "" else f"`{rule}`"


# ---------------------------------------------------------------------------------------------
# components


def components_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (name, description) in ERRORS.items():
        response: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        if status == "429":
            response["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        out[name] = response
    return out


def components_parameters() -> dict[str, Any]:
    def query(name: str, schema: JsonSchema, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }

    return {
        "page": query(
            "page", {"type": "integer", "minimum": 1, "default": 1}, "Page number, from 1."
        ),
        "perPage": query(
            "perPage",
            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 30},
            "Records per page.",
        ),
        "sort": query(
            "sort",
            {"type": "string"},
            "Comma-separated fields, `-` for descending (`-created,title`); "
            "`@random`, `@rowid`; at most 8.",
        ),
        "filter": query(
            "filter",
            {"type": "string", "maxLength": 3500},
            "PocketBase filter expression, e.g. `status = 'published' && views > 10`.",
        ),
        "fields": query(
            "fields",
            {"type": "string"},
            "Comma-separated keys to return (`id,title`, `*`, `expand.author.name`, `body:excerpt(200,true)`).",
        ),
        "skipTotal": query(
            "skipTotal",
            {"type": "boolean", "default": False},
            "Skip counting: faster; `totalItems` and `totalPages` are -1.",
        ),
        "recordId": {
            "name": "id",
            "in": "path",
            "required": True,
            "description": "The record id.",
            "schema": {"type": "string", "minLength": 1},
        },
    }


def param(name: str) -> dict[str, str]:
    return {"$ref": PARAMETERS + name}


def _error(status: str, description: str = "") -> dict[str, str]:
    out = {"$ref": RESPONSES + ERRORS[status][0]}
    if description:
        out["description"] = description
    return out


def error_responses(*statuses: str, **described: str) -> dict[str, Any]:
    """Error responses by status; ``e403="..."`` overrides one description."""
    codes = sorted({*statuses, *(k[1:] for k in described)})
    return {s: _error(s, described.get("e" + s, "")) for s in codes}


def json_response(schema: JsonSchema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NO_CONTENT = {"description": "Done (no content)."}


def operation(
    op_id: str,
    tag: str,
    summary: str,
    description: str,
    responses: dict[str, Any],
    *,
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[Any] | None = None,
    body: dict[str, Any] | None = None,
    rule: tuple[str, str | None] | None = None,
) -> Operation:
    op: Operation = {
        "tags": [tag],
        "summary": summary,
        "description": description,
        "operationId": op_id,
    }
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
        if "400" not in responses and any(_shapes_answer(p) for p in parameters):
            # PocketBase refuses a malformed `fields`, the gateway an unknown `expand`
            responses = {**responses, "400": _error("400", "A malformed `fields` or an unknown `expand`.")}
    if body is not None:
        op["requestBody"] = body
    op["responses"] = dict(sorted(responses.items()))
    if rule is not None:
        op["x-pb-rule"] = {"name": rule[0], "value": rule[1]}
    return op


def _shapes_answer(parameter: dict[str, Any]) -> bool:
    """Is this the ``fields`` or ``expand`` query parameter?"""
    return parameter.get("$ref") == PARAMETERS + "fields" or (
        parameter.get("in") == "query" and parameter.get("name") == "expand"
    )


# ---------------------------------------------------------------------------------------------
# records


def expand_param(c: CollectionIR) -> dict[str, Any]:
    keys = ", ".join(f"`{e.key}`" for e in c.expands)
    what = f"Relations: {keys}." if keys else f"`{c.name}` has no relations to expand."
    return {
        "name": "expand",
        "in": "query",
        "required": False,
        "description": "Relations to fill in under `expand`, comma-separated, dot for nesting "
        f"(depth 6). {what}",
        "schema": {"type": "string"},
    }


def _rule_text(kind: str, rule: str | None) -> str:
    text = f"Rule (`{kind}Rule`): {rule_words(rule)}."
    if rule is None:
        return text + " Everyone else gets 403."
    if rule == "":
        return text
    return (
        text
        + {
            "list": " Applied as a filter: records the caller may not see are left out, without an error.",
            "view": " Records the caller may not see answer 404.",
            "create": " Callers who fail it get 400 with empty `data`.",
            "update": " Records the caller may not change answer 404.",
            "delete": " Records the caller may not delete answer 404.",
        }[kind]
    )


def record_paths(c: CollectionIR) -> dict[str, Any]:
    p, name, rules = c.class_prefix, c.name, c.rules
    record = ref(c.record_class)
    guest = " Invalid or expired tokens count as a guest, not as an error."
    read_params = [expand_param(c), param("fields")]
    collection: dict[str, Any] = {
        "get": operation(
            f"list{p}",
            name,
            f"List records of {name}",
            _rule_text("list", rules.list) + guest,
            {
                "200": json_response(ref(c.page_class), "A page of records."),
                **error_responses("400", "403", *UPSTREAM),
            },
            security=OPTIONAL_AUTH,
            parameters=[
                param("page"),
                param("perPage"),
                param("sort"),
                param("filter"),
                expand_param(c),
                param("fields"),
                param("skipTotal"),
            ],
            rule=("listRule", rules.list),
        ),
    }
    one: dict[str, Any] = {
        "get": operation(
            f"view{p}",
            name,
            f"View a record of {name}",
            _rule_text("view", rules.view) + guest,
            {
                "200": json_response(record, "The record."),
                **error_responses("400", "403", "404", *UPSTREAM),
            },
            security=OPTIONAL_AUTH,
            parameters=[param("recordId"), *read_params],
            rule=("viewRule", rules.view),
        ),
    }
    if c.create_class is None or c.update_class is None:
        return _exposed(c, collection, one)
    manage = ""
    if c.type == "auth":
        manage = (
            f" Callers matching `manageRule` ({rule_words(rules.manage)}) may also set "
            "`email`, `verified` and passwords of other records."
        )
    collection["post"] = operation(
        f"create{p}",
        name,
        f"Create a record in {name}",
        _rule_text("create", rules.create) + manage,
        {
            "200": json_response(record, "The created record."),
            **error_responses("400", "403", *UPSTREAM),
        },
        security=OPTIONAL_AUTH,
        parameters=read_params,
        body=_body(c, c.create_class, create_form_name(c), create_schema),
        rule=("createRule", rules.create),
    )
    one["patch"] = operation(
        f"update{p}",
        name,
        f"Update a record of {name}",
        _rule_text("update", rules.update) + manage,
        {
            "200": json_response(record, "The updated record."),
            **error_responses("400", "403", "404", *UPSTREAM),
        },
        security=OPTIONAL_AUTH,
        parameters=[param("recordId"), *read_params],
        body=_body(c, c.update_class, update_form_name(c), update_schema),
        rule=("updateRule", rules.update),
    )
    one["delete"] = operation(
        f"delete{p}",
        name,
        f"Delete a record of {name}",
        _rule_text("delete", rules.delete),
        {
            "204": NO_CONTENT,
            **error_responses(
                "403", "404", *UPSTREAM, e400="Still referenced by a required relation."
            ),
        },
        security=OPTIONAL_AUTH,
        parameters=[param("recordId")],
        rule=("deleteRule", rules.delete),
    )
    return _exposed(c, collection, one)


#: The operation (``hapta.yaml``'s ``collections: <name>: operations``) of each method, on the
#: records path and on a record's path.
_OPERATIONS = ({"get": "list", "post": "create"}, {"get": "view", "patch": "update", "delete": "delete"})


def _exposed(c: CollectionIR, collection: dict[str, Any], one: dict[str, Any]) -> dict[str, Any]:
    """The two paths with only the operations the gateway serves for ``c`` (the others: 405)."""
    out = {}
    for path, methods, ops in zip(
        (c.records_path, c.records_path + "/{id}"), (collection, one), _OPERATIONS, strict=True
    ):
        kept = {m: v for m, v in methods.items() if ops[m] in c.operations}
        if kept:
            out[path] = kept
    return out


def _body(
    c: CollectionIR, json_schema: str, form_schema: str, build: Callable[..., JsonSchema]
) -> dict[str, Any]:
    """JSON, plus multipart/form-data (uploads typed by ``mimeTypes``) when ``c`` has files."""
    content: dict[str, Any] = {"application/json": {"schema": ref(json_schema)}}
    if has_form(c):
        form: dict[str, Any] = {"schema": ref(form_schema)}
        keys = body_keys(build(c, form=True))
        encoding = {
            key: {"contentType": ", ".join(f.file.mime_types)}
            for f in c.fields
            if f.file is not None and f.file.mime_types
            for key in (f.name, f"{f.name}+")
            if key in keys
        }
        if encoding:
            form["encoding"] = encoding
        content["multipart/form-data"] = form
    return {"required": True, "content": content}
