"""Rate-limit rules at run time: which rules apply to a route, and under which key a caller counts.

The rules themselves are generated from ``hapta.yaml`` into ``ratelimit_rules.py``. A label is
``*`` (every route, an extension's too), ``<collection|*>:<operation>`` or a standalone label
(``batch``, ``realtime``, ``files-token``, ``health``, ``extension``: the extensions' routes); ``auth`` as an operation is every POST auth
endpoint, as PocketBase's ``*:auth`` tag. Every rule that matches a request must allow it.
A CORS preflight (``OPTIONS``) is not the operation it asks about: only ``*`` rules count it
(a browser sends one before a cross-origin login, and it must not spend the login's budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .routing import AUTH_ACTIONS, Route

_RECORDS = {
    "records.list": "list",
    "records.view": "view",
    "records.create": "create",
    "records.update": "update",
    "records.delete": "delete",
    "files.download": "file",
    "auth.methods": "auth-methods",
    "auth.impersonate": "impersonate",
}
_STANDALONE = {
    "batch": "batch",
    "realtime.connect": "realtime",
    "realtime.subscribe": "realtime",
    "files.token": "files-token",
    "health": "health",
    "extension": "extension",
}


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """At most ``max`` requests in any ``window_ms`` window, per key (``per``: ip, user or
    global), for the requests ``label`` matches; refused with ``message``."""

    name: str
    label: str
    max: int
    window_ms: int
    per: str
    message: str

    #: The ``RateLimit-Limit`` header of every response the rule limits.
    limit_header: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit_header", (b"ratelimit-limit", b"%d" % self.max))


def operation(route: Route) -> str:
    """The route's operation name as a label spells it (``list``, ``auth-with-password``...)."""
    if route.name in _RECORDS:
        return _RECORDS[route.name]
    if route.name.startswith("auth."):
        return route.name[5:]
    return _STANDALONE.get(route.name, route.name)


def matches(rule: RuleSpec, route: Route) -> bool:
    if rule.label == "*":
        return True
    if route.collection is None:
        return rule.label == _STANDALONE.get(route.name)
    collection, _, op = rule.label.partition(":")
    if collection not in ("*", route.collection.name):
        return False
    actual = operation(route)
    return op in ("*", actual) or (op == "auth" and actual in AUTH_ACTIONS)


class Rules:
    """The rules, looked up per (route, collection) once and kept."""

    def __init__(self, rules: tuple[RuleSpec, ...]) -> None:
        self.rules = rules
        self.per_user = any(r.per == "user" for r in rules)
        #: Some rule names a collection's operation (``posts:create``): a batch's items count.
        self.per_operation = any(":" in r.label for r in rules)
        self._cache: dict[tuple[str, str], tuple[RuleSpec, ...]] = {}
        #: What a CORS preflight counts against: the rules of every request.
        self.preflight = tuple(r for r in rules if r.label == "*")

    def __bool__(self) -> bool:
        return bool(self.rules)

    def for_route(self, route: Route, preflight: bool = False) -> tuple[RuleSpec, ...]:
        if preflight:
            return self.preflight
        key = (route.name, route.collection.name if route.collection is not None else "")
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = tuple(r for r in self.rules if matches(r, route))
        return found
