"""`hapta.yaml`: the pydantic model (ir/config.py), its committed JSON Schema, and the CLI that
writes it. Pure: no servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from hapta_gen.cli.main import app
from hapta_gen.errors import ConfigError
from hapta_gen.ir.config import (
    Config,
    config_from_dict,
    config_schema,
    config_schema_text,
    load_config,
)

POSTLY = Path(__file__).resolve().parent.parent / "examples" / "postly"
SCHEMA_FILE = POSTLY / "hapta.schema.json"
runner = CliRunner()


def test_committed_schema_is_what_the_model_produces() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == config_schema_text(), (
        "run `hapta-gen config schema --out examples/postly/hapta.schema.json`"
    )
    Draft202012Validator.check_schema(config_schema())


def test_example_points_editors_at_the_schema_and_satisfies_it() -> None:
    text = (POSTLY / "hapta.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./hapta.schema.json"
    Draft202012Validator(config_schema()).validate(yaml.safe_load(text))
    config = load_config(POSTLY / "hapta.yaml")
    assert config.ratelimit is not None
    assert (config.distribution, config.ratelimit.message) == ("postly-gateway", "Too Many Requests.")


DOCUMENTS: list[dict[str, Any]] = [
    {},
    {"package": "my_gw", "exclude": ["a", "b"], "include_system": True, "version": 2},
    {"version": "1.2.3", "cache": {"ttl": 0, "max_bytes": 1024}},
    {"ratelimit": {"Max": 5, "Duration": 60000, "IP": False, "isEnabled": False, "Message": "Slow down."}},
    {"ratelimit": {"max": 5}},  # the seed's spelling only
    {"ratelimit": {"Max": "5"}},
    {"ratelimit": {"IP": 1}},
    {"ratelimit": {"Max": 0}},
    {"ratelimits": [{"Label": "posts:create", "Max": 5, "Duration": 1000, "Per": "user"}]},
    {"ratelimits": [{"Label": "*", "Max": 5, "Duration": 1000, "Per": "everyone"}]},
    {"ratelimits": [{"Label": "*", "Max": 5}]},
    {"ratelimits": {"Label": "*", "Max": 5, "Duration": 1}},
    {"rate_limit": {"Max": 5, "Duration": 60}},  # deprecated, still read
    {"cache": {"ttl": -1}},
    {"cache": {"ttl2": 1}},
    {"cache": []},
    {"colour": "red"},
    {"package": "my-gateway"},
    {"exclude": "posts"},
    {"exclude": [1]},
    {"title": 5},
    {"typescript": {"out": "web/src/pb-types.ts", "enabled": False}},
    {"typescript": {"out": "../web/types.ts"}},
    {"typescript": {"out": "/abs/types.ts"}},
    {"typescript": {"out": "types.js"}},
    {"typescript": {"enabled": "no"}},
    {"sessions": "rolling"},
    {"sessions": "passthrough"},
    {"sessions": "Rolling"},
    {"sessions": True},
    {
        "collections": {
            "posts": {
                "operations": ["list", "view"],
                "hidden": ["contact"],
                "cache": {"enabled": False, "ttl": 5},
                "ratelimits": [{"Label": "create", "Max": 1, "Duration": 1000, "Per": "user"}],
            }
        }
    },
    {"collections": {"posts": {"operations": ["erase"]}}},
    {"collections": {"posts": {"colour": 1}}},
    {"collections": {"posts": {"hidden": "contact"}}},
    {"collections": {"posts": {"cache": {"ttl": -1}}}},
    {"collections": {"posts": {"ratelimits": [{"Label": "create", "Max": 0, "Duration": 1}]}}},
    {"cache": {"enabled": False, "collections": {"likes": {"ttl": 0}}}},
    {"cache": {"collections": {"likes": {"enabled": "no"}}}},
    {"extensions": ["myapp.gateway_ext"], "extension_paths": ["ext"]},
    {"extensions": ["my-app"]},
    {"extensions": "myapp"},
    {"ratelimit": {"Max": 5, "Message": ""}},  # an empty 429 message: refused by both
    {"ratelimits": [{"Label": "*:auth", "Max": 5, "Duration": 1000, "Message": ""}]},
    {"rate_limit": {"Max": 5, "Message": ""}},
    {"ratelimit": {"Max": 5, "Message": "Slow down."}},
]


@pytest.mark.parametrize("data", DOCUMENTS, ids=lambda d: json.dumps(d)[:40])
def test_schema_and_model_agree(data: dict[str, Any]) -> None:
    try:
        config_from_dict(data)
        accepted = True
    except ConfigError:
        accepted = False
    assert Draft202012Validator(config_schema()).is_valid(data) == accepted


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cache": {"ttl2": 1}}, "config: cache: unknown key 'ttl2' (known: collections, enabled, max_bytes, ttl)"),
        (
            {"ratelimit": {"max": 5}},
            "config: ratelimit: unknown key 'max' (known: Duration, IP, Max, Message, isEnabled)",
        ),
        ({"ratelimit": {"IP": "yes"}}, "config: ratelimit: 'IP' has the wrong type (str)"),
        ({"cache": {"ttl": -1}}, "config: cache: 'ttl' must be at least 0"),
        ({"exclude": "posts"}, "config: exclude must be a list of collection names"),
        ({"version": True}, "config: 'version' has the wrong type (bool)"),
        (
            {"typescript": {"out": "../web/types.ts"}},
            "config: typescript: out '../web/types.ts' must be a relative path ending in .ts "
            "(inside the build's --out)",
        ),
        ({"typescript": {"path": "x.ts"}}, "config: typescript: unknown key 'path' (known: enabled, out)"),
        ({"sessions": "jwt"}, "config: 'sessions' must be 'passthrough' or 'rolling'"),
        (
            {"collections": {"posts": {"hide": ["x"]}}},
            "config: collections: posts: unknown key 'hide' (known: cache, hidden, operations, ratelimits)",
        ),
        (
            {"extensions": ["my-app"]},
            "config: extensions: extension 'my-app' is not a dotted module name (myapp.gateway_ext)",
        ),
    ],
)
def test_errors_name_the_key_in_one_line(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert str(info.value) == message


def test_empty_keys_mean_their_defaults() -> None:
    config = config_from_dict(yaml.safe_load("title:\ncache:\nratelimit:\ntypescript:\n  out:\n"))
    assert config == Config()
    rule = config_from_dict(yaml.safe_load("ratelimit:\n  Max:\n  Duration: 1000\n")).rate_limits()
    assert [(r.max, r.duration_ms) for r in rule.rules] == [(10, 1000)]  # Max: its default
    assert config_from_dict({"version": 1.5}).version == "1.5"
    assert config_from_dict({"exclude": ["a"]}).exclude == ("a",)


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValueError, match="frozen"):
        config.package = "other"  # type: ignore[misc]


def test_cli_writes_prints_and_checks_the_schema(tmp_path: Path) -> None:
    out = tmp_path / "hapta.schema.json"
    printed = runner.invoke(app, ["config", "schema"])
    assert printed.exit_code == 0 and printed.stdout == config_schema_text()
    stale = runner.invoke(app, ["config", "schema", "--out", str(out), "--check"])
    assert stale.exit_code == 1 and "is stale" in stale.stderr and not out.exists()
    wrote = runner.invoke(app, ["config", "schema", "--out", str(out)])
    assert wrote.exit_code == 0 and out.read_text(encoding="utf-8") == config_schema_text()
    fresh = runner.invoke(app, ["config", "schema", "--out", str(out), "--check"])
    assert fresh.exit_code == 0


def test_collection_rules_and_cache_are_read_with_the_top_level_ones() -> None:
    config = config_from_dict(
        {
            "ratelimits": [{"Label": "*:auth", "Max": 5, "Duration": 1000}],
            "collections": {
                "posts": {
                    "ratelimits": [{"Label": "create", "Max": 3, "Duration": 1000, "Per": "user"}],
                    "cache": {"ttl": 7},
                }
            },
            "cache": {"collections": {"likes": {"enabled": False}}},
        }
    )
    rules = config.rate_limits().rules
    assert [(r.label, r.per, r.max) for r in rules] == [("*:auth", "ip", 5), ("posts:create", "user", 3)]
    cache = config.collection_cache()
    assert (cache["posts"].ttl, cache["likes"].enabled) == (7, False)
    both = {"cache": {"collections": {"posts": {"ttl": 1}}}, "collections": {"posts": {"cache": {"ttl": 2}}}}
    with pytest.raises(ConfigError, match="keep one"):
        config_from_dict(both).collection_cache()
