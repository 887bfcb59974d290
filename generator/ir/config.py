"""Generation settings: `hapta.yaml` (all keys optional) merged into one frozen ``Config``.

```yaml
package: gateway            # import name of the generated package
distribution: hapta-gateway # its pip name
title: Postly API           # OpenAPI title
exclude: [audit_log]        # collections the gateway does not expose (404, never proxied)
include_system: false       # expose system collections (_superusers, ...) too
cache:
  ttl: 300                  # seconds; a backstop, invalidation is by realtime events
  max_bytes: 67108864
ratelimit:                  # the default rule, in Hapta's shape (Duration in ms); more
  Max: 300                  # rules under ratelimits: (see ratelimits.py)
  Duration: 10000
  IP: true
  isEnabled: true
  Message: Too Many Requests.
```
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .ratelimits import KEYS as RATELIMIT_KEYS
from .ratelimits import RateLimits, parse_ratelimits

_PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
_DIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CacheConfig:
    ttl: int = 300
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    package: str = "gateway"
    distribution: str = "hapta-gateway"
    title: str = "PocketBase gateway"
    version: str = "0.1.0"
    exclude: tuple[str, ...] = ()
    include_system: bool = False
    cache: CacheConfig = field(default_factory=CacheConfig)
    ratelimits: RateLimits = field(default_factory=RateLimits)


_TOP_KEYS = {"package", "distribution", "title", "version", "exclude", "include_system", "cache"} | RATELIMIT_KEYS


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
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    package = _get(data, "package", str, "gateway", source)
    if not _PACKAGE.match(package) or keyword.iskeyword(package):
        raise ConfigError(f"{source}: package {package!r} is not a valid Python package name")
    distribution = _get(data, "distribution", str, "hapta-gateway", source)
    if not _DIST.match(distribution):
        raise ConfigError(f"{source}: distribution {distribution!r} is not a valid package name")
    exclude = _get(data, "exclude", list, [], source)
    if not all(isinstance(x, str) for x in exclude):
        raise ConfigError(f"{source}: exclude must be a list of collection names")
    cache = _get(data, "cache", dict, {}, source)
    return Config(
        package=package,
        distribution=distribution,
        title=_get(data, "title", str, "PocketBase gateway", source),
        version=str(_get(data, "version", (str, int, float), "0.1.0", source)),
        exclude=tuple(exclude),
        include_system=_get(data, "include_system", bool, False, source),
        cache=CacheConfig(
            ttl=_get(cache, "ttl", int, 300, f"{source}: cache"),
            max_bytes=_get(cache, "max_bytes", int, 64 * 1024 * 1024, f"{source}: cache"),
        ),
        ratelimits=parse_ratelimits(data, source),
    )


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, source: str) -> Any:
    value = data.get(key, default)
    if value is None:
        return default
    bad_bool = kind is int and isinstance(value, bool)
    if not isinstance(value, kind) or bad_bool:
        raise ConfigError(f"{source}: {key!r} has the wrong type ({type(value).__name__})")
    return value
