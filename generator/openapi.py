"""IR → the gateway's OpenAPI 3.1 document (placeholder until the OpenAPI builder lands)."""

from __future__ import annotations

import json
from typing import Any

from .ir import SchemaIR

MARKER_KEY = "x-generated"


def openapi_document(ir: SchemaIR) -> dict[str, Any]:
    from .render import HEADER

    return {"openapi": "3.1.0", MARKER_KEY: HEADER, "info": {"title": ir.title, "version": ir.version}, "paths": {}}


def openapi_text(ir: SchemaIR) -> str:
    return json.dumps(openapi_document(ir), indent=2, ensure_ascii=False) + "\n"
