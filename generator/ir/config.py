"""Generation settings: `hapta.yaml` (all keys optional), read by the pydantic model ``Config``.

```yaml
# yaml-language-server: $schema=./hapta.schema.json
package: gateway            # import name of the generated package
distribution: hapta-gateway # its pip name
title: Postly API           # OpenAPI title
exclude: [audit_log]        # collections the gateway does not expose (404, never proxied)
include_system: false       # expose system collections (_superusers, ...) too
cache:                      # HAPTA_CACHE, HAPTA_CACHE_TTL, HAPTA_CACHE_MAX_BYTES win at run time
  enabled: true
  ttl: 300                  # seconds; a backstop, invalidation is by realtime events
  max_bytes: 67108864
  collections: {likes: {enabled: false}}   # or under collections: <name>: cache:
collections:                # per-collection policy (checked against the schema)
  follows: {operations: [list, view]}      # the others answer 405 before PocketBase
  posts: {hidden: [contact], ratelimits: [{Label: create, Max: 60, Duration: 60000}]}
extensions: [postly_ext.feed]              # your modules: router, before_write, after_read
extension_paths: [../examples/postly/ext]  # relative to --out (or hapta.yaml, at build)
ratelimit:                  # the default rule, in Hapta's shape (Duration in ms); more
  Max: 300                  # rules under ratelimits: (see ratelimits.py)
  Duration: 10000
  IP: true
  isEnabled: true
  Message: Too Many Requests.
typescript:                 # TypeScript types for front ends (pocketbase-typegen's shape)
  out: types.ts             # relative to the build's --out; `enabled: false` writes none
sessions: passthrough       # or rolling: the gateway's own rotating session keys
json_schemas:               # typed json fields: a JSON Schema file per `collection.field`
  posts.meta: schemas/post_meta.json  # relative to hapta.yaml (generator/ir/jsonfields.py)
templates: overrides/       # your templates, replacing the built-in ones of the same path
```

Values are taken as written (no ``"5"`` for 5, no ``1`` for true); an empty key means its
default; unknown keys are refused, at every level. ``config_schema_text()`` is the model's JSON
Schema (``hapta-gen config schema``), committed next to the example as ``hapta.schema.json`` so
editors complete and check the file.
"""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..errors import ConfigError
from .ratelimits import KEYS as RATELIMIT_KEYS
from .ratelimits import RateLimits, parse_ratelimits

_PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
_DIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: A ``json_schemas`` key: ``<collection>.<field>``.
_JSON_FIELD = re.compile(r"^[^.\s]+\.[^.\s]+$")
#: A relative path of plain names ending in ``.ts`` (no ``..``, no absolute path).
_TS_OUT = re.compile(r"^(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\.ts$")


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class RateLimitRule(_Settings):
    """The default rate-limit rule, in Hapta's seed shape; applies to every route."""

    max: int = Field(default=10, alias="Max", ge=1, description="Requests allowed per window.")
    duration: int = Field(
        default=60000, alias="Duration", ge=1, description="The window, in milliseconds."
    )
    per_ip: bool = Field(
        default=True, alias="IP", description="Count per client IP (else one global budget)."
    )
    enabled: bool = Field(default=True, alias="isEnabled", description="Apply the rule.")
    message: str = Field(
        default="Too Many Requests.",
        alias="Message",
        min_length=1,
        description="The message of the 429 answer.",
    )


class LabeledRateLimit(_Settings):
    """A rule of its own window for the routes its ``Label`` names (``generator/ir/ratelimits.py``)."""

    label: str = Field(
        alias="Label",
        description="'*', '<collection|*>:<operation>' (posts:create, *:auth, "
        "users:auth-with-password) or batch, realtime, files-token, health, extension (the "
        "extensions' routes).",
    )
    max: int = Field(alias="Max", ge=1, description="Requests allowed per window.")
    duration: int = Field(alias="Duration", ge=1, description="The window, in milliseconds.")
    per: Literal["ip", "user", "global"] = Field(
        default="ip",
        alias="Per",
        description="Whose budget: the client IP, the verified user (else the IP), or everyone's.",
    )
    enabled: bool = Field(default=True, alias="isEnabled", description="Apply the rule.")
    message: str | None = Field(
        default=None,
        alias="Message",
        min_length=1,
        description="The 429 message (default: ratelimit's).",
    )
    name: str | None = Field(
        default=None, alias="Name", description="The metric label (default: Label/Per)."
    )


