"""The intermediate model of examples/postly (pure: no servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hapta_gen import generate
from hapta_gen.emit.pytypes import annotation, declaration
from hapta_gen.errors import ConfigError
from hapta_gen.ir.analyze import analyze
from hapta_gen.ir.config import Config, config_from_dict, load_config
from hapta_gen.ir.model import SchemaIR, to_json
from hapta_gen.schema.loader import load_file

POSTLY = Path(__file__).resolve().parent.parent / "examples" / "postly"


@pytest.fixture(scope="module")
def ir() -> SchemaIR:
    return analyze(load_file(POSTLY / "pb_schema.json"), load_config(POSTLY / "hapta.yaml"))


def test_every_collection_is_exposed_with_stable_names(ir: SchemaIR) -> None:
    assert [c.name for c in ir.collections] == sorted(c.name for c in ir.collections)
    posts = ir.collection("posts")
    assert (posts.record_class, posts.create_class, posts.page_class) == ("PostsRecord", "PostsCreate", "PostsPage")
    assert ir.collection("audit_log").class_prefix == "AuditLog"
    assert ir.collection("post_stats").create_class is None  # views are read-only


def test_python_hostile_names_get_aliases(ir: SchemaIR) -> None:
    field = next(f for f in ir.collection("audit_log").fields if f.name == "type")
    assert (field.attr, field.alias) == ("type_", "type")
    assert field.record is not None
    assert declaration(field.attr, field.name, field.record) == "type_: str = Field(default=\"\", alias='type')"


def test_secrets_and_hidden_fields_never_in_responses(ir: SchemaIR) -> None:
    users = ir.collection("users")
    record = {f.name for f in users.record_fields}
    assert {"password", "tokenKey", "passwordConfirm", "oldPassword"}.isdisjoint(record)
    assert {"email", "emailVisibility", "verified", "name"} <= record
    create = {f.name for f in users.create_fields}
    assert {"password", "passwordConfirm", "email"} <= create and "tokenKey" not in create
    assert "oldPassword" in {f.name for f in users.update_fields}
    posts = ir.collection("posts")
    assert "moderationNote" not in {f.name for f in posts.record_fields + posts.create_fields}


def test_select_values_that_are_not_identifiers_are_literals(ir: SchemaIR) -> None:
    tags = next(lit for lit in ir.collection("posts").literals if lit.name == "PostsTags")
    assert "4K" in tags.values and "1" in tags.values
    assert annotation(tags.type).startswith("Literal[") and "'4K'" in annotation(tags.type)


def test_relation_graph_forward_and_back(ir: SchemaIR) -> None:
    posts = {e.key: e for e in ir.collection("posts").expands}
    assert posts["author"].target == "users" and not posts["author"].multiple
    assert posts["coauthors"].multiple
    assert posts["comments_via_post"].back and posts["comments_via_post"].target == "comments"
    users = {e.key for e in ir.collection("users").expands}
    assert {"posts_via_author", "follows_via_follower", "follows_via_following"} <= users


def test_view_depends_on_the_collections_its_query_reads(ir: SchemaIR) -> None:
    assert ir.collection("post_stats").depends_on == ("comments", "likes", "posts")
    assert ir.collection("posts").depends_on == ("posts",)


def test_rules_and_cache_policy(ir: SchemaIR) -> None:
    posts, attachments, audit = ir.collection("posts"), ir.collection("attachments"), ir.collection("audit_log")
    assert posts.public_list and posts.public_view
    assert not attachments.public_list and attachments.rules.view == "owner = @request.auth.id"
    assert audit.rules.list is None and not audit.public_view
    assert posts.sse_topic == "posts/*" and posts.records_path == "/api/collections/posts/records"


def test_update_models_carry_modifiers(ir: SchemaIR) -> None:
    keys = {m.key for m in ir.collection("posts").modifiers}
    assert {"views+", "views-", "tags+", "+tags", "tags-", "gallery-"} <= keys


def test_exclusion_and_unknown_exclusion() -> None:
    schema = load_file(POSTLY / "pb_schema.json")
    ir = analyze(schema, config_from_dict({"exclude": ["audit_log"]}))
    assert "audit_log" not in [c.name for c in ir.collections] and ir.excluded == ("audit_log",)
    with pytest.raises(ConfigError, match="'nope'"):
        analyze(schema, config_from_dict({"exclude": ["nope"]}))


def test_ir_dumps_as_json(ir: SchemaIR) -> None:
    data = json.loads(to_json(ir))
    assert data["package"] == "gateway" and len(data["collections"]) == len(ir.collections)
    assert to_json(ir) == to_json(analyze(load_file(POSTLY / "pb_schema.json"), load_config(POSTLY / "hapta.yaml")))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"package": "my-gateway"}, "not a valid Python package name"),
        ({"package": "class"}, "not a valid Python package name"),
        ({"cache": {"ttl": "long"}}, "'ttl' has the wrong type"),
        ({"ratelimit": {"Max": True}}, "'Max' has the wrong type"),
        ({"rate_limit": {"Max": True}}, "'Max' has the wrong type"),
        ({"ratelimit": {"Max": 0}}, "'Max' must be at least 1"),
        ({"ratelimit": {"Max": 5, "Window": 3}}, "unknown key 'Window'"),
        ({"ratelimit": {}, "rate_limit": {}}, "not both"),
        ({"ratelimits": {"Label": "*"}}, "must be a list"),
        ({"ratelimits": [{"Label": "*", "Max": 5}]}, "needs Label, Max and Duration"),
        ({"ratelimits": [{"Label": "posts:frobnicate", "Max": 5, "Duration": 1000}]}, "Label 'posts:frobnicate'"),
        ({"ratelimits": [{"Label": "posts", "Max": 5, "Duration": 1000}]}, "Label 'posts'"),
        ({"ratelimits": [{"Label": "*", "Max": 5, "Duration": 1000, "Per": "token"}]}, "Per must be one of"),
        ({"ratelimits": [{"Label": "*", "Max": 5, "Duration": 1000}] * 2}, "two rate-limit rules are named"),
        ({"colour": 1}, "unknown key 'colour'"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_config_is_one_clear_error(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_default_config() -> None:
    assert Config().package == "gateway" and Config().rate_limits().rules == ()


def test_ratelimit_rules_in_hapta_shape() -> None:
    """The default rule reads Hapta's keys (Duration in ms; IP false is one global budget);
    labels accept PocketBase's tags; a disabled rule is no rule."""
    limits = config_from_dict(
        {
            "ratelimit": {"Max": 10, "Duration": 60000, "IP": False, "isEnabled": True, "Message": "Slow down"},
            "ratelimits": [
                {"Label": "users:authWithPassword", "Max": 3, "Duration": 1000},
                {"Label": "*:auth", "Max": 4, "Duration": 2000, "Per": "user", "Name": "logins"},
                {"Label": "batch", "Max": 1, "Duration": 1, "isEnabled": False},
            ],
        }
    ).rate_limits()
    assert [(r.name, r.label, r.max, r.duration_ms, r.per, r.message) for r in limits.rules] == [
        ("default", "*", 10, 60000, "global", "Slow down"),
        ("users:auth-with-password/ip", "users:auth-with-password", 3, 1000, "ip", "Slow down"),
        ("logins", "*:auth", 4, 2000, "user", "Slow down"),
    ]
    assert limits.warnings == ()


