"""``layers/shape.strip``: hapta.yaml's hidden fields leave a record, its expands (however
deep, by the schema's relation or the record's own ``collectionName``) and batch results."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from gateway.catalog import BY_NAME
from gateway.layers import shape


@pytest.fixture
def hiding(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, hidden in (("posts", ("contact",)), ("users", ("bio",))):
        spec = replace(BY_NAME[name], hidden=hidden)
        monkeypatch.setitem(BY_NAME, name, spec)
        monkeypatch.setitem(BY_NAME, spec.id, spec)
    monkeypatch.setattr(shape, "COLLECTIONS", tuple(BY_NAME[c.name] for c in shape.COLLECTIONS))


def _post() -> dict[str, Any]:
    return {
        "id": "p1",
        "collectionName": "posts",
        "contact": "a@b.c",
        "title": "t",
        "expand": {"author": {"id": "u1", "bio": "x", "name": "n"}},
    }


def test_strip_drops_hidden_fields_at_every_depth(hiding: None) -> None:
    comment: dict[str, Any] = {"id": "c1", "text": "hi", "expand": {"post": _post()}}
    shape.strip(BY_NAME["comments"], comment)
    post = comment["expand"]["post"]
    assert "contact" not in post and post["title"] == "t"
    assert post["expand"]["author"] == {"id": "u1", "name": "n"}  # by the schema's relation
    assert comment["text"] == "hi"


def test_an_expanded_list_and_a_record_of_unknown_collection_are_stripped(hiding: None) -> None:
    user: dict[str, Any] = {"id": "u1", "bio": "x", "expand": {"posts_via_author": [_post(), _post()]}}
    shape.strip(BY_NAME["users"], user)
    assert "bio" not in user and all("contact" not in p for p in user["expand"]["posts_via_author"])
    odd: dict[str, Any] = {"id": "c1", "expand": {"mystery": {"contact": 1, "bio": 2, "keep": 3}}}
    shape.strip(BY_NAME["comments"], odd)
    assert odd["expand"]["mystery"] == {"keep": 3}  # unknown: every hidden name goes


def test_batch_results_are_stripped_by_their_request_url(hiding: None) -> None:
    raw = b'{"requests": [{"method": "POST", "url": "/api/collections/posts/records"}]}'
    body = {k: v for k, v in _post().items() if k != "collectionName"}
    results = shape._batch([{"status": 200, "body": body}], raw)
    assert "contact" not in results[0]["body"]
