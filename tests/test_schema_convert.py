"""``hapta-gen schema convert``: every real-world export, converted, imported into a real
PocketBase and pulled back, keeps what the loader read from it.

One PocketBase serves every file: after each one, importing the collections it started with
(``deleteMissing``) puts it back to a fresh state, which the test checks.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import CliRun
from typer.testing import CliRunner

from hapta_gen.cli.schema import schema_app
from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.errors import SchemaError
from hapta_gen.schema.convert import USERS_ID, convert
from hapta_gen.schema.loader import load_file, normalize, parse
from hapta_gen.schema.model import PBCollection, PBField, PBSchema
from hapta_gen.schema.pb_defaults import SYSTEM_COLLECTIONS
from hapta_gen.schema.pull import pull_collections
from hapta_gen.schema.snapshot import snapshot_text

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas"
FILES = sorted(p.name for p in SCHEMAS.glob("*.json"))

#: The files PocketBase cannot take as they are: the one error line ``convert`` prints, and what
#: ``--force`` drops so that the rest imports. Each is a fault of the file, not of the converter.
CANNOT_CONVERT: dict[str, tuple[str, str]] = {
    # messages.deleteRule is `... || @request.auth.id = channel.creator.id`, and `channels` has no
    # field `creator` (INDEX.md: "rule references non-existent field"); PocketBase rejects the
    # whole import with "failed to resolve field". Dropped, the rule is superusers-only.
    "0aoq__chattee.json": (
        "error: collection 'messages': `deleteRule` names 'channel.creator', but there is no "
        "field 'creator' of collection 'channels'",
        "dropped deleteRule of messages (now superusers only)",
    ),
    # users has a json field `avatar`; every PocketBase's users collection has a file field
    # `avatar`, an import keeps the fields it does not name, and PocketBase refuses to change a
    # field's type ("Field type cannot be changed"; with a new id: "duplicate column name").
    "guid3d__splt.json": (
        "error: collection 'users', field 'avatar': every PocketBase's users collection has a "
        "file field 'avatar' and an import cannot change a field's type (rename the json field)",
        "dropped field users.avatar (json)",
    ),
}
#: What ``--force`` drops from each file in CANNOT_CONVERT: (collection, field or rule key).
DROPPED: dict[str, set[tuple[str, str]]] = {
    "0aoq__chattee.json": {("messages", "deleteRule")},
    "guid3d__splt.json": {("users", "avatar")},
}

Invoke = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(schema_app, list(args))

    return invoke


@pytest.fixture(scope="module")
def convert_pb() -> Iterator[tuple[PocketBaseServer, list[dict[str, Any]]]]:
    """One PocketBase for every file, and the collections it starts with."""
    with PocketBaseServer() as server:
        yield server, server.list_collections()


def test_corpus_is_present() -> None:
    assert len(FILES) >= 20
    assert set(CANNOT_CONVERT) <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_convert_import_pull_keeps_every_field(
    name: str, convert_pb: tuple[PocketBaseServer, list[dict[str, Any]]], cli: Invoke, tmp_path: Path
) -> None:
    pb, fresh = convert_pb
    source = SCHEMAS / name
    args = ["convert", str(source), "--out", "converted.json"]
    if name in CANNOT_CONVERT:
        error, dropped = CANNOT_CONVERT[name]
        refused = cli(*args)
        assert refused.exit_code == 2
        assert refused.stderr.splitlines() == [f"reading {source}", error]
        assert not (tmp_path / "converted.json").exists()
        args.append("--force")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "converted.json").read_text("utf-8")
    converted = json.loads(text)
    assert result.stdout.startswith(f"wrote converted.json: {len(converted)} collections, ")
    if name in CANNOT_CONVERT:
        assert [line.split(":")[0] for line in result.stderr.splitlines()[1:]] == [dropped]

    try:
        pb.import_collections(copy.deepcopy(converted))
        pulled = pull_collections(pb.url, pb.email, pb.password)
        names = {c["name"] for c in converted}
        # What `schema pull` writes after the import, for the file's collections: the same bytes.
        assert snapshot_text([c for c in pulled if c["name"] in names]) == text
        _assert_nothing_lost(load_file(source), parse(normalize(pulled)), DROPPED.get(name, set()))
    finally:
        pb.import_collections(copy.deepcopy(fresh), delete_missing=True)
        assert snapshot_text(pb.list_collections(), include_system=True) == snapshot_text(
            fresh, include_system=True
        )


def _assert_nothing_lost(read: PBSchema, pulled: PBSchema, dropped: set[tuple[str, str]]) -> None:
    """Every collection, field, option, rule and index the loader read is in PocketBase."""
    for col in read.collections:
        if col.name in SYSTEM_COLLECTIONS:
            continue  # every PocketBase has its own
        got = pulled.by_id_or_name(col.name)
        assert got is not None and got.name == col.name, col.name
        assert got.type == col.type and got.view_query == col.view_query
        assert got.auth == col.auth, col.name
        rules = {k: v for k, v in dataclasses.asdict(col.rules).items() if (col.name, f"{k}Rule") not in dropped}
        assert {k: v for k, v in dataclasses.asdict(got.rules).items() if k in rules} == rules, col.name
        # Index names may follow the collection's new id; what they index may not change.
        assert {_unnamed(i) for i in col.indexes} <= {_unnamed(i) for i in got.indexes}, col.name
        for f in col.fields:
            if (col.name, f.name) in dropped:
                continue
            have = got.field(f.name)
            assert have is not None, f"{col.name}.{f.name} lost"
            if col.type == "view":
                continue  # PocketBase types a view's fields from its query
            assert _comparable(have, pulled) == _comparable(f, read), f"{col.name}.{f.name}"


def _unnamed(index: str) -> str:
    return " ".join(re.sub(r"INDEX\s+\S+\s+ON", "INDEX ON", index, flags=re.IGNORECASE).split())


def _comparable(f: PBField, schema: PBSchema) -> PBField:
    """The field without its id, its relation target by name (ids may be PocketBase's now)."""
    target = schema.by_id_or_name(f.collection_id) if f.collection_id else None
    if target is not None:
        name = target.name
    else:
        name = "users" if f.collection_id == USERS_ID else f.collection_id
    return dataclasses.replace(f, id="", collection_id=name)


# ---------------------------------------------------------------------------- what convert does


def _legacy(name: str, fields: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": f"{name}_id", "name": name, "type": "base", "system": False, "schema": fields,
            "listRule": None, "viewRule": None, "createRule": None, "updateRule": None,
            "deleteRule": None, "indexes": [], "options": {}, **extra}


def test_legacy_options_move_to_their_current_places() -> None:
    posts = _legacy("posts", [
        {"id": "t1", "name": "title", "type": "text", "required": True,
         "options": {"min": 3, "max": None, "pattern": ""}},
        {"id": "n1", "name": "views", "type": "number", "options": {"min": 0, "max": 10, "noDecimal": True}},
        {"id": "s1", "name": "tags", "type": "select", "options": {"maxSelect": 2, "values": ["a", "b"]}},
        {"id": "f1", "name": "cover", "type": "file",
         "options": {"maxSelect": 1, "maxSize": 10, "mimeTypes": [], "thumbs": ["10x10"], "protected": False}},
        {"id": "r1", "name": "author", "type": "relation",
         "options": {"collectionId": "users", "cascadeDelete": True, "maxSelect": 1, "displayFields": None}},
    ], createRule="@request.data.title != ''")
    out = convert([posts]).collections[0]
    fields = {f["name"]: f for f in out["fields"]}
    assert [f["name"] for f in out["fields"]] == ["id", "title", "views", "tags", "cover", "author",
                                                   "created", "updated"]
    assert (fields["title"]["min"], fields["title"]["max"]) == (3, 0)
    assert (fields["views"]["min"], fields["views"]["max"], fields["views"]["onlyInt"]) == (0, 10, True)
    assert (fields["tags"]["maxSelect"], fields["tags"]["values"]) == (2, ["a", "b"])
    assert fields["cover"]["thumbs"] == ["10x10"]
    assert (fields["author"]["collectionId"], fields["author"]["cascadeDelete"]) == (USERS_ID, True)
    assert "options" not in fields["author"] and "displayFields" not in fields["author"]
    assert (fields["created"]["type"], fields["updated"]["onUpdate"]) == ("autodate", True)
    assert out["createRule"] == "@request.body.title != ''"
    assert out["id"] == "posts_id"


def test_collections_named_by_id_get_pocketbase_ids_and_relations_follow() -> None:
    tags = _legacy("tags", [{"name": "label", "type": "text", "options": {}}], id="tags")
    posts = _legacy("posts", [{"name": "tag", "type": "relation", "options": {"collectionId": "tags"}}],
                    id="", indexes=["CREATE INDEX idx_tag ON posts (tag)"])
    out = {c["name"]: c for c in convert([tags, posts]).collections}
    assert out["tags"]["id"].startswith("pbc_") and out["posts"]["id"].startswith("pbc_")
    tag = next(f for f in out["posts"]["fields"] if f["name"] == "tag")
    assert tag["collectionId"] == out["tags"]["id"]
    assert tag["id"].startswith("relation")


@pytest.mark.parametrize(
    ("collections", "message", "dropped"),
    [
        (
            [_legacy("posts", [{"name": "title", "type": "text"}, {"name": "Title", "type": "number"}])],
            "collection 'posts', field 'Title': the field name is used twice (also by 'title')",
            "field posts.Title (the second one, number)",
        ),
        (
            [_legacy("posts", [{"name": "title", "type": "text"}],
                     indexes=["CREATE INDEX `idx_slug` ON `posts` (`slug`)"])],
            "collection 'posts': index idx_slug is on column 'slug', which is not a field",
            "index idx_slug of posts",
        ),
        (
            [_legacy("posts", [{"name": "tag", "type": "relation", "options": {"collectionId": "nope"}}])],
            "collection 'posts', field 'tag': relation target 'nope' is neither in the file nor a "
            "collection every PocketBase has",
            "field posts.tag (relation)",
        ),
        (
            [_legacy("posts", [{"name": "tag", "type": "relation", "options": {}}])],
            "collection 'posts', field 'tag': relation field has no target collection (`collectionId`)",
            "field posts.tag (relation)",
        ),
        (
            [_legacy("posts", [{"name": "title", "type": "text"}], listRule="titel != ''")],
            "collection 'posts': `listRule` names 'titel', but there is no field 'titel'",
            "listRule of posts (now superusers only)",
        ),
    ],
)
def test_what_cannot_be_converted(collections: list[dict[str, Any]], message: str, dropped: str) -> None:
    with pytest.raises(SchemaError) as refused:
        convert(copy.deepcopy(collections))
    assert str(refused.value) == message
    forced = convert(copy.deepcopy(collections), force=True)
    assert [p.dropped for p in forced.dropped] == [dropped]
    posts = forced.schema.collections[0]
    assert posts.rules.list is None and not posts.indexes
    assert posts.field("tag") is None and [f.name for f in posts.fields].count("title") <= 1


def test_rule_paths_resolve_through_relations_and_back_relations() -> None:
    users = _legacy("users", [{"name": "nick", "type": "text"}], id="_pb_users_auth_", type="auth")
    posts = _legacy("posts", [
        {"name": "author", "type": "relation", "options": {"collectionId": "_pb_users_auth_"}},
        {"name": "meta", "type": "json", "options": {}},
    ], listRule=(
        "author.nick = 'x.y' && meta.deep.path = 1 && @request.auth.anything != '' && "
        "@collection.users.nick ?= author.nick && author.posts_via_author.meta:length > 0 && "
        "created >= @now && author.verified = true && strftime('%Y', created) = '2024'"
    ))
    assert convert([users, posts]).collections[1]["listRule"].startswith("author.nick")


def test_system_users_is_merged(tmp_path: Path) -> None:
    users = _legacy("users", [{"name": "nick", "type": "text", "options": {}},
                              {"id": "users_avatar", "name": "avatar", "type": "file", "options": {}}],
                    type="auth", id="", options={"allowUsernameAuth": True, "allowEmailAuth": True,
                                                 "requireEmail": True, "minPasswordLength": 10,
                                                 "onlyVerified": True})
    out = convert([users]).collections[0]
    fields = {f["name"]: f for f in out["fields"]}
    assert out["id"] == USERS_ID and out["authRule"] == "verified=true"
    assert out["passwordAuth"] == {"enabled": True, "identityFields": ["email", "username"]}
    assert fields["avatar"]["id"] == "file376926767"  # the fresh users' avatar, not a new column
    assert fields["password"]["min"] == 10 and fields["email"]["required"] is True
    assert [f["name"] for f in out["fields"]][-1] == "name"  # the fresh users' field the file lacks
    assert any("username COLLATE NOCASE" in i for i in out["indexes"])


# ---------------------------------------------------------------------------- the command


def test_help_explains() -> None:
    result = CliRunner().invoke(schema_app, ["convert", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "keeps none of its fields" in result.stdout and "--force" in result.stdout


def test_convert_to_stdout(cli: Invoke, tmp_path: Path) -> None:
    result = cli("convert", str(SCHEMAS / "Podter__jiamusic.json"), "-o", "-", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["name"] == "songs"
    assert result.stderr == "wrote stdout: 1 collections, 8 fields (from legacy format)\n"
    assert list(tmp_path.iterdir()) == []


def test_current_file_converts_to_itself(cli: Invoke, tmp_path: Path) -> None:
    from conftest import POSTLY_SCHEMA_PATH

    result = cli("convert", str(POSTLY_SCHEMA_PATH))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pb_schema.json").read_bytes() == POSTLY_SCHEMA_PATH.read_bytes()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ garbage", "error: bad.json is not valid JSON (line 1, column 3"),
        ('{"hello": "world"}', "error: not a PocketBase schema"),
        ('[{"name": "posts", "schema": [{"name": "a", "type": "text"}, {"name": "a", "type": "bool"}]}]',
         "error: collection 'posts', field 'a': the field name is used twice"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    content: str, expected: str, run_schema_cli: CliRun, tmp_path: Path
) -> None:
    (tmp_path / "bad.json").write_text(content)
    done = run_schema_cli("convert", "bad.json", "--out", "out.json", "--quiet")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(expected), done.stderr
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_unchanged_types_survive() -> None:
    """The loader reads the converted file as it read the original (same fields, same options)."""
    source = SCHEMAS / "engageintellect__spatz.json"
    result = convert(json.loads(source.read_text("utf-8")))
    original = load_file(source)
    for col in original.collections:
        again: PBCollection | None = result.schema.by_id_or_name(col.name)
        assert again is not None
        assert [f.name for f in again.fields] == [f.name for f in col.fields]


def test_a_base_collection_named_users_cannot_be_converted() -> None:
    users = _legacy("users", [{"name": "nick", "type": "text"}])
    posts = _legacy("posts", [{"name": "by", "type": "relation", "options": {"collectionId": "users_id"}}])
    with pytest.raises(SchemaError) as refused:
        convert([copy.deepcopy(users), copy.deepcopy(posts)])
    assert str(refused.value) == (
        "collection 'users': every PocketBase has an auth collection named 'users'; a base "
        "collection cannot take its name (rename it)"
    )
    forced = convert([users, posts], force=True)
    assert [p.dropped for p in forced.dropped] == ["collection users", "field posts.by (relation)"]
    assert [c["name"] for c in forced.collections] == ["posts"]


def test_auth_users_with_another_id_becomes_the_system_users() -> None:
    users = {"id": "abc123", "name": "users", "type": "auth", "fields": [{"name": "nick", "type": "text"}]}
    posts = {"name": "posts", "type": "base", "fields": [
        {"name": "by", "type": "relation", "collectionId": "abc123", "maxSelect": 1},
    ], "listRule": "// who may list\nby = @request.auth.id"}
    out = {c["name"]: c for c in convert([users, posts]).collections}
    assert out["users"]["id"] == USERS_ID
    assert out["posts"]["fields"][1]["collectionId"] == USERS_ID
    assert out["posts"]["listRule"] == "// who may list\nby = @request.auth.id"


def test_rule_paths() -> None:
    from hapta_gen.schema.rules import rule_paths

    rule = (
        "// only owners\n@request.auth.id = owner.id && title ~ 'a.b' && n > 1.5e3 && "
        "strftime('%Y', created) = \"2024\" && tags:length > 0 && @collection.users.name ?= x && null != y"
    )
    assert rule_paths(rule) == [
        "@request.auth.id", "owner.id", "title", "n", "created", "tags", "@collection.users.name", "x", "y"
    ]
