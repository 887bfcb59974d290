"""Turn raw collections into the committed ``pb_schema.json``: deterministic and free of secrets.

The snapshot stays in PocketBase's own collections-import format (a bare JSON array, as the
Dashboard exports it), so the same file can seed a test PocketBase with
``PUT /api/collections/import``. Pure functions, no I/O.

What changes between the raw collections and the snapshot:

* system collections (``_superusers``, ``_mfas``, ...) are dropped unless asked for;
* collections are sorted by name, keys are sorted, field order is kept (it is meaningful);
* the collection-level ``created`` / ``updated`` timestamps are dropped;
* secrets are removed: every ``secret`` key (token signing keys), every credential-looking key,
  and each OAuth2 provider's client data (id, URLs, extra, display name), which is replaced
  by a placeholder that PocketBase still accepts on import;
* view fields cloned from another collection carry random ``_clone_xxxx`` ids that PocketBase
  regenerates on every save; they get PocketBase's deterministic ``<type><crc32(name)>`` id.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

#: Collection-level keys that change without the schema changing.
VOLATILE_KEYS = frozenset({"created", "updated"})
#: Keys whose values are credentials wherever they appear; they are removed.
SECRET_KEYS = frozenset(
    {
        "secret", "clientSecret", "password", "passwordConfirm", "apiKey", "accessKey",
        "secretKey", "privateKey", "token",
    }
)
#: What an OAuth2 provider's client id and secret become. PocketBase requires both to be
#: non-empty when importing a provider it does not know yet.
REDACTED = "REDACTED"
_CLONE_PREFIX = "_clone_"


def snapshot_collections(
    collections: Iterable[Mapping[str, Any]], *, include_system: bool = False
) -> list[dict[str, Any]]:
    """Raw collections → the snapshot's collections (new dicts; the input is not modified)."""
    out: list[dict[str, Any]] = []
    for raw in collections:
        if raw.get("system") is True and not include_system:
            continue
        collection = {k: v for k, v in raw.items() if k not in VOLATILE_KEYS}
        collection = _strip_secrets(copy.deepcopy(collection))
        oauth2 = collection.get("oauth2")
        if isinstance(oauth2, dict) and isinstance(oauth2.get("providers"), list):
            oauth2["providers"] = [_redact_provider(p) for p in oauth2["providers"]]
        if collection.get("type") == "view" and isinstance(collection.get("fields"), list):
            collection["fields"] = [_stable_view_field_id(f) for f in collection["fields"]]
        out.append(collection)
    out.sort(key=lambda c: (str(c.get("name", "")), str(c.get("id", ""))))
    return out


def snapshot_text(
    collections: Iterable[Mapping[str, Any]], *, include_system: bool = False
) -> str:
    """The ``pb_schema.json`` text: sorted keys, two-space indent, UTF-8, trailing newline."""
    snapshot = snapshot_collections(collections, include_system=include_system)
    return json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def count_fields(collections: Iterable[Mapping[str, Any]]) -> int:
    """Total number of fields over ``collections`` (for summary lines)."""
    return sum(len(c.get("fields") or []) for c in collections)


def _strip_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_secrets(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [_strip_secrets(v) for v in value]
    return value


def _redact_provider(provider: Any) -> Any:
    """Keep which provider it is and how it is used; drop everything naming the OAuth app."""
    if not isinstance(provider, dict):
        return provider
    return {
        "name": provider.get("name", ""),
        "pkce": provider.get("pkce"),
        "clientId": REDACTED,
        "clientSecret": REDACTED,
        "authURL": "",
        "tokenURL": "",
        "userInfoURL": "",
        "displayName": "",
        "extra": {},
    }


def _stable_view_field_id(field: Any) -> Any:
    if not isinstance(field, dict):
        return field
    field_id = field.get("id")
    if isinstance(field_id, str) and field_id.startswith(_CLONE_PREFIX):
        name = str(field.get("name", ""))
        field = {**field, "id": f"{field.get('type', '')}{zlib.crc32(name.encode())}"}
    return field
