"""Generation settings: `hapta.yaml` (all keys optional), read by the pydantic model ``Config``.

```yaml
# yaml-language-server: $schema=./hapta.schema.json
package: gateway            # import name of the generated package
distribution: hapta-gateway # its pip name
title: Postly API           # OpenAPI title
exclude: [audit_log]        # collections the gateway does not expose (404, never proxied)
include_system: false       # expose system collections (_superusers, ...) too
cache:
  ttl: 300                  # seconds; a backstop, invalidation is by realtime events
  max_bytes: 67108864
rate_limit:                 # the default rule, in the seed's shape
  Max: 300
  Duration: 10
  IP: true
  isEnabled: true
  Message: Too Many Requests.
sessions: passthrough       # or rolling: the gateway's own rotating session keys
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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..errors import ConfigError

_PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
_DIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class RateLimitRule(_Settings):
    """The default rate-limit rule, in the shape of PocketBase's ``rateLimits.rules`` (the seed's)."""

    max: int = Field(default=300, alias="Max", ge=0, description="Requests allowed per window.")
    duration: int = Field(default=10, alias="Duration", ge=0, description="The window, in seconds.")
    per_ip: bool = Field(default=True, alias="IP", description="Count per client IP (else per caller).")
    enabled: bool = Field(default=True, alias="isEnabled", description="Apply the rule.")
    message: str = Field(
        default="Too Many Requests.", alias="Message", description="The message of the 429 answer."
    )


class CacheConfig(_Settings):
    """The response cache."""

    ttl: int = Field(
        default=300, ge=0, description="Seconds; a backstop, invalidation is by realtime events."
    )
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="Memory for cached responses.")


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
    rate_limit: RateLimitRule = Field(
        default_factory=RateLimitRule, description="The default rule, in the seed's shape."
    )
    sessions: Literal["passthrough", "rolling"] = Field(
        default="passthrough",
        description=(
            "passthrough: PocketBase's tokens go to the client; rolling: the gateway answers "
            "auth calls with its own session key, rotated on each refresh, and keeps "
            "PocketBase's token server-side (the run-time setting HAPTA_SESSIONS overrides it)."
        ),
    )


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
    return config_from_dict(data or {}, source=str(path))


def config_from_dict(data: object, *, source: str = "config") -> Config:
    """``data`` (parsed YAML) as a ``Config``, or a one-line ``ConfigError`` naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
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
        annotation = model.model_fields[name].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation
    return {f.alias or name for name, f in model.model_fields.items()}


def config_schema() -> dict[str, Any]:
    """The JSON Schema of `hapta.yaml` (keys as written in the file)."""
    return Config.model_json_schema(by_alias=True)


def config_schema_text() -> str:
    """``config_schema()`` as the committed ``hapta.schema.json`` spells it."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