class LegacyRateLimit(_Settings):
    """Deprecated: ``rate_limit`` with ``Duration`` in seconds; read as ``ratelimit``."""

    max: int | None = Field(default=None, alias="Max", ge=1)
    duration: int | None = Field(default=None, alias="Duration", ge=1, description="Seconds.")
    per_ip: bool | None = Field(default=None, alias="IP")
    enabled: bool | None = Field(default=None, alias="isEnabled")
    message: str | None = Field(default=None, alias="Message", min_length=1)


class CollectionCache(_Settings):
    """The response cache for one collection's reads (and reads that expand into it)."""

    enabled: bool = Field(default=True, description="Cache this collection's answers.")
    ttl: int | None = Field(
        default=None,
        ge=0,
        description="Seconds an entry lives (default: the cache's ttl; 0: never cached). "
        "HAPTA_CACHE_TTL, when set, caps it.",
    )


class CacheConfig(_Settings):
    """The response cache (the run-time settings HAPTA_CACHE, HAPTA_CACHE_TTL and
    HAPTA_CACHE_MAX_BYTES override these)."""

    enabled: bool = Field(default=True, description="Cache GET list/view answers.")
    ttl: int = Field(
        default=300, ge=0, description="Seconds; a backstop, invalidation is by realtime events."
    )
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="Memory for cached responses.")
    collections: dict[str, CollectionCache] = Field(
        default_factory=dict,
        description="Per collection (also settable as collections: <name>: cache:).",
    )


#: What ``collections: <name>: operations`` may list (``auth``: every auth endpoint; ``file``:
#: downloads; ``realtime``: subscribing to the collection's topics).
OPERATIONS = ("list", "view", "create", "update", "delete", "file", "auth", "realtime")
Operation = Literal["list", "view", "create", "update", "delete", "file", "auth", "realtime"]


class CollectionRateLimit(LabeledRateLimit):
    """A rate-limit rule of the collection's own: ``Label`` is an operation of it (``create``,
    ``list``, ``auth-with-password``...) or ``*``; read as ``<collection>:<Label>``."""

    label: str = Field(
        alias="Label",
        description="An operation of the collection (list, view, create, update, delete, file, "
        "auth, auth-with-password, ...) or '*'.",
    )


class CollectionPolicy(_Settings):
    """What the gateway exposes of one collection, beyond PocketBase's own rules."""

    operations: tuple[Operation, ...] | None = Field(
        default=None,
        strict=False,  # a YAML list
        description="The operations the gateway serves (default: all of "
        + ", ".join(OPERATIONS)
        + "); the others answer 405 before PocketBase is asked.",
    )
    hidden: tuple[StrictStr, ...] = Field(
        default=(),
        strict=False,  # a YAML list
        description="Fields never returned, filtered, sorted, expanded or written through the "
        "gateway (in addition to PocketBase's hidden ones).",
    )
    cache: CollectionCache | None = Field(
        default=None, description="The response cache for this collection (as cache: collections:)."
    )
    ratelimits: tuple[CollectionRateLimit, ...] = Field(
        default=(),
        strict=False,  # a YAML list
        description="Rate-limit rules of this collection (as ratelimits: with Label "
        "'<collection>:<Label>').",
    )


def _ts_out(value: str) -> str:
    if not _TS_OUT.match(value):
        raise ValueError(
            f"out {value!r} must be a relative path ending in .ts (inside the build's --out)"
        )
    return value


class TypeScriptConfig(_Settings):
    """TypeScript types of the collections (``generator/emit/typescript.py``)."""

    enabled: bool = Field(default=True, description="Write the TypeScript types file.")
    out: Annotated[
        str,
        AfterValidator(_ts_out),
        Field(
            description="Its path, relative to the build's --out directory.",
            json_schema_extra={"pattern": _TS_OUT.pattern},
        ),
    ] = "types.ts"


