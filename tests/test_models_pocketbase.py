"""The generated models against records a real PocketBase returns (examples/postly).

Response models parse every record of every collection (zero values, empty dates, json null,
geo points, multi-file); the Create models reject what PocketBase rejects, naming the field.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from hapta_gen.dev.pbserver import PocketBaseServer

GENERATED = Path(__file__).resolve().parent.parent / "generated"


@pytest.fixture(scope="module")
def models() -> Iterator[ModuleType]:
    sys.path.insert(0, str(GENERATED))
    try:
        import gateway.models as models

        yield models
    finally:
        sys.path.remove(str(GENERATED))


def _page(models: ModuleType, collection: str) -> type[BaseModel]:
    import gateway.catalog as catalog

    spec = catalog.BY_NAME[collection]
    page: type[BaseModel] = getattr(models, spec.record.__name__.removesuffix("Record") + "Page")
    return page


def test_every_seeded_record_parses(models: ModuleType, pb: PocketBaseServer, pb_seeded: dict[str, Any]) -> None:
    import gateway.catalog as catalog

    for spec in catalog.COLLECTIONS:
        resp = pb.request("GET", f"/api/collections/{spec.name}/records", params={"perPage": 500})
        assert resp.status_code == 200, resp.text
        page = _page(models, spec.name).model_validate_json(resp.content)
        items: list[BaseModel] = page.items  # type: ignore[attr-defined]
        assert len(items) == resp.json()["totalItems"]
        if spec.name in pb_seeded:
            assert len(items) >= len(pb_seeded[spec.name])


def test_full_record_values_and_typed_expand(models: ModuleType, pb: PocketBaseServer, pb_seeded: dict[str, Any]) -> None:
    resp = pb.request(
        "GET", "/api/collections/posts/records/pst000000000001",
        params={"expand": "author,coauthors,comments_via_post"},
    )
    raw = resp.json()
    post = models.PostsRecord.model_validate(raw)
    assert post.tags == ["python", "4K", "1"]
    assert len(post.gallery) == 2 and post.cover.endswith(".png")
    assert post.location.lat == pytest.approx(52.52)
    # posts.meta is typed by examples/postly/schemas/post_meta.json (hapta.yaml's json_schemas)
    assert isinstance(post.meta, models.PostsMeta)
    assert (post.meta.lang, post.meta.wordCount, post.meta.featured) == ("en", 9, True)
    assert [s.root for s in post.meta.sources] == ["a", "b"]
    assert isinstance(post.publishAt, datetime) and post.publishAt.year == 2024
    assert isinstance(post.expand.author, models.UsersRecord)
    assert all(isinstance(u, models.UsersRecord) for u in post.expand.coauthors)
    assert all(isinstance(c, models.CommentsRecord) for c in post.expand.comments_via_post)
    assert "moderationNote" not in models.PostsRecord.model_fields  # hidden: not in the public model
    # Dates go back out in PocketBase's own format.
    dumped = post.model_dump(mode="json", by_alias=True)
    assert dumped["publishAt"] == raw["publishAt"] and dumped["created"] == raw["created"]


def test_zero_values(models: ModuleType, pb: PocketBaseServer, pb_seeded: dict[str, Any]) -> None:
    body = {"title": "Zero", "status": "draft", "author": "usr000000000002"}
    created = pb.request("POST", "/api/collections/posts/records", json=body)
    assert created.status_code == 200, created.text
    raw = created.json()
    assert raw["publishAt"] == "" and raw["meta"] is None and raw["location"] == {"lon": 0, "lat": 0}
    post = models.PostsRecord.model_validate(raw)
    assert post.publishAt is None and post.meta is None and post.gallery == [] and post.tags == []
    assert (post.location.lon, post.location.lat, post.views, post.published) == (0, 0, 0, False)
    assert post.model_dump(mode="json", by_alias=True)["publishAt"] == ""
    pb.request("DELETE", f"/api/collections/posts/records/{raw['id']}")


def test_auth_records_never_carry_secrets(models: ModuleType, pb: PocketBaseServer, pb_seeded: dict[str, Any]) -> None:
    assert "password" not in models.UsersRecord.model_fields
    assert "tokenKey" not in models.UsersRecord.model_fields
    raw = pb.request("GET", "/api/collections/users/records/usr000000000001").json()
    user = models.UsersRecord.model_validate(raw)
    assert user.email == "alice@postly.test" and user.verified is True


BAD_POSTS: list[tuple[dict[str, Any], set[str]]] = [
    ({"title": "ab", "status": "draft", "author": "usr000000000002"}, {"title"}),
    ({"title": "Fine", "status": "archived", "author": "usr000000000002"}, {"status"}),
    ({"title": "Fine", "status": "draft", "author": "usr000000000002", "tags": ["go", "1", "4K", "news"]}, {"tags"}),
    ({"title": "Fine", "status": "draft", "author": "usr000000000002", "rating": 9}, {"rating"}),
    ({"title": "Fine", "status": "draft", "author": "usr000000000002", "views": 1.5}, {"views"}),
    ({"title": "Fine", "status": "draft", "author": "usr000000000002", "contact": "not-an-email"}, {"contact"}),
    ({"title": "Fine", "status": "draft", "author": "usr000000000002", "location": {"lon": 0, "lat": 100}}, {"location"}),
    ({"title": "Fine", "status": "draft", "author": "usr000000000002", "slug": "No Spaces"}, {"slug"}),
    ({"title": "Fine", "status": "draft", "author": ""}, {"author"}),
    ({"status": "draft", "author": "usr000000000002"}, {"title"}),
]


@pytest.mark.parametrize(("body", "fields"), BAD_POSTS)
def test_create_model_rejects_what_pocketbase_rejects(
    models: ModuleType, pb: PocketBaseServer, pb_seeded: dict[str, Any], body: dict[str, Any], fields: set[str]
) -> None:
    with pytest.raises(ValidationError) as info:
        models.PostsCreate.model_validate(body)
    named = {str(err["loc"][0]) for err in info.value.errors()}
    assert named == fields
    with pb.client() as client:
        resp = client.post("/api/collections/posts/records", json=body)
    assert resp.status_code == 400
    assert set(resp.json()["data"]) == fields


def test_create_model_accepts_what_pocketbase_accepts(models: ModuleType, pb: PocketBaseServer, pb_seeded: dict[str, Any]) -> None:
    body = {
        "title": "Valid", "status": "review", "author": "usr000000000002", "tags": "go",
        "views": "5", "rating": 4.5, "publishAt": "2026-01-02T03:04:05Z", "contact": "",
        "slug": "", "location": {"lon": 2.5, "lat": 1.5}, "meta": {"lang": "fr", "tags": ["x"]}, "coauthors": "usr000000000001",
    }
    models.PostsCreate.model_validate(body)
    resp = pb.request("POST", "/api/collections/posts/records", json=body)
    assert resp.status_code == 200, resp.text
    pb.request("DELETE", f"/api/collections/posts/records/{resp.json()['id']}")
