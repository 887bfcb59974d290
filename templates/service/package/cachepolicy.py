"""What may be cached, under which key and tags, and what a write invalidates (DESIGN §3.2, §4).

Key: the path, the query pairs as PocketBase's Go reads them (sorted by name, values of one name
kept in order), the ``Origin`` header (PocketBase's CORS answer depends on it) and the scope.

Scope: the exact credential, a hash of every ``Authorization`` value (``b""`` without one).
Entries are filled only under the caller's own scope, so the ones without a credential are the
shared ones; an authenticated caller also reads those, but only when PocketBase would send it the
same bytes: the collection's rule for the operation and every expanded collection's view rule
are ``""``, the filter and sort stay within the collection (through a relation PocketBase applies
the rules of the collections reached), no auth collection is in the answer (PocketBase shows an auth record's ``email`` to
its owner), and the token says it belongs to an exposed auth collection (a superuser sees hidden
fields). That claim is unverified, and it only ever narrows what is shared.

Tags (strings): ``col:<name>`` on every entry whose bytes depend on a whole collection (its lists,
anything expanding into it, view collections reading it); ``rec:<name>:<id>`` and ``all:<name>``
on a record's own view; ``col:*`` on entries that may depend on anything (a rule or filter that
reaches into other collections, a view that reads what cannot be told); ``scoped`` on every
credential-scoped entry (dropped whenever an auth record may have changed: a token may have
been revoked).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from operator import itemgetter

import orjson

from .asgi import Scope
from .catalog import BY_NAME, COLLECTIONS, EXCLUDED
from .gorequest import Unreadable, query_pairs
from .routing import Route
from .spec import CollectionSpec

READS = frozenset({"records.list", "records.view"})
RECORD_WRITES = frozenset({"records.create", "records.update", "records.delete"})
#: Auth actions that never write the auth record (PocketBase issues a token, or sends a mail and
#: keeps what it needs in its own system collections): they invalidate nothing. Every other auth
#: action (``confirm-*``, ``auth-with-otp`` marks verified, ``auth-with-oauth2`` may create or
#: update, ``impersonate``) counts as a write to the auth collection.
READ_ONLY_AUTH = frozenset(
    {
        "auth.auth-with-password",
        "auth.auth-refresh",
        "auth.request-otp",
        "auth.request-password-reset",
        "auth.request-verification",
        "auth.request-email-change",
        "auth.methods",
    }
)
ANY = "col:*"
SCOPED = "scoped"
#: Anything in a filter or rule that is not a plain field of the collection itself: a relation
#: path, a macro (``@now`` changes with time, ``@request.headers`` with the caller), ``@collection``,
#: a back-relation even without a dot (``comments_via_post:length``, ``comments_via_post:each``:
#: its answer depends on the records, and the rules, of the collection it reaches).
_REACHES = re.compile(r"[.@]|_via_")
#: Macros whose value is not fixed by the key and the credential: never cached.
_UNCACHEABLE = re.compile(r"@(?!request\.auth\b|request\.query\b|request\.method\b|collection\.)")
#: Tokens of these collections may share guests' answers; never ``_superusers`` (hidden fields).
_AUTH_IDS = frozenset(c.id for c in COLLECTIONS if c.kind == "auth" and not c.name.startswith("_"))


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How one cacheable read is looked up and stored."""

    key: tuple[object, ...]
    #: The shared entry this authenticated caller may read too, or ``None``.
    shared: tuple[object, ...] | None
    tags: frozenset[str]
    #: Seconds the answer's collections want it kept (``hapta.yaml``'s ``cache: collections``),
    #: ``None``: the cache's default.
    ttl: float | None = None


def key_size(plan: ReadPlan) -> int:
    """About the bytes ``plan.key`` holds (path, query pairs, ``Origin``, credential), for the
    store's byte bound."""
    path, pairs, origin, credential = plan.key
    assert isinstance(path, str) and isinstance(pairs, tuple)
    assert isinstance(origin, bytes | None) and isinstance(credential, bytes)
    query = sum(len(k) + len(v) + 16 for k, v in pairs)
    return len(path) + query + len(origin or b"") + len(credential) + 64


