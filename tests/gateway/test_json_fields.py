"""Typed json fields (hapta.yaml's json_schemas): postly's ``posts.meta`` is held to
examples/postly/schemas/post_meta.json before PocketBase is touched, in JSON and multipart
bodies, with the error nested under the path of the offending value; a valid value reaches
PocketBase, and the generated Record model parses it into the generated ``PostsMeta``."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import GatewayProcess, auth

POSTS = "/api/collections/posts/records"
POST_1 = f"{POSTS}/pst000000000001"
GOOD_POST = {"title": "Typed meta", "status": "draft", "author": "usr000000000002"}
GENERATED = Path(__file__).resolve().parents[2] / "generated"


@pytest.fixture
def untouched(gateway: GatewayProcess) -> Iterator[None]:
    before = gateway.upstream_calls()
    yield
    assert gateway.upstream_calls() == before, "PocketBase was called"


def _at(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node: Any = body["data"]
    for part in path:
        assert isinstance(node, dict) and part in node, (path, body)
        node = node[part]
    assert set(node) >= {"code", "message"}, body
    return dict(node)


BAD_META = [
    ({"tags": ["ok", 5]}, ("meta", "tags", "1"), "validation_json_schema"),
    ({"tags": ["ok", ""]}, ("meta", "tags", "1"), "validation_json_schema"),
    ({"lang": "English"}, ("meta", "lang"), "validation_json_schema"),
    ({"wordCount": -3}, ("meta", "wordCount"), "validation_json_schema"),
    ({"tags": ["a", "a"]}, ("meta", "tags"), "validation_json_schema"),
    ({"featured": "yes"}, ("meta", "featured"), "validation_json_schema"),
    ('{"tags": ["ok", 5]}', ("meta", "tags", "1"), "validation_json_schema"),  # JSON text: read as PocketBase stores it
    ("just text", ("meta",), "validation_json_schema"),
    ([1, 2], ("meta",), "validation_json_schema"),
]


@pytest.mark.parametrize(("meta", "path", "code"), BAD_META, ids=[".".join(p) + f"-{i}" for i, (_, p, _) in enumerate(BAD_META)])
def test_meta_violating_its_schema_is_a_400_naming_the_path(
    gw: httpx.Client, tokens: dict[str, str], untouched: None,
    meta: Any, path: tuple[str, ...], code: str,
) -> None:
    resp = gw.post(POSTS, json=GOOD_POST | {"meta": meta}, headers=auth(tokens["bob"]))
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert set(body) == {"data", "message", "status"} and body["message"] == "Failed to create record."
    assert _at(body, *path)["code"] == code


def test_schema_errors_come_with_the_other_fields_errors(gw: httpx.Client, tokens: dict[str, str],
                                                        untouched: None) -> None:
    resp = gw.post(POSTS, json=GOOD_POST | {"status": "bogus", "meta": {"tags": [1]}},
                   headers=auth(tokens["bob"]))
    assert resp.status_code == 400
    body = resp.json()
    assert _at(body, "status")["code"] == "validation_invalid_value"
    assert _at(body, "meta", "tags", "0")["params"] == {"keyword": "type"}


def test_update_and_multipart_bodies_are_checked_too(gw: httpx.Client, tokens: dict[str, str],
                                                    untouched: None) -> None:
    bob = auth(tokens["bob"])
    resp = gw.patch(POST_1, json={"meta": {"wordCount": "many"}}, headers=bob)
    assert resp.status_code == 400 and resp.json()["message"] == "Failed to update record."
    _at(resp.json(), "meta", "wordCount")
    form = GOOD_POST | {"meta": json.dumps({"tags": ["x" * 40]})}
    resp = gw.post(POSTS, data=form, files={"x": ("x.txt", b"unused")}, headers=bob)
    assert resp.status_code == 400, resp.text
    _at(resp.json(), "meta", "tags", "0")
    payload = {"@jsonPayload": json.dumps(GOOD_POST | {"meta": {"lang": 7}})}
    resp = gw.post(POSTS, data=payload, files={"x": ("x.txt", b"unused")}, headers=bob)
    _at(resp.json(), "meta", "lang")
    batch = {"requests": [{"method": "POST", "url": POSTS, "body": GOOD_POST | {"meta": {"featured": 1}}}]}
    resp = gw.post("/api/batch", json=batch, headers=bob)
    assert resp.status_code == 400, resp.text
    inner = resp.json()["data"]["requests"]["0"]["response"]
    assert inner["data"]["meta"]["featured"]["code"] == "validation_json_schema"


def test_valid_meta_is_created_and_parses_typed(gw: httpx.Client, tokens: dict[str, str],
                                               gateway: GatewayProcess) -> None:
    meta = {"lang": "pt-BR", "tags": ["news", "go"], "wordCount": 120, "featured": False,
            "sources": ["https://example.org"], "kept": {"any": ["json"]}}
    before = gateway.upstream_calls()
    resp = gw.post(POSTS, json=GOOD_POST | {"meta": meta}, headers=auth(tokens["bob"]))
    assert resp.status_code == 200, resp.text
    assert gateway.upstream_calls() > before
    created = resp.json()
    try:
        assert created["meta"] == meta  # forwarded as sent: unknown keys kept
        sys.path.insert(0, str(GENERATED))
        try:
            models = importlib.import_module("gateway.models")
        finally:
            sys.path.remove(str(GENERATED))
        record = models.PostsRecord.model_validate(created)
        assert isinstance(record.meta, models.PostsMeta)
        assert record.meta.lang == "pt-BR" and record.meta.wordCount == 120
        assert [t.root for t in record.meta.tags] == ["news", "go"]
        # a string of JSON text is stored as that value by PocketBase, so it is checked as one
        as_text = gw.patch(f"{POSTS}/{created['id']}", json={"meta": '{"lang": "en"}'}, headers=auth(tokens["bob"]))
        assert as_text.status_code == 200, as_text.text
        assert as_text.json()["meta"] == {"lang": "en"}
        cleared = gw.patch(f"{POSTS}/{created['id']}", json={"meta": None}, headers=auth(tokens["bob"]))
        assert cleared.status_code == 200 and cleared.json()["meta"] is None  # null clears, unchecked
        assert models.PostsRecord.model_validate(cleared.json()).meta is None
    finally:
        assert gw.delete(f"{POSTS}/{created['id']}", headers=auth(tokens["bob"])).status_code == 204
