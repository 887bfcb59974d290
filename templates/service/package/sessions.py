"""Rolling-key sessions: where the gateway keeps PocketBase's tokens, by the hash of its own keys.

In ``rolling`` mode (``hapta.yaml``'s ``sessions``, or ``HAPTA_SESSIONS``) a client never holds a
PocketBase token. Each successful auth call starts a session *family* holding PocketBase's token;
the client gets a session key (``new_key``) whose SHA-256 (``key_hash``) names the family. Every
refresh rotates the key: the family's current key is marked rotated (it still works for the grace
window, for requests already in flight) and a new key becomes current. A rotated key presented
after the grace window is a stolen or replayed key: the whole family is revoked (``REUSED``).

The stores never hold a raw key, only its hash (the session layer remembers, in its process's
memory alone, the hashes of the keys it saw lately: ``layers.session``). ``MemoryStore`` serves
one process;
``RedisStore`` (``HAPTA_REDIS_URL``, Valkey or Redis) is shared by every node and survives a
gateway restart; each of its operations is one Lua script, so concurrent nodes see it whole.
File tokens (``POST /api/files/token``) are kept the same way, without rotation.

Every request's key is looked up in the store itself: there is no local copy of what a key stands
for, even with Valkey/Redis, though one would make a lookup nearly free. A copy is safe only if
every node drops it before a logout, a rotation or a reuse revocation returns, and Redis offers no
such guarantee: pub/sub delivers at most once without acknowledgement (``PUBLISH`` counts the
connections a message was queued for, not the nodes that acted on it), so a node whose subscriber
connection is lagging or briefly down would serve a revoked key; client-side caching
(``CLIENT TRACKING``) has the same gap. And a lookup is not a pure read: a rotated key presented
past the grace window revokes its family, which the store decides atomically against the time
the key was rotated there. So the lookup stays one Lua call a request, made cheap instead: it
goes through ``resp.FastRedis`` (pipelined, one socket write for every lookup of a loop turn).
Measured (``bench/sessions.py``, a signed-in record view that is a cache hit, requests per
gateway CPU-second, medians of 3 interleaved rounds on a busy 2-core machine): with redis-py
0.34 of passthrough, with ``FastRedis`` 0.73; in process 0.85-0.87 (a lookup is ~2.5 µs of the
layer; the rest of the gap is outside it).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from .resp import Arg, FastRedis, ReplyError, redis_py

#: ``resolve`` outcomes besides a token.
UNKNOWN = "unknown"
REUSED = "reused"

_KEY_HEADER = base64.urlsafe_b64encode(b'{"alg":"none","typ":"hapta-session"}').rstrip(b"=")
#: The PocketBase token claims a session key repeats, so SDKs (which read ``exp`` to tell
#: whether they are logged in) see the session as PocketBase's own token would show it.
_CLAIMS = ("collectionId", "exp", "id", "refreshable", "type")


class StoreUnavailable(Exception):
    """The shared store (Valkey/Redis) did not answer."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a key stands for: PocketBase's token, or ``UNKNOWN`` / ``REUSED`` (token empty)."""

    token: str = ""
    outcome: str = "ok"
    #: ``token`` as bytes, for the ``Authorization`` header (made once, not per request).
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.token and not self.raw:
            object.__setattr__(self, "raw", self.token.encode())


_UNKNOWN = Resolved(outcome=UNKNOWN)
_REUSED = Resolved(outcome=REUSED)


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a PocketBase JWT, unverified (only copied into the key and read for
    ``exp``); ``{}`` when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def new_key(claims: dict[str, Any]) -> str:
    """A fresh session key: 32 random bytes (urlsafe) carried in a JWT-shaped envelope whose
    readable middle part repeats the token's public claims (``exp``...), so SDKs that check a
    token's expiry work unchanged. Only the whole key's hash is looked up: an edited claim is
    an unknown key."""
    shown = {k: claims[k] for k in _CLAIMS if k in claims}
    payload = base64.urlsafe_b64encode(orjson.dumps(shown)).rstrip(b"=")
    return f"{_KEY_HEADER.decode()}.{payload.decode()}.{secrets.token_urlsafe(32)}"


def new_file_key() -> str:
    """A stand-in for a PocketBase file token (``?token=`` of a protected file)."""
    return secrets.token_urlsafe(32)