def _json_schemas(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _JSON_FIELD.match(key):
            raise ValueError(f"json_schemas key {key!r} must be <collection>.<field>")
    return value


_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _module(value: str) -> str:
    if not _MODULE.match(value):
        raise ValueError(f"extension {value!r} is not a dotted module name (myapp.gateway_ext)")
    return value


def _package(value: str) -> str:
    if not _PACKAGE.match(value) or keyword.iskeyword(value):
        raise ValueError(f"package {value!r} is not a valid Python package name")
    return value


def _distribution(value: str) -> str:
    if not _DIST.match(value):
        raise ValueError(f"distribution {value!r} is not a valid package name")
    return value


def _version(value: Any) -> Any:
    """``version: 1.0`` in YAML is a number: take it as its text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class Config(_Settings):
    """Settings of `hapta-gen build` (`hapta.yaml`); every key is optional."""

    model_config = ConfigDict(
        title="hapta.yaml",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    package: Annotated[
        str,
        AfterValidator(_package),
        Field(
            description="Import name of the generated package.",
            json_schema_extra={"pattern": _PACKAGE.pattern},
        ),
    ] = "gateway"
    distribution: Annotated[
        str,
        AfterValidator(_distribution),
        Field(description="Its pip name.", json_schema_extra={"pattern": _DIST.pattern}),
    ] = "hapta-gateway"
    title: str = Field(default="PocketBase gateway", description="The OpenAPI document's title.")
    version: Annotated[
        str,
        BeforeValidator(_version),
        WithJsonSchema({"type": ["string", "number"], "description": "The package's version."}),
    ] = "0.1.0"
    exclude: tuple[StrictStr, ...] = Field(
        default=(),
        strict=False,  # a YAML list
        description="Collections the gateway does not expose (404, never proxied).",
    )
    include_system: bool = Field(
        default=False, description="Expose PocketBase's system collections (_superusers, ...) too."
    )
    cache: CacheConfig = Field(default_factory=CacheConfig)
    ratelimit: RateLimitRule | None = Field(
        default=None, description="The default rate-limit rule, in Hapta's seed shape."
    )
    ratelimits: tuple[LabeledRateLimit, ...] = Field(
        default=(),
        strict=False,  # a YAML list
        description="More rate-limit rules, each for the routes its Label names.",
    )
    rate_limit: LegacyRateLimit | None = Field(
        default=None,
        description="Deprecated: write ratelimit (Duration in milliseconds) instead.",
    )
    collections: dict[str, CollectionPolicy] = Field(
        default_factory=dict,
        description="Per-collection policy: operations served, hidden fields, cache, rate limits.",
    )
    extensions: tuple[
        Annotated[
            str, AfterValidator(_module), WithJsonSchema({"type": "string", "pattern": _MODULE.pattern})
        ],
        ...,
    ] = Field(
        default=(),
        strict=False,  # a YAML list
        description="Your own importable modules the gateway loads at start: a FastAPI `router` "
        "mounted outside /api/, and `before_write` / `after_read` hooks.",
    )
    extension_paths: tuple[StrictStr, ...] = Field(
        default=(),
        strict=False,  # a YAML list
        description="Directories added to the import path for the extensions: relative to the "
        "build's --out directory (the gateway looks there at start; the build too) or to "
        "hapta.yaml (the build only), or absolute. Missing ones are skipped.",
    )
    typescript: TypeScriptConfig = Field(
        default_factory=TypeScriptConfig,
        description="TypeScript types for front ends, in pocketbase-typegen's shape.",
    )

    sessions: Literal["passthrough", "rolling"] = Field(
        default="passthrough",
        description=(
            "passthrough: PocketBase's tokens go to the client; rolling: the gateway answers "
            "auth calls with its own session key, rotated on each refresh, and keeps "
            "PocketBase's token server-side (the run-time setting HAPTA_SESSIONS overrides it)."
        ),
    )

    json_schemas: Annotated[
        dict[StrictStr, StrictStr],
        AfterValidator(_json_schemas),
        Field(
            strict=False,  # a YAML mapping
            description=(
                "Typed json fields: '<collection>.<field>' → a JSON Schema file (relative to "
                "hapta.yaml). The field is typed with models generated from it, the schema goes "
                "into openapi.json, and the gateway refuses a body whose value does not match."
            ),
            json_schema_extra={"propertyNames": {"pattern": _JSON_FIELD.pattern}},
        ),
    ] = Field(default_factory=dict)
    templates: StrictStr | None = Field(
        default=None,
        description=(
            "A folder (relative to hapta.yaml) of your own templates: a file there with the "
            "same relative path as a built-in one replaces it (`hapta-gen build "
            "--list-templates`)."
        ),
    )

    #: The folder of the hapta.yaml the settings were read from (relative paths start there).
    _base_dir: Path = PrivateAttr(default_factory=Path)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def with_base_dir(self, base_dir: Path) -> Config:
        """The same settings, with relative paths (json_schemas, templates) read from ``base_dir``."""
        copy = self.model_copy()
        copy._base_dir = base_dir
        return copy

    def rate_limits(self, source: str = "hapta.yaml") -> RateLimits:
        """The rate-limit rules, checked and normalised (``ratelimits.parse_ratelimits``); the
        rules under ``collections: <name>: ratelimits`` come after the top-level ones."""
        sections = self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            include=set(RATELIMIT_KEYS) | {"collections"},
        )
        return parse_ratelimits(_with_collection_rules(sections), source)

    def collection_cache(self) -> dict[str, CollectionCache]:
        """The cache settings per collection, from ``cache: collections:`` and from
        ``collections: <name>: cache:`` (one place per collection)."""
        out = dict(self.cache.collections)
        for name, policy in self.collections.items():
            if policy.cache is None:
                continue
            if name in out:
                raise ConfigError(
                    f"collections: {name}: cache is also set under cache: collections: {name} "
                    "(keep one)"
                )
            out[name] = policy.cache
        return out


def _with_collection_rules(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (keys as written) with each ``collections: <name>: ratelimits`` rule appended to
    ``ratelimits`` as ``<name>:<Label>``; the rest of ``collections`` is not read here."""
    sections = {k: v for k, v in data.items() if k in RATELIMIT_KEYS}
    policies = data.get("collections")
    if not isinstance(policies, dict):
        return sections
    extra = []
    for name, policy in policies.items():
        rules = policy.get("ratelimits") if isinstance(policy, dict) else None
        if not isinstance(rules, list):
            continue
        for rule in rules:
            if isinstance(rule, dict) and isinstance(rule.get("Label"), str):
                rule = {**rule, "Label": f"{name}:{rule['Label']}"}
            extra.append(rule)
    base = sections.get("ratelimits")
    if extra and (base is None or isinstance(base, list | tuple)):
        sections["ratelimits"] = list(base or ()) + extra
    return sections


def load_config(path: Path | None) -> Config:
    """Read `hapta.yaml`; no path means the defaults. Errors name the key."""
    if path is None:
        return Config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return config_from_dict(data or {}, source=str(path)).with_base_dir(path.parent)


def config_from_dict(data: object, *, source: str = "config") -> Config:
    """``data`` (parsed YAML) as a ``Config``, or a one-line ``ConfigError`` naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    # The rate-limit sections first, in their own words (labels, names, the deprecated key);
    # each collection's own rules where they are written, then all of them together.
    policies = data.get("collections")
    for name, policy in policies.items() if isinstance(policies, dict) else ():
        if isinstance(policy, dict) and policy.get("ratelimits") is not None:
            alone = _with_collection_rules({"collections": {name: policy}})
            parse_ratelimits(alone, f"{source}: collections: {name}")
    parse_ratelimits(_with_collection_rules(data), source)
    try:
        # Keys as the file spells them (`Max`, not `max`); Python callers may use either.
        return Config.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_message(exc.errors()[0])}") from None


def _message(error: ErrorDetails) -> str:
    """One line in the words the CLI has always used: the section, the key, what is wrong."""
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0] == "exclude":
        return "exclude must be a list of collection names"
    where = "".join(f"{part}: " for part in loc[:-1])
    key = loc[-1] if loc else ""
    if error["type"] == "extra_forbidden":
        known = sorted(_known_keys(loc[:-1]))
        return f"{where}unknown key {key!r} (known: {', '.join(known)})"
    if error["type"] == "value_error":
        return where + str(error["ctx"]["error"])
    if error["type"] == "literal_error":
        return f"{where}{key!r} must be {error['ctx']['expected']}"
    if error["type"] == "greater_than_equal":
        return f"{where}{key!r} must be at least {error['ctx']['ge']}"
    return f"{where}{key!r} has the wrong type ({type(error['input']).__name__})"


def _known_keys(section: list[str]) -> set[str]:
    model: type[BaseModel] = Config
    for name in section:
        if name not in model.model_fields:
            continue  # a list index
        annotation = model.model_fields[name].annotation
        found = [
            t
            for t in (annotation, *get_args(annotation))
            if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        model = found[0]
    return {f.alias or name for name, f in model.model_fields.items()}


def config_schema() -> dict[str, Any]:
    """The JSON Schema of `hapta.yaml` (keys as written in the file)."""
    return Config.model_json_schema(by_alias=True)


def config_schema_text() -> str:
    """``config_schema()`` as the committed ``hapta.schema.json`` spells it."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
