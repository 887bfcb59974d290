"""IR → the gateway's OpenAPI 3.1 document: PocketBase's API surface for the exposed collections.

A pure function of the IR (no I/O); dict insertion order makes the text deterministic.
Collections' schemas are built in ``schemas``, their record operations in ``paths``, auth
endpoints in ``auth``, and what every gateway has (errors, health, batch, files, realtime) in
``shared``; this module puts the document together. The DO-NOT-EDIT header stands second (``x-generated``), so the writer finds
it in the file's first bytes.
"""

from __future__ import annotations

import json
from typing import Any

from ..emit.header import HEADER
from ..ir.jsonfields import openapi_components
from ..ir.model import CollectionIR, SchemaIR
from . import auth, paths, schemas, shared

MARKER_KEY = "x-generated"
SECURITY_SCHEMES = {
    "pbAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "A PocketBase auth token (from an `auth-with-*` call), sent as "
        "`Authorization: <token>`; a `Bearer ` prefix is optional. Requests without one are "
        "guests, and PocketBase's rules decide what they may do.",
    }
}

#: With ``sessions: rolling`` the credential is the gateway's session key, not PocketBase's token.
ROLLING_SECURITY_SCHEMES = {
    "pbAuth": {
        **SECURITY_SCHEMES["pbAuth"],
        "description": "The gateway's session key (the `token` of an `auth-with-*` or "
        "`auth-refresh` answer; PocketBase's own tokens are refused), sent as "
        "`Authorization: <key>`; a `Bearer ` prefix is optional. The key changes on every "
        "refresh: a replaced key works for a few seconds more, and presenting it later revokes "
        "the session. Requests without one are guests, and PocketBase's rules decide what they "
        "may do.",
    }
}


def openapi_document(ir: SchemaIR) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        MARKER_KEY: HEADER,
        "info": {
            "title": ir.title,
            "version": ir.version,
            "description": (
                "A gateway in front of PocketBase with PocketBase's own API: the same paths, "
                "query parameters, bodies and error envelope, so PocketBase's SDKs work "
                "unchanged. Bodies, queries and uploads are validated before PocketBase sees "
                "them; PocketBase's API rules still decide who may do what (each operation "
                "names its rule)."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": _tags(ir),
        "paths": _paths(ir),
        "components": {
            "schemas": _schemas(ir),
            "responses": paths.components_responses(),
            "parameters": paths.components_parameters(),
            "securitySchemes": ROLLING_SECURITY_SCHEMES
            if ir.sessions == "rolling"
            else SECURITY_SCHEMES,
        },
    }


def openapi_text(ir: SchemaIR) -> str:
    return json.dumps(openapi_document(ir), indent=2, ensure_ascii=False) + "\n"


def _tags(ir: SchemaIR) -> list[dict[str, str]]:
    tags = [{"name": c.name, "description": _collection_summary(c)} for c in ir.collections]
    names = shared.shared_tag_names(ir)
    tags += [{"name": names[key], "description": text} for key, text in shared.shared_tags(ir).items()]
    return tags


def _collection_summary(c: CollectionIR) -> str:
    kind = {"auth": "auth collection", "view": "view collection (read-only)"}.get(
        c.type, "collection"
    )
    rules = [("list", c.rules.list), ("view", c.rules.view)]
    if c.type != "view":
        rules += [
            ("create", c.rules.create),
            ("update", c.rules.update),
            ("delete", c.rules.delete),
        ]
    spelled = "; ".join(f"{op}: {paths.rule_words(rule)}" for op, rule in rules)
    return f"The `{c.name}` {kind}. Rules — {spelled}."


def _paths(ir: SchemaIR) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in ir.collections:
        out |= paths.record_paths(c)
        if c.type == "auth" and "auth" in c.operations:
            out |= auth.auth_paths(c)
    return out | shared.shared_paths(ir)


def _schemas(ir: SchemaIR) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def put(name: str, schema: dict[str, Any]) -> None:
        if name in out:  # the suffixes are chosen so that this cannot happen
            raise AssertionError(f"OpenAPI schema name {name!r} used twice")
        out[name] = schema

    for c in ir.collections:
        put(c.record_class, schemas.record_schema(c))
        put(c.expand_class, schemas.expand_schema(c))
        put(c.page_class, schemas.page_schema(c))
        if c.create_class is not None and c.update_class is not None:
            put(c.create_class, schemas.create_schema(c))
            put(c.update_class, schemas.update_schema(c))
            if schemas.has_form(c):
                put(schemas.create_form_name(c), schemas.create_schema(c, form=True))
                put(schemas.update_form_name(c), schemas.update_schema(c, form=True))
        if c.type == "auth":
            put(schemas.auth_response_name(c), schemas.auth_response_schema(c))
        if c.type != "view":
            put(schemas.event_name(c), schemas.event_schema(c))
    for jf in ir.json_fields:  # typed json fields: their JSON Schemas, $defs included
        for name, schema in openapi_components(jf).items():
            put(name, schema)
    extra = shared.shared_schemas(ir)
    if any(c.type == "auth" for c in ir.collections):
        extra |= auth.auth_schemas()
    for name, schema in extra.items():
        put(name, schema)
    return out
