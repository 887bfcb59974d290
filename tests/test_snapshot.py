"""snapshot: deterministic output, secrets removed, and the result still imports into PocketBase."""

from __future__ import annotations

import copy
import json
from typing import Any

from conftest import import_schema, load_postly_schema

from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.schema.pull import pull_collections
from hapta_gen.schema.snapshot import REDACTED, snapshot_collections, snapshot_text


def _collection(name: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"pbc_{name}",
        "name": name,
        "type": "base",
        "system": False,
        "created": "2026-01-01 00:00:00.000Z",
        "updated": "2026-01-02 00:00:00.000Z",
        "listRule": None,
        "fields": [
            {"name": "id", "type": "text", "id": "text3208210256", "system": True},
            {"name": "zeta", "type": "text", "id": "text1"},
            {"name": "alpha", "type": "number", "id": "number2"},
            {"name": "created", "type": "autodate", "id": "autodate2990389176"},
        ],
    }
    base.update(extra)
    return base


def test_sorted_by_name_and_field_order_kept() -> None:
    raw = [_collection("posts"), _collection("authors"), _collection("_mfas", system=True)]
    result = snapshot_collections(raw)
    assert [c["name"] for c in result] == ["authors", "posts"]
    assert [f["name"] for f in result[1]["fields"]] == ["id", "zeta", "alpha", "created"]


def test_volatile_keys_dropped_only_at_collection_level() -> None:
    [result] = snapshot_collections([_collection("posts")])
    assert "created" not in result and "updated" not in result
    assert "created" in [f["name"] for f in result["fields"]]


def test_system_collections_kept_on_request() -> None:
    raw = [_collection("posts"), _collection("_superusers", system=True)]
    assert [c["name"] for c in snapshot_collections(raw, include_system=True)] == [
        "_superusers",
        "posts",
    ]


def test_text_is_deterministic_whatever_the_input_order() -> None:
    one = [_collection("b"), _collection("a", listRule="")]
    two = [
        {k: v for k, v in reversed(list(c.items()))}  # same content, other key order
        for c in reversed(copy.deepcopy(one))
    ]
    text = snapshot_text(one)
    assert text == snapshot_text(two)
    assert text.endswith("]\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_non_ascii_kept_as_utf8() -> None:
    text = snapshot_text([_collection("posts", listRule='title = "café"')])
    assert "café" in text


def test_input_not_modified() -> None:
    raw = [_collection("users", type="auth", authToken={"duration": 10, "secret": "s" * 30})]
    before = copy.deepcopy(raw)
    snapshot_collections(raw)
    assert raw == before


def test_secrets_removed_everywhere() -> None:
    raw = [
        _collection(
            "users",
            type="auth",
            authToken={"duration": 10, "secret": "token-signing-secret-xxxxxxxxxxxxxx"},
            fileToken={"duration": 10, "secret": "file-secret-xxxxxxxxxxxxxxxxxxxxxxx"},
            smtp={"host": "smtp.example.com", "password": "smtp-password", "apiKey": "k-123"},
            oauth2={
                "enabled": True,
                "mappedFields": {"name": "name"},
                "providers": [
                    {
                        "name": "oidc",
                        "clientId": "tenant-client-id",
                        "clientSecret": "tenant-client-secret",
                        "authURL": "https://login.tenant.example/auth",
                        "tokenURL": "https://login.tenant.example/token",
                        "userInfoURL": "https://login.tenant.example/me",
                        "displayName": "Tenant SSO",
                        "pkce": True,
                        "extra": {"teamId": "TEAM42"},
                    }
                ],
            },
        )
    ]
    text = snapshot_text(raw)
    for secret in (
        "token-signing-secret", "file-secret", "smtp-password", "k-123", "tenant-client-id",
        "tenant-client-secret", "login.tenant.example", "Tenant SSO", "TEAM42",
    ):
        assert secret not in text, secret
    [users] = json.loads(text)
    assert users["authToken"] == {"duration": 10}
    assert users["smtp"] == {"host": "smtp.example.com"}
    [provider] = users["oauth2"]["providers"]
    assert provider["name"] == "oidc" and provider["pkce"] is True
    assert provider["clientId"] == REDACTED and provider["clientSecret"] == REDACTED
    assert users["oauth2"]["enabled"] is True


def test_snapshot_is_idempotent(postly_schema: list[dict[str, Any]]) -> None:
    once = snapshot_collections(postly_schema)
    assert snapshot_collections(once) == once
    assert snapshot_text(once) == snapshot_text(postly_schema)


def test_view_clone_ids_made_stable() -> None:
    view = _collection(
        "stats",
        type="view",
        viewQuery="SELECT p.id, p.title FROM posts p",
        fields=[
            {"name": "id", "type": "text", "id": "text3208210256"},
            {"name": "title", "type": "text", "id": "_clone_Ab3d"},
        ],
    )
    other = copy.deepcopy(view)
    other["fields"][1]["id"] = "_clone_Zz99"
    assert snapshot_text([view]) == snapshot_text([other])
    [result] = snapshot_collections([view])
    assert result["fields"][1]["id"] == "text724990059"  # PocketBase's <type><crc32(name)>
    assert result["fields"][0]["id"] == "text3208210256"


def test_oauth2_redacted_snapshot_imports_cleanly(fresh_pb: PocketBaseServer) -> None:
    """Enable OAuth2 with a fake Google and OIDC app, pull, and re-import the snapshot."""
    import_schema(fresh_pb, [c for c in load_postly_schema() if c["name"] == "users"])
    fresh_pb.request(
        "PATCH",
        "/api/collections/users",
        json={
            "oauth2": {
                "enabled": True,
                "providers": [
                    {"name": "google", "clientId": "fake-id-4711.apps.example",
                     "clientSecret": "fake-secret-0815"},
                    {"name": "oidc", "clientId": "oidc-client-1234", "clientSecret": "oidc-secret-99",
                     "authURL": "https://sso.acme.example/auth",
                     "tokenURL": "https://sso.acme.example/token",
                     "userInfoURL": "https://sso.acme.example/userinfo",
                     "displayName": "Acme SSO"},
                ],
            }
        },
    )
    raw = pull_collections(fresh_pb.url, fresh_pb.email, fresh_pb.password)
    assert "fake-id-4711" in json.dumps(raw)  # the server really has the provider configured
    text = snapshot_text(raw)
    for leaked in ("fake-id-4711", "fake-secret-0815", "oidc-client-1234", "oidc-secret-99",
                   "sso.acme.example", "Acme SSO"):
        assert leaked not in text, leaked
    providers = {p["name"] for c in json.loads(text) for p in c.get("oauth2", {}).get("providers", [])}
    assert providers == {"google", "oidc"}

    with PocketBaseServer() as other:
        import_schema(other, json.loads(text))
        again = snapshot_text(pull_collections(other.url, other.email, other.password))
    assert again == text