def test_a_rule_for_a_collection_not_exposed_is_an_error() -> None:
    schema = load_file(POSTLY / "pb_schema.json")
    for config in ({"ratelimits": [{"Label": "post:create", "Max": 1, "Duration": 1}]},
                   {"exclude": ["likes"], "ratelimits": [{"Label": "likes:list", "Max": 1, "Duration": 1}]}):
        with pytest.raises(ConfigError, match="not an exposed collection"):
            analyze(schema, config_from_dict(config))


def test_deprecated_rate_limit_key_is_converted_with_a_warning() -> None:
    limits = config_from_dict({"rate_limit": {"Max": 300, "Duration": 10}}).rate_limits()
    assert [(r.max, r.duration_ms, r.per) for r in limits.rules] == [(300, 10000, "ip")]
    assert len(limits.warnings) == 1 and "rate_limit is deprecated" in limits.warnings[0]
    result = generate(load_file(POSTLY / "pb_schema.json"), config_from_dict({"rate_limit": {"Max": 3}}))
    assert any("rate_limit is deprecated" in w for w in result.warnings)


def test_sessions_mode_reaches_the_generated_catalog() -> None:
    from hapta_gen.api import generate

    schema = load_file(POSTLY / "pb_schema.json")
    assert analyze(schema, Config()).sessions == "passthrough"
    rolling = generate(schema, config_from_dict({"sessions": "rolling"}))
    assert rolling.ir is not None and rolling.ir.sessions == "rolling"
    catalog = next(text for path, text in rolling.files.items() if str(path).endswith("catalog.py"))
    assert 'SESSIONS = "rolling"' in catalog
    plain = generate(schema, Config())
    assert 'SESSIONS = "passthrough"' in next(t for p, t in plain.files.items() if str(p).endswith("catalog.py"))