def bare_key(value: bytes) -> bytes:
    """The credential of an ``Authorization`` value: a ``Bearer`` prefix (any case) and spaces
    around dropped. The session layer reads keys this way, and the rate limits read every
    credential so (a spelling PocketBase would not take only ever counts against its user)."""
    value = value.strip()
    if value[:1] in b"Bb" and value[:7].lower() == b"bearer ":
        value = value[7:].strip()
    return value


def key_hash(key: str | bytes) -> str:
    data = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(data).hexdigest()


class SessionStore(Protocol):
    """Session families by key hash. ``now`` and ``ttl`` are seconds; writes return the number
    of live sessions (for ``hapta_sessions_active``), or ``None`` when nothing was done."""

    async def create(self, key: str, token: str, ttl: float, now: float) -> int: ...

    async def resolve(self, key: str, now: float, grace: float) -> Resolved: ...

    async def rotate(
        self, old: str, new: str, token: str, ttl: float, now: float
    ) -> int | None: ...

    async def revoke(self, key: str) -> int | None: ...

    async def alive(self, key: str, now: float) -> bool:
        """Whether ``key``'s family still lives (rotated or not); never revokes anything."""
        ...

    async def put_file(self, key: str, token: str, ttl: float, now: float) -> None: ...

    async def get_file(self, key: str, now: float) -> str | None: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Key:
    family: str
    expires: float
    rotated: float | None = None


@dataclass(slots=True)
class _Family:
    token: str
    current: str
    expires: float
    #: What a live key of the family resolves to (made once per token, not per lookup).
    found: Resolved = Resolved()
    #: The hashes of its keys still kept, oldest first (the current one last).
    keys: list[str] = field(default_factory=list)


#: Sessions (families) one process keeps by default (``HAPTA_SESSIONS_MAX``).
MAX_SESSIONS = 100_000
#: Keys kept per family: the current one and the last rotated ones. An older key is forgotten:
#: presented again it is unknown (401) rather than revoking its family.
KEYS_PER_FAMILY = 8