def read_plan(route: Route, scope: Scope) -> ReadPlan | None:
    """The plan for a GET list/view, or ``None`` when it must not be cached."""
    origins: list[bytes] | None = None
    credentials: list[bytes] | None = None
    for name, value in scope["headers"]:  # one pass: a cache hit's largest cost was here
        if name == b"authorization":
            credentials = [value] if credentials is None else [*credentials, value]
        elif name == b"origin":
            origins = [value] if origins is None else [*origins, value]
    origin = None if origins is None else b"\n".join(origins)
    if origin is not None and len(origin) > MAX_ORIGIN:
        return None  # a real one is a scheme and a host: this one would only make keys large
    path: str = scope["path"]
    query: bytes = scope["query_string"]
    memo = (path, query, origin)
    static = _STATIC.get(memo, _UNKNOWN)
    if static is _UNKNOWN:
        static = _static(route, _pairs(query), path, origin)
        if len(path) + len(query) + len(origin or b"") <= _MEMO_LENGTH:
            if len(_STATIC) >= _MEMO_SIZE:
                _STATIC.clear()
            _STATIC[memo] = static
    if not isinstance(static, _Static):
        return None
    guest = static.guest
    if credentials is None:
        return guest
    credential, regular = _caller(credentials)
    shared = guest.key if static.shareable and regular else None
    return ReadPlan(static.base + (credential,), shared, static.scoped_tags, guest.ttl)


#: ``_caller`` by ``Authorization`` value: a signed-in caller's next requests skip the hash and
#: the token's decoding. Bounded like ``_STATIC`` (entries, and the length of a value kept).
_CALLERS: dict[bytes, tuple[bytes, bool]] = {}
_CALLERS_SIZE = 4096
_CALLER_LENGTH = 4096


def _caller(values: list[bytes]) -> tuple[bytes, bool]:
    """The caller's scope (``_credential``) and whether it is a regular user (``_regular_user``),
    both functions of the ``Authorization`` values alone."""
    if len(values) != 1:
        return _credential(values), False
    value = values[0]
    found = _CALLERS.get(value)
    if found is None:
        found = (_credential(values), _regular_user(values))
        if len(value) <= _CALLER_LENGTH:
            if len(_CALLERS) >= _CALLERS_SIZE:
                _CALLERS.clear()
            _CALLERS[value] = found
    return found


@dataclass(frozen=True, slots=True)
class _Static:
    """What a request's plan owes to the request alone, not to the caller."""

    base: tuple[object, ...]
    tags: frozenset[str]
    scoped_tags: frozenset[str]
    #: An authenticated caller gets the same bytes as a guest (if a regular user).
    shareable: bool
    #: The plan of a caller without a credential (made once: the guests' key is the shared one).
    guest: ReadPlan


#: The longest ``Origin`` an answer is cached under (a longer one passes through uncached).
MAX_ORIGIN = 256

_STATIC: dict[tuple[str, bytes, bytes | None], _Static | None] = {}
_UNKNOWN = object()
_MEMO_SIZE = 4096
_MEMO_LENGTH = 1024


def _pairs(query: bytes) -> list[tuple[str, str]] | None:
    try:
        return query_pairs(query, strict=True)
    except Unreadable:
        return None


def _static(
    route: Route, pairs: list[tuple[str, str]] | None, path: str, origin: bytes | None
) -> _Static | None:
    spec = route.collection
    if spec is None or pairs is None:
        return None
    expanded = _expanded(spec, [v for k, v in pairs if k == "expand"])
    if expanded is None:
        return None
    involved = [spec, *expanded]
    if not all(c.cache for c in involved):
        return None  # ``hapta.yaml`` keeps one of them out of the cache
    ttls = [c.cache_ttl for c in involved if c.cache_ttl is not None]
    ttl = min(ttls) if ttls else None
    if ttl == 0:
        return None
    listing = route.name == "records.list"
    rules = [spec.rules.list if listing else spec.rules.view]
    rules += [e.rules.view for e in expanded]
    filters = [v for k, v in pairs if k in ("filter", "sort")]
    if any(_UNCACHEABLE.search(text) for text in filters):
        return None
    if any(rule and _UNCACHEABLE.search(rule) for rule in rules):
        return None
    tags = set(DEPENDS[spec.name] if listing else _record_tags(spec, route.record_id))
    for target in expanded:
        tags |= DEPENDS[target.name]
    reaches = any(_REACHES.search(text) for text in filters)
    if reaches or any(rule for rule in rules):
        tags.add(ANY)
    shareable = (
        all(rule == "" for rule in rules)
        # a filter or sort through a relation applies the rules of what it reaches
        # (``author.attachments_via_owner.title``): its answer depends on the caller
        and not reaches
        and spec.kind != "auth"
        and all(e.kind != "auth" for e in expanded)
    )
    base = (path, tuple(sorted(pairs, key=itemgetter(0))), origin)
    guest = ReadPlan(base + (b"",), None, frozenset(tags), ttl)
    return _Static(base, guest.tags, frozenset(tags | {SCOPED}), shareable, guest)


