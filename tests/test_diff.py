"""diff: one readable line per change; ids, key order, defaults and legacy format are not changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hapta_gen.schema.diff import diff_collections
from hapta_gen.schema.loader import normalize
from hapta_gen.schema.snapshot import snapshot_collections

Schema = list[dict[str, Any]]


def _find(schema: Schema, collection: str, field: str | None = None) -> dict[str, Any]:
    col = next(c for c in schema if c["name"] == collection)
    if field is None:
        return col
    found: dict[str, Any] = next(f for f in col["fields"] if f["name"] == field)
    return found


@pytest.fixture
def old(postly_schema: Schema) -> Schema:
    return copy.deepcopy(postly_schema)


@pytest.fixture
def new(postly_schema: Schema) -> Schema:
    return copy.deepcopy(postly_schema)


def test_identical_schemas_have_no_diff(old: Schema, new: Schema) -> None:
    assert diff_collections(old, new) == []
    assert diff_collections(old, list(reversed(new))) == []


def test_rule_change(old: Schema, new: Schema) -> None:
    _find(new, "posts")["listRule"] = "author = @request.auth.id"
    _find(new, "audit_log")["viewRule"] = ""
    assert diff_collections(old, new) == [
        'audit_log: viewRule null -> ""',
        'posts: listRule "" -> "author = @request.auth.id"',
    ]


def test_field_option_change(old: Schema, new: Schema) -> None:
    _find(new, "posts", "title")["max"] = 300
    _find(new, "posts", "tags")["values"] = ["news", "4K"]
    assert diff_collections(old, new) == [
        "posts.title: max 200 -> 300",
        'posts.tags: values ["news", "python", "go", "4K", "1", "c++", "how-to"] -> ["news", "4K"]',
    ]


def test_field_added_removed_and_type_changed(old: Schema, new: Schema) -> None:
    posts = _find(new, "posts")
    posts["fields"] = [f for f in posts["fields"] if f["name"] != "website"]
    posts["fields"].append({"name": "pinned", "type": "bool", "id": "bool1"})
    _find(new, "posts", "body")["type"] = "text"
    assert diff_collections(old, new) == [
        "posts.website: field removed (url)",
        "posts.body: type editor -> text",
        "posts.pinned: field added (bool)",
    ]


def test_field_ids_are_ignored(old: Schema, new: Schema) -> None:
    for field in _find(new, "posts")["fields"]:
        field["id"] = field["id"] + "x"
    _find(new, "comments")["id"] = "pbc_renamed_id"
    assert diff_collections(old, new) == []


def test_rename_detected_by_field_id(old: Schema, new: Schema) -> None:
    _find(new, "comments", "text")["name"] = "content"
    assert diff_collections(old, new) == ["comments.text: renamed to content"]


def test_field_order_change_reported_once(old: Schema, new: Schema) -> None:
    fields = _find(new, "likes")["fields"]
    fields[1], fields[2] = fields[2], fields[1]
    assert diff_collections(old, new) == [
        "likes: field order id, post, user, created -> id, user, post, created"
    ]


def test_collection_added_removed_and_type(old: Schema, new: Schema) -> None:
    new = [c for c in new if c["name"] != "follows"]
    new.append({"name": "bookmarks", "type": "base", "fields": [{"name": "id", "type": "text"}]})
    _find(new, "audit_log")["type"] = "view"
    assert diff_collections(old, new) == [
        "audit_log: type base -> view",
        "bookmarks: collection added (base, 1 fields)",
        "follows: collection removed",
    ]


def test_relation_target_compared_by_name(old: Schema, new: Schema) -> None:
    _find(new, "comments", "post")["collectionId"] = _find(new, "users")["id"]
    assert diff_collections(old, new) == ['comments.post: collectionId "posts" -> "users"']


def test_index_and_nested_option_changes(old: Schema, new: Schema) -> None:
    _find(new, "likes")["indexes"] = ["CREATE INDEX `idx_likes_post` ON `likes` (`post`)"]
    _find(new, "users")["passwordAuth"]["identityFields"] = ["email", "name"]
    assert diff_collections(old, new) == [
        "likes: index removed: CREATE UNIQUE INDEX `idx_likes_post_user` ON `likes` (`post`, `user`)",
        "likes: index added: CREATE INDEX `idx_likes_post` ON `likes` (`post`)",
        'users: passwordAuth.identityFields ["email"] -> ["email", "name"]',
    ]


def test_absent_or_null_options_equal_pocketbase_defaults(old: Schema, new: Schema) -> None:
    title = _find(new, "posts", "title")
    for key in ("help", "hidden", "pattern", "autogeneratePattern", "primaryKey"):
        del title[key]
    _find(new, "comments", "post")["minSelect"] = None
    assert diff_collections(old, new) == []
    _find(new, "posts", "title")["hidden"] = True
    assert diff_collections(old, new) == ["posts.title: hidden false -> true"]


def test_output_is_deterministic(old: Schema, new: Schema) -> None:
    _find(new, "posts", "title")["max"] = 1
    _find(new, "comments", "text")["max"] = 2
    _find(new, "users")["listRule"] = None
    first = diff_collections(old, new)
    assert first == diff_collections(list(reversed(old)), list(reversed(new)))
    assert first == [
        "comments.text: max 2000 -> 2",
        'posts.title: max 200 -> 1',
        'users: listRule "" -> null',
    ]


# Legacy (< 0.23) export of postly's `comments`: `schema` with nested `options`, implicit
# id/created/updated, `null` for "no limit".
LEGACY_COMMENTS: dict[str, Any] = {
    "id": "pbc_comments_01",
    "name": "comments",
    "type": "base",
    "system": False,
    "created": "2023-01-01 00:00:00.000Z",
    "updated": "2023-01-01 00:00:00.000Z",
    "schema": [
        {"id": "r1", "name": "post", "type": "relation", "system": False, "required": True,
         "presentable": False, "unique": False,
         "options": {"collectionId": "pbc_posts_0001", "cascadeDelete": True, "minSelect": None,
                     "maxSelect": 1, "displayFields": None}},
        {"id": "r2", "name": "author", "type": "relation", "system": False, "required": True,
         "presentable": False, "unique": False,
         "options": {"collectionId": "_pb_users_auth_", "cascadeDelete": False, "minSelect": None,
                     "maxSelect": 1, "displayFields": None}},
        {"id": "t1", "name": "text", "type": "text", "system": False, "required": True,
         "presentable": True, "unique": False, "options": {"min": 1, "max": 2000, "pattern": ""}},
    ],
    "indexes": ["CREATE INDEX `idx_comments_post` ON `comments` (`post`)"],
    "listRule": "",
    "viewRule": "",
    "createRule": '@request.auth.id != "" && author = @request.auth.id',
    "updateRule": "author = @request.auth.id",
    "deleteRule": "author = @request.auth.id",
    "options": {},
}


def _snap(data: object) -> Schema:
    return snapshot_collections(normalize(data))


def test_legacy_and_current_exports_of_the_same_schema_match(postly_schema: Schema) -> None:
    current = [c for c in postly_schema if c["name"] == "comments"]
    assert diff_collections(_snap([LEGACY_COMMENTS]), _snap(current)) == []
    assert diff_collections(_snap({"collections": current}), _snap({"items": current})) == []


def test_legacy_option_change_is_reported(postly_schema: Schema) -> None:
    current = [c for c in postly_schema if c["name"] == "comments"]
    legacy = copy.deepcopy(LEGACY_COMMENTS)
    legacy["schema"][2]["options"]["max"] = 500
    legacy["schema"][1]["options"]["cascadeDelete"] = True
    assert diff_collections(_snap([legacy]), _snap(current)) == [
        "comments.author: cascadeDelete true -> false",
        "comments.text: max 500 -> 2000",
    ]