class MemoryStore:
    """The store of one process (the default): dicts, expired entries dropped as time passes,
    and bounded: past ``max_sessions`` families (``HAPTA_SESSIONS_MAX``) a login evicts the
    session least recently logged in or refreshed (its key is then unknown: a 401, the client
    logs in again); a family keeps its last ``KEYS_PER_FAMILY`` keys; file keys are bounded by
    ``max_sessions`` too."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max(1, max_sessions)
        self._keys: dict[str, _Key] = {}
        self._families: dict[str, _Family] = {}  # least recently logged in or refreshed first
        self._files: dict[str, tuple[str, float]] = {}
        self._expiry: list[tuple[float, int, str]] = []  # (when, kind, id): 0 key, 1 family, 2 file

    async def create(self, key: str, token: str, ttl: float, now: float) -> int:
        self._prune(now)
        while len(self._families) >= self.max_sessions:
            self._drop(next(iter(self._families)))
        family = secrets.token_hex(16)
        self._families[family] = _Family(token, key, now + ttl, Resolved(token), [key])
        self._keys[key] = _Key(family, now + ttl)
        self._expire(now + ttl, 1, family)
        self._expire(now + ttl, 0, key)
        return len(self._families)

    async def resolve(self, key: str, now: float, grace: float) -> Resolved:
        return self.resolve_now(key, now, grace)

    def resolve_now(self, key: str, now: float, grace: float) -> Resolved:
        """``resolve`` without a coroutine (nothing here waits): what the session layer calls
        on every request when the store is this one."""
        entry = self._keys.get(key)
        if entry is None or entry.expires <= now:
            return _UNKNOWN
        family = self._families.get(entry.family)
        if family is None or family.expires <= now:
            return _UNKNOWN
        if family.current == key or (entry.rotated is not None and now - entry.rotated <= grace):
            return family.found
        self._drop(entry.family)
        return _REUSED

    async def rotate(self, old: str, new: str, token: str, ttl: float, now: float) -> int | None:
        self._prune(now)
        entry = self._keys.get(old)
        family = self._families.get(entry.family) if entry is not None else None
        if entry is None or family is None:
            return None  # revoked while PocketBase was answering
        current = self._keys.get(family.current)
        if current is not None and current.rotated is None:
            current.rotated = now
        family.token, family.current, family.expires = token, new, now + ttl
        family.found = Resolved(token)
        self._families[entry.family] = self._families.pop(entry.family)  # now the most recent
        self._keys[new] = _Key(entry.family, now + ttl)
        family.keys.append(new)
        if len(family.keys) > KEYS_PER_FAMILY:
            self._keys.pop(family.keys.pop(0), None)
        self._expire(now + ttl, 1, entry.family)
        self._expire(now + ttl, 0, new)
        return len(self._families)

    async def revoke(self, key: str) -> int | None:
        entry = self._keys.get(key)
        if entry is None or entry.family not in self._families:
            return None
        self._drop(entry.family)
        return len(self._families)

    async def alive(self, key: str, now: float) -> bool:
        entry = self._keys.get(key)
        if entry is None or entry.expires <= now:
            return False
        family = self._families.get(entry.family)
        return family is not None and family.expires > now

    def _drop(self, name: str) -> None:
        """Forget a family and its keys (revoked, reused, or evicted)."""
        family = self._families.pop(name)
        for key in family.keys:
            self._keys.pop(key, None)

    async def put_file(self, key: str, token: str, ttl: float, now: float) -> None:
        self._prune(now)
        while len(self._files) >= self.max_sessions:
            del self._files[next(iter(self._files))]
        when = now + ttl
        self._files[key] = (token, when)
        self._expire(when, 2, key)

    async def get_file(self, key: str, now: float) -> str | None:
        found = self._files.get(key)
        return found[0] if found is not None and found[1] > now else None

    async def aclose(self) -> None:
        return None

    def _expire(self, when: float, kind: int, name: str) -> None:
        heap = self._expiry
        heapq.heappush(heap, (when, kind, name))
        if len(heap) > 4 * (len(self._keys) + len(self._families) + len(self._files)) + 1024:
            # mostly entries of what was dropped or extended since: made again from what lives
            heap[:] = [
                *((k.expires, 0, n) for n, k in self._keys.items()),
                *((f.expires, 1, n) for n, f in self._families.items()),
                *((f[1], 2, n) for n, f in self._files.items()),
            ]
            heapq.heapify(heap)

    def _prune(self, now: float) -> None:
        """Drop what has expired (an entry extended since it was queued is kept)."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, kind, name = heapq.heappop(heap)
            if kind == 0:
                key = self._keys.get(name)
                if key is not None and key.expires <= now:
                    del self._keys[name]
            elif kind == 1:
                family = self._families.get(name)
                if family is not None and family.expires <= now:
                    del self._families[name]
            else:
                file = self._files.get(name)
                if file is not None and file[1] <= now:
                    del self._files[name]


# The Redis layout, under a prefix: ``k:<hash>`` (hash: family, rotated-at), ``f:<family>``
# (hash: token, current key hash), ``active`` (sorted set: family by expiry), ``t:<hash>``
# (a file token). Times are milliseconds.
_CREATE = """
local p, fam, key, token, ttl, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('HSET', p..'f:'..fam, 'token', token, 'cur', key)
redis.call('PEXPIRE', p..'f:'..fam, ttl)
redis.call('HSET', p..'k:'..key, 'fam', fam)
redis.call('PEXPIRE', p..'k:'..key, ttl)
redis.call('ZADD', p..'active', now + ttl, fam)
redis.call('ZREMRANGEBYSCORE', p..'active', '-inf', now)
return redis.call('ZCARD', p..'active')
"""
_RESOLVE = """
local p, key, now, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local entry = redis.call('HMGET', p..'k:'..key, 'fam', 'rot')
if not entry[1] then return {0} end
local fk = p..'f:'..entry[1]
local fam = redis.call('HMGET', fk, 'token', 'cur')
if not fam[1] then return {0} end
if fam[2] == key or (entry[2] and now - tonumber(entry[2]) <= grace) then return {1, fam[1]} end
redis.call('DEL', fk)
redis.call('ZREM', p..'active', entry[1])
return {2}
"""
_ROTATE = """
local p, old, new, token, ttl, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local fam = redis.call('HGET', p..'k:'..old, 'fam')
if not fam then return -1 end
local fk = p..'f:'..fam
local cur = redis.call('HGET', fk, 'cur')
if not cur then return -1 end
redis.call('HSETNX', p..'k:'..cur, 'rot', now)
redis.call('HSET', fk, 'token', token, 'cur', new)
redis.call('PEXPIRE', fk, ttl)
redis.call('HSET', p..'k:'..new, 'fam', fam)
redis.call('PEXPIRE', p..'k:'..new, ttl)
redis.call('ZADD', p..'active', now + ttl, fam)
redis.call('ZREMRANGEBYSCORE', p..'active', '-inf', now)
return redis.call('ZCARD', p..'active')
"""
_ALIVE = """
local p, key = ARGV[1], ARGV[2]
local fam = redis.call('HGET', p..'k:'..key, 'fam')
if not fam then return 0 end
return redis.call('EXISTS', p..'f:'..fam)
"""
_REVOKE = """
local p, key = ARGV[1], ARGV[2]
local fam = redis.call('HGET', p..'k:'..key, 'fam')
if not fam then return -1 end
if redis.call('DEL', p..'f:'..fam) == 0 then return -1 end
redis.call('ZREM', p..'active', fam)
return redis.call('ZCARD', p..'active')
"""