def write_tags(route: Route) -> frozenset[str] | None:
    """The tags a write may make stale (``None``: everything)."""
    spec = route.collection
    if spec is None or route.name not in RECORD_WRITES and not route.name.startswith("auth."):
        return None
    return change_tags(spec.name, route.record_id, delete=route.name == "records.delete")


def change_tags(collection: str, record_id: str, *, delete: bool = False) -> frozenset[str]:
    """The tags a change to one record (or, without ``record_id``, to some records) of
    ``collection`` may make stale; the collection need not be exposed (``_superusers``, one a
    view reads)."""
    tags = {ANY, "col:" + collection}
    if record_id:
        tags.add(f"rec:{collection}:{record_id}")
    if delete:
        # PocketBase unsets (or cascades to) the records that point at the deleted one.
        for name in REFERRERS.get(collection, ()):
            tags |= {"col:" + name, "all:" + name}
    spec = BY_NAME.get(collection)
    if spec is None or spec.kind == "auth":
        # A token may have been revoked (an auth record, ``_superusers``, or a collection this
        # gateway does not know the kind of: system ones hold MFA, OTP and OAuth2 links).
        tags |= {"all:" + collection, SCOPED}
    return frozenset(tags)


def _record_tags(spec: CollectionSpec, record_id: str) -> set[str]:
    tags = {f"rec:{spec.name}:{record_id}", "all:" + spec.name}
    return tags | (DEPENDS[spec.name] - {"col:" + spec.name})


def _expanded(spec: CollectionSpec, values: list[str]) -> list[CollectionSpec] | None:
    """Every collection reached through the ``expand`` paths; ``None`` if one cannot be told."""
    out: list[CollectionSpec] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            current = spec
            for segment in item.split("."):
                found = current.expand_by_key.get(segment.strip())
                target = BY_NAME.get(found.target) if found is not None else None
                if target is None:
                    return None
                current = target
                out.append(target)
    return out


def _credential(values: list[bytes]) -> bytes:
    """The scope of the caller sending these ``Authorization`` values (every one of them)."""
    return hashlib.blake2b(b"\n".join(values), digest_size=20).digest()


def _regular_user(values: list[bytes]) -> bool:
    """The (unverified) token says: an auth record of an exposed collection, not a superuser."""
    if len(values) != 1:
        return False
    token = values[0].removeprefix(b"Bearer ").strip()
    parts = token.split(b".")
    if len(parts) != 3:
        return False
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return False
    return (
        isinstance(claims, dict)
        and claims.get("type") == "auth"
        and claims.get("collectionId") in _AUTH_IDS
    )


def _depends() -> dict[str, frozenset[str]]:
    """Per collection, the tags its bytes depend on (a view: the collections it reads, through
    other views too; an unknown or unexposed source: anything)."""
    out: dict[str, frozenset[str]] = {}
    for spec in COLLECTIONS:
        tags: set[str] = set()
        todo, seen = list(spec.depends_on), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            source = BY_NAME.get(name)
            if name == "*" or name in EXCLUDED or source is None:
                tags.add(ANY)
            elif source.kind == "view" and source is not spec:
                todo.extend(source.depends_on)
            else:
                tags.add("col:" + source.name)
        out[spec.name] = frozenset(tags)
    return out


def _referrers() -> dict[str, frozenset[str]]:
    """Per collection, the collections whose records point at it, directly or in a chain."""
    direct: dict[str, set[str]] = {c.name: set() for c in COLLECTIONS}
    for spec in COLLECTIONS:
        for field in spec.fields:
            if field.type == "relation" and field.target in direct:
                direct[field.target].add(spec.name)
    out: dict[str, frozenset[str]] = {}
    for name in direct:
        found: set[str] = set()
        todo = list(direct[name])
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend(direct[current])
        out[name] = frozenset(found)
    return out


DEPENDS = _depends()
REFERRERS = _referrers()
