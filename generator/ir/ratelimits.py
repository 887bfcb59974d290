"""Rate-limit rules: the ``ratelimit`` and ``ratelimits`` sections of `hapta.yaml`, checked and
turned into frozen IR data that the generated gateway prints into ``ratelimit_rules.py``.

```yaml
ratelimit:            # the default rule, in Hapta's seed shape (Duration in milliseconds)
  Max: 10
  Duration: 60000
  IP: true            # per client IP; false: one global budget shared by every caller
  isEnabled: true
  Message: You have reached the maximum number of requests per minute
ratelimits:           # more rules, each with its own window; every matching rule must allow
  - {Label: "*:auth", Max: 20, Duration: 60000}                  # per: ip (the default)
  - {Label: "users:auth-with-password", Max: 5, Duration: 60000}
  - {Label: "posts:create", Max: 30, Duration: 60000, Per: user}
  - {Label: "*", Max: 2000, Duration: 1000, Per: global}
```

A label is ``*`` (every route, the extensions' too), ``<collection|*>:<operation>``, or
``batch`` / ``realtime`` / ``files-token`` / ``health`` / ``extension`` (every route of the
extensions' routers). Operations: ``list view create update delete file auth`` (every
POST auth endpoint), ``auth-methods``, ``impersonate`` and each auth endpoint by its path name
(``auth-with-password``...) or PocketBase's tag (``authWithPassword``...). ``Per`` is ``ip``,
``user`` (the identity PocketBase vouched for; see the gateway's ``layers/ratelimit``) or
``global``.

The earlier key ``rate_limit`` (``Duration`` in **seconds**) is still read: it is converted to
``ratelimit`` (Duration times 1000) with a deprecation warning in the generation's warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

#: Top-level keys of `hapta.yaml` this module reads.
KEYS = frozenset({"ratelimit", "ratelimits", "rate_limit"})
DEFAULT_MESSAGE = "Too Many Requests."
PER = ("ip", "user", "global")
_AUTH_ACTIONS = (
    "auth-with-password",
    "auth-refresh",
    "auth-with-otp",
    "request-otp",
    "auth-with-oauth2",
    "request-password-reset",
    "confirm-password-reset",
    "request-verification",
    "confirm-verification",
    "request-email-change",
    "confirm-email-change",
)
#: PocketBase's rate-limit tags → the gateway's operation names.
_TAGS = {
    "authWithPassword": "auth-with-password",
    "authRefresh": "auth-refresh",
    "authWithOTP": "auth-with-otp",
    "requestOTP": "request-otp",
    "authWithOAuth2": "auth-with-oauth2",
    "requestPasswordReset": "request-password-reset",
    "confirmPasswordReset": "confirm-password-reset",
    "requestVerification": "request-verification",
    "confirmVerification": "confirm-verification",
    "requestEmailChange": "request-email-change",
    "confirmEmailChange": "confirm-email-change",
    "listAuthMethods": "auth-methods",
}
OPERATIONS = frozenset(
    {"*", "list", "view", "create", "update", "delete", "file", "auth", "auth-methods", "impersonate"}
    | set(_AUTH_ACTIONS)
)
#: Labels of the routes that belong to no collection.
STANDALONE = frozenset({"batch", "realtime", "files-token", "health", "extension"})
_COLLECTION = re.compile(r"^(\*|[A-Za-z0-9_]+)$")


@dataclass(frozen=True)
class RateRule:
    """One budget: at most ``max`` requests in any ``duration_ms`` window, per ``per`` key, for
    the requests ``label`` matches."""

    name: str  #: the metric label (``hapta_ratelimited_total{rule}``)
    label: str  #: normalised: ``*``, ``collection:operation`` or a standalone label
    max: int
    duration_ms: int
    per: str  #: ip | user | global
    message: str


@dataclass(frozen=True)
class RateLimits:
    """Every enabled rule (the default rule first, when enabled)."""

    rules: tuple[RateRule, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)


def parse_ratelimits(data: dict[str, Any], source: str = "config") -> RateLimits:
    """The rules of a `hapta.yaml` mapping (only the keys in ``KEYS`` are read)."""
    warnings: list[str] = []
    default = data.get("ratelimit")
    old = data.get("rate_limit")
    if old is not None:
        if default is not None:
            raise ConfigError(f"{source}: use either ratelimit or the deprecated rate_limit, not both")
        old = _mapping(old, f"{source}: rate_limit")
        default = dict(old)
        if "Duration" in old:
            seconds = _int(old, "Duration", 1, f"{source}: rate_limit")
            default["Duration"] = seconds * 1000
        warnings.append(
            f"{source}: rate_limit is deprecated: write ratelimit with Duration in milliseconds "
            f"(read as ratelimit: Duration {default.get('Duration', 60000)})"
        )
    rules: list[RateRule] = []
    message = DEFAULT_MESSAGE
    if default is not None:
        where = f"{source}: ratelimit"
        section = _mapping(default, where)
        _known(section, {"Max", "Duration", "IP", "isEnabled", "Message"}, where)
        message = _str(section, "Message", DEFAULT_MESSAGE, where)
        if _bool(section, "isEnabled", True, where):
            per_ip = _bool(section, "IP", True, where)
            rules.append(
                RateRule(
                    name="default",
                    label="*",
                    max=_int(section, "Max", 1, where, 10),
                    duration_ms=_int(section, "Duration", 1, where, 60000),
                    per="ip" if per_ip else "global",
                    message=message,
                )
            )
    extra = data.get("ratelimits")
    if extra is not None:
        if not isinstance(extra, list):
            raise ConfigError(f"{source}: ratelimits must be a list of rules")
        for i, item in enumerate(extra):
            rule = _rule(item, f"{source}: ratelimits[{i}]", message)
            if rule is not None:
                rules.append(rule)
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{source}: two rate-limit rules are named {name!r} (give one a Name)")
    return RateLimits(tuple(rules), tuple(warnings))


def check_collections(limits: RateLimits, exposed: set[str]) -> None:
    """A rule that names a collection the gateway does not expose would never apply: a
    ``ConfigError`` (a typo, or a schema change that needs the config changed too)."""
    for rule in limits.rules:
        collection, sep, _ = rule.label.partition(":")
        if sep and collection != "*" and collection not in exposed:
            raise ConfigError(
                f"ratelimits: rule {rule.name!r} names {collection!r}, which is not an exposed "
                "collection of the schema"
            )


def normalize_label(label: str, where: str) -> str:
    """``*``, ``collection:operation`` (tags spelled as PocketBase does are accepted) or a
    standalone label; anything else is a ``ConfigError``."""
    text = label.strip()
    if text == "*" or text in STANDALONE:
        return text
    collection, sep, operation = text.partition(":")
    operation = _TAGS.get(operation, operation)
    if not sep or not _COLLECTION.match(collection) or operation not in OPERATIONS:
        raise ConfigError(
            f"{where}: Label {label!r} is not '*', '<collection|*>:<operation>' "
            f"(operations: {', '.join(sorted(OPERATIONS - {'*'}))}) or one of "
            f"{', '.join(sorted(STANDALONE))}"
        )
    return f"{collection}:{operation}"


def _rule(item: object, where: str, message: str) -> RateRule | None:
    section = _mapping(item, where)
    _known(section, {"Name", "Label", "Max", "Duration", "Per", "isEnabled", "Message"}, where)
    if "Label" not in section or "Max" not in section or "Duration" not in section:
        raise ConfigError(f"{where}: a rule needs Label, Max and Duration")
    if not _bool(section, "isEnabled", True, where):
        return None
    label = normalize_label(_str(section, "Label", "", where), where)
    per = _str(section, "Per", "ip", where)
    if per not in PER:
        raise ConfigError(f"{where}: Per must be one of {', '.join(PER)}")
    return RateRule(
        name=_str(section, "Name", f"{label}/{per}", where),
        label=label,
        max=_int(section, "Max", 1, where),
        duration_ms=_int(section, "Duration", 1, where),
        per=per,
        message=_str(section, "Message", message, where),
    )


def _mapping(value: object, where: str) -> dict[str, Any]:
    """A section; an empty key (``Max:``) means its default, as everywhere in `hapta.yaml`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return {k: v for k, v in value.items() if v is not None}


def _known(section: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(section) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")


def _int(section: dict[str, Any], key: str, low: int, where: str, default: int | None = None) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    if value < low:
        raise ConfigError(f"{where}: {key!r} must be at least {low}")
    return value


def _bool(section: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _str(section: dict[str, Any], key: str, default: str, where: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    return value