class RedisStore:
    """Sessions in Valkey/Redis, shared by every gateway node (``HAPTA_REDIS_URL``)."""

    def __init__(self, url: str, prefix: str = "hapta:s:", timeout: float = 1.0) -> None:
        #: The lookup every request makes goes through ``resp.FastRedis`` (pipelined, a fraction
        #: of redis-py's cost); the rarer writes through redis-py.
        self._fast = FastRedis(url, timeout)
        self._resolve_sha = hashlib.sha1(_RESOLVE.encode()).hexdigest()
        self._redis: Any = redis_py(url, timeout, decode_responses=True)
        self._prefix = prefix
        self._create = self._redis.register_script(_CREATE)
        self._rotate = self._redis.register_script(_ROTATE)
        self._revoke = self._redis.register_script(_REVOKE)
        self._alive = self._redis.register_script(_ALIVE)

    async def create(self, key: str, token: str, ttl: float, now: float) -> int:
        fam = secrets.token_hex(16)
        args = (self._prefix, fam, key, token, _ms(ttl), _ms(now))
        return int(await self._call(self._create, args))

    async def resolve(self, key: str, now: float, grace: float) -> Resolved:
        args: list[Arg] = [self._prefix, key, _ms(now), _ms(grace)]
        try:
            found = await self._fast.evalsha(self._resolve_sha, _RESOLVE, [], args)
        except (ReplyError, OSError) as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from None
        if found[0] == 1:
            return Resolved(found[1].decode(), raw=found[1])
        return Resolved(outcome=REUSED if found[0] == 2 else UNKNOWN)

    async def rotate(self, old: str, new: str, token: str, ttl: float, now: float) -> int | None:
        args = (self._prefix, old, new, token, _ms(ttl), _ms(now))
        count = int(await self._call(self._rotate, args))
        return None if count < 0 else count

    async def revoke(self, key: str) -> int | None:
        count = int(await self._call(self._revoke, (self._prefix, key)))
        return None if count < 0 else count

    async def alive(self, key: str, now: float) -> bool:
        return int(await self._call(self._alive, (self._prefix, key))) == 1

    async def put_file(self, key: str, token: str, ttl: float, now: float) -> None:
        try:
            await self._redis.set(f"{self._prefix}t:{key}", token, px=_ms(ttl))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None

    async def get_file(self, key: str, now: float) -> str | None:
        try:
            found = await self._redis.get(f"{self._prefix}t:{key}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return str(found) if found is not None else None

    async def aclose(self) -> None:
        await self._fast.aclose()
        await self._redis.aclose()

    async def _call(self, script: Any, args: tuple[object, ...]) -> Any:
        try:
            return await script(args=list(args))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def open_store(
    redis_url: str | None, timeout: float = 1.0, max_sessions: int = MAX_SESSIONS
) -> SessionStore:
    """Valkey/Redis when ``HAPTA_REDIS_URL`` is set (``timeout``: seconds a lookup may wait for
    its answer), else this process's memory, holding at most ``max_sessions`` sessions."""
    return RedisStore(redis_url, timeout=timeout) if redis_url else MemoryStore(max_sessions)
