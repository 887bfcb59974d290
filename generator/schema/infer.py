"""``hapta-gen schema infer-json``: a JSON Schema proposed from the values a json field holds in
a live PocketBase (the latest records, sampled with the pull's superuser credentials), as a
starting point for ``hapta.yaml``'s ``json_schemas`` (``genson`` merges the values' shapes).

The token and password are never printed; errors are one ``PullError`` line, as for ``pull``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from genson import SchemaBuilder  # type: ignore[import-untyped]

from ..errors import PullError
from .pull import _authenticate, _check_health, _json, _message, _send, display_url, normalize_url

DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: PocketBase's largest page.
_MAX_PER_PAGE = 1000


def sample_values(
    url: str,
    email: str,
    password: str,
    collection: str,
    field: str,
    *,
    sample: int = 200,
    timeout: float = 10.0,
    progress: Callable[[str], None] | None = None,
) -> list[Any]:
    """The non-null values of ``collection.field`` in up to ``sample`` of the newest records."""
    base = normalize_url(url)
    shown = display_url(base)
    say = progress or (lambda _line: None)
    values: list[Any] = []
    with httpx.Client(base_url=base, timeout=timeout, follow_redirects=False) as client:
        _check_health(client, shown)
        token = _authenticate(client, shown, email, password)
        say(f"authenticated as superuser {email}")
        page = 1
        seen = 0
        while seen < sample:
            per_page = min(sample - seen, _MAX_PER_PAGE)
            resp = _send(
                client, shown, "GET", f"/api/collections/{quote(collection, safe='')}/records",
                params={"page": page, "perPage": per_page, "sort": "-@rowid", "fields": field,
                        "skipTotal": "1"},
                headers={"Authorization": token},
            )
            body = _json(resp)
            if resp.status_code == 404:
                raise PullError(f"PocketBase at {shown} has no collection {collection!r}")
            if resp.status_code != 200 or not isinstance(body, dict):
                raise PullError(
                    f"listing {collection} records at {shown} failed: HTTP {resp.status_code} "
                    f"{_message(resp)}"
                )
            items = body.get("items")
            if not isinstance(items, list):
                raise PullError(f"{shown} answered a records list without items")
            seen += len(items)
            values.extend(
                item[field] for item in items if isinstance(item, dict) and item.get(field) is not None
            )
            if len(items) < per_page:
                break
            page += 1
    say(f"read {seen} {collection} records, {len(values)} with a {field} value")
    return values


def infer_schema(values: list[Any], *, title: str = "") -> dict[str, Any]:
    """A JSON Schema every one of ``values`` matches (types, properties, required keys)."""
    builder = SchemaBuilder(schema_uri=DRAFT)
    for value in values:
        builder.add_object(value)
    schema: dict[str, Any] = builder.to_schema()
    if title:
        schema = {"$schema": schema.pop("$schema", DRAFT), "title": title, **schema}
    return schema
