"""Rate limits (``ratelimit_rules``): every rule that matches the route must allow the request,
or it is answered 429 in PocketBase's envelope with the rule's message and ``Retry-After``,
before its body is read or PocketBase is asked. Every response of a limited route carries
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` (seconds) of the tightest
rule. Counts live in this process or in Valkey/Redis (``limitstore``); when Valkey/Redis does
not answer, ``HAPTA_RATE_LIMIT_ON_REDIS_ERROR`` decides: ``open`` (serve, unlimited, with a
log line) or ``closed`` (503). In the chain only when there are rules and
``HAPTA_RATE_LIMIT_ENABLED`` is true.

Who a caller is. ``ip`` rules count the client address (``RequestState.client``: the peer, or
what a trusted proxy said), an IPv6 address by its /64 (``clientip.network_of``). ``global`` rules count everyone together. ``user`` rules count the
authenticated identity, but only one that PocketBase vouched for: the gateway cannot verify a
PocketBase token itself (the signing key is PocketBase's), and PocketBase treats an invalid
token as a guest rather than refusing it, so neither the token's claims nor a 2xx answer prove
anything; keying on either would let a caller mint a fresh budget per made-up token. So the
gateway learns identities from PocketBase's own answers: when an auth call through the gateway
(password, OTP, OAuth2, refresh, impersonate) succeeds, the token in the answer is remembered
(by its SHA-256, until it expires, in the store) as the record it authenticated
(``collectionId:id``). A request whose token is known counts as that user, every token of the
user sharing one budget; any other request (a guest, a made-up token, a token obtained from
PocketBase directly) counts as its client IP.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Awaitable
from time import monotonic
from typing import Any

import orjson

from .. import logs
from ..asgi import (
    STATE,
    ASGIApp,
    Charge,
    Headers,
    Message,
    Receive,
    RequestState,
    Scope,
    Send,
    add_headers,
    header,
    respond,
    take_back_headers,
)
from ..catalog import BY_NAME
from ..clientip import network_of
from ..errors import JSON_HEADERS, ApiError, envelope
from ..limitstore import (
    Decision,
    MemoryWindows,
    RedisWindows,
    StoreDown,
    TokenBook,
    redis_client,
)
from ..metrics import Metrics
from ..ratelimit import Rules, RuleSpec
from ..routing import BATCH, Route
from ..sessions import bare_key
from ..settings import Settings

#: Auth routes whose 200 answer carries a token and the record it authenticates.
_TOKEN_ROUTES = frozenset(
    {
        "auth.auth-with-password",
        "auth.auth-with-otp",
        "auth.auth-with-oauth2",
        "auth.auth-refresh",
        "auth.impersonate",
    }
)
#: Largest auth answer read for its token (they are a few KiB).
_MAX_AUTH_ANSWER = 256 * 1024
_TOKEN_TTL_MAX = 30 * 24 * 3600
_TOKEN_TTL_DEFAULT = 7 * 24 * 3600
UNAVAILABLE = "Rate limiting is unavailable; try again shortly."
_LOG_EVERY = 10.0  # seconds between two log lines about the store being down


class RateLimit:
    def __init__(
        self,
        app: ASGIApp,
        rules: Rules,
        windows: MemoryWindows | RedisWindows,
        book: TokenBook,
        metrics: Metrics,
        fail_open: bool,
    ) -> None:
        self.app = app
        self.rules = rules
        self.windows = windows
        self.book = book
        self.metrics = metrics
        self.fail_open = fail_open
        self.memory = windows if isinstance(windows, MemoryWindows) else None
        #: Counts in this process and no rule per user: most requests are decided in ``__call__``.
        self._plain = self.memory is not None and not rules.per_user
        self._logged = -_LOG_EVERY

    def around(self, app: ASGIApp) -> RateLimit:
        """The same limits (rules, counts, known tokens) in front of another app (the
        extensions' routers): a ``*`` rule counts its requests and ``/api/``'s together."""
        return RateLimit(app, self.rules, self.windows, self.book, self.metrics, self.fail_open)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Decides, then hands back the rest of the chain's awaitable: in the common case
        (counts in this process, one rule, none per user, not a batch) without a coroutine of
        its own, as a cache hit is cheap enough for one to show."""
        st: RequestState = scope[STATE]
        route = st.route
        memory = self.memory
        if self._plain and route is not BATCH:
            assert route is not None and memory is not None
            rules = self.rules.for_route(route, preflight=scope["method"] == "OPTIONS")
            if not rules:
                return self.app(scope, receive, send)
            if len(rules) == 1:
                rule = rules[0]
                key = rule.name + ("|ip:" + network_of(st.client) if rule.per == "ip" else "|*")
                remaining, reset_ms = memory.hit_one(
                    key, rule.max, rule.window_ms, monotonic() * 1000
                )
                if remaining < 0:
                    return self._refuse(scope, send, rule, Decision(False, 0, reset_ms))
                headers = _limit_headers(rule, remaining, reset_ms)
                return self.app(scope, receive, add_headers(scope, send, headers))
        return self._limit(scope, receive, send)

    async def _limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every other case: several rules, per-user keys, a batch, counts in Valkey/Redis."""
        st: RequestState = scope[STATE]
        route = st.route
        assert route is not None
        #: The RateLimit-* headers given to the response (a batch's item refused takes them back).
        given: Headers = []
        if route is BATCH and self.rules.per_operation:
            st.charge = self._charger(scope, "ip:" + network_of(st.client), given)
        rules = self.rules.for_route(route, preflight=scope["method"] == "OPTIONS")
        if rules:
            try:
                ip = "ip:" + network_of(st.client)
                user = ip
                if self.rules.per_user and any(r.per == "user" for r in rules):
                    user = await self._user(scope) or ip
                checks = self._checks(rules, ip, user)
                if self.memory is not None:  # no await: nothing to wait for
                    decisions = self.memory.hit_now(checks, monotonic() * 1000)
                else:
                    decisions = await self.windows.hit(checks)
            except StoreDown as exc:
                self._store_down(exc)
                if not self.fail_open:
                    headers = [*JSON_HEADERS, (b"retry-after", b"1")]
                    await respond(scope, send, 503, headers, envelope(503, UNAVAILABLE))
                    return
            else:
                if len(rules) == 1:
                    rule, decision = rules[0], decisions[0]
                    refused = [] if decision.allowed else [(rule, decision)]
                else:
                    refused = [
                        (r, d) for r, d in zip(rules, decisions, strict=True) if not d.allowed
                    ]
                    rule, decision = min(
                        zip(rules, decisions, strict=True),
                        key=lambda rd: (rd[1].remaining, rd[0].max),
                    )
                if refused:
                    rule, decision = max(refused, key=lambda rd: rd[1].reset_ms)
                    await self._refuse(scope, send, rule, decision)
                    return
                given += _limit_headers(rule, decision.remaining, decision.reset_ms)
                send = add_headers(scope, send, given)
        if not (self.rules.per_user and route.name in _TOKEN_ROUTES):
            await self.app(scope, receive, send)
            return
        answer = _AuthAnswer(send)
        await self.app(scope, receive, answer.send)
        await self._learn(answer)

    async def _refuse(self, scope: Scope, send: Send, rule: RuleSpec, decision: Decision) -> None:
        """The 429 of ``rule``, the one refusing that frees up last."""
        self.metrics.ratelimited(rule.name)
        headers = [
            *JSON_HEADERS,
            (b"retry-after", b"%d" % _seconds(decision.reset_ms)),
            *_limit_headers(rule, decision.remaining, decision.reset_ms),
        ]
        await respond(scope, send, 429, headers, envelope(429, rule.message))

    def _charger(self, scope: Scope, ip: str, given: Headers) -> Charge:
        """Counts a batch's items as PocketBase does: each against the rules of its collection
        and operation (``posts:create``...), one after the other; the first refused raises, its
        429 carrying the refusing rule's ``RateLimit-*`` headers in place of ``given`` (the
        request's)."""
        verified: list[str] = []

        async def charge(operations: list[tuple[str, str]]) -> None:
            for name, collection in operations:
                spec = BY_NAME.get(collection)
                if spec is None:
                    continue
                rules = tuple(r for r in self.rules.for_route(Route(name, spec)) if r.label != "*")
                if not rules:
                    continue
                user = ip
                if any(r.per == "user" for r in rules):
                    if not verified:  # looked up once, when a rule first needs it
                        verified.append(await self._user(scope) or ip)
                    user = verified[0]
                try:
                    decisions = await self.windows.hit(self._checks(rules, ip, user))
                except StoreDown as exc:
                    self._store_down(exc)
                    if self.fail_open:
                        return
                    raise ApiError(503, UNAVAILABLE, headers=[(b"retry-after", b"1")]) from None
                refused = [(r, d) for r, d in zip(rules, decisions, strict=True) if not d.allowed]
                if refused:
                    rule, decision = max(refused, key=lambda rd: rd[1].reset_ms)
                    self.metrics.ratelimited(rule.name)
                    headers = [
                        (b"retry-after", b"%d" % _seconds(decision.reset_ms)),
                        *_limit_headers(rule, decision.remaining, decision.reset_ms),
                    ]
                    take_back_headers(scope, given)
                    raise ApiError(429, rule.message, headers=headers)

        return charge

    @staticmethod
    def _checks(rules: tuple[RuleSpec, ...], ip: str, user: str) -> list[tuple[str, int, int]]:
        """(key, max, window) per rule; ``user`` is the verified user, or the IP key."""
        return [
            (
                rule.name
                + ("|" + ip if rule.per == "ip" else "|" + user if rule.per == "user" else "|*"),
                rule.max,
                rule.window_ms,
            )
            for rule in rules
        ]

    async def _user(self, scope: Scope) -> str | None:
        token = _token(header(scope, b"authorization"))
        if not token:
            return None
        identity = await self.book.identity(_hash(token))
        return "user:" + identity if identity is not None else None

    async def _learn(self, answer: _AuthAnswer) -> None:
        if answer.status != 200 or answer.size > _MAX_AUTH_ANSWER:
            return
        try:
            data = orjson.loads(b"".join(answer.parts))
            token = data["token"]
            record = data["record"]
            identity = f"{record['collectionId']}:{record['id']}"
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if not isinstance(token, str) or not token:
            return
        try:
            await self.book.remember(_hash(token), identity, _ttl(token))
        except StoreDown as exc:  # the caller keeps counting as its IP
            self._store_down(exc)

    def _store_down(self, exc: StoreDown) -> None:
        now = time.monotonic()
        if now - self._logged < _LOG_EVERY:
            return
        self._logged = now
        msg = "rate-limit store unavailable; " + (
            "serving without limits" if self.fail_open else "answering 503"
        )
        logs.log.warning(msg, extra={"fields": {"msg": msg, "error": str(exc)}})


class _AuthAnswer:
    """Passes an auth answer through while keeping a copy of its body."""

    __slots__ = ("_send", "parts", "size", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.parts: list[bytes] = []
        self.size = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and self.status == 200:
            body = message.get("body", b"")
            self.size += len(body)
            if self.size <= _MAX_AUTH_ANSWER:
                self.parts.append(body)
        await self._send(message)


def _limit_headers(rule: RuleSpec, remaining: int, reset_ms: int) -> Headers:
    return [
        rule.limit_header,
        (b"ratelimit-remaining", b"%d" % remaining),
        (b"ratelimit-reset", b"%d" % _seconds(reset_ms)),
    ]


def _seconds(ms: int) -> int:
    return -(-ms // 1000) if ms > 1000 else 1


def _token(value: bytes | None) -> str:
    """The credential as the session layer reads it (``bare_key``), so that no spelling of a
    key or token the gateway or PocketBase accepts escapes its user's count."""
    return bare_key(value).decode("latin-1") if value else ""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _ttl(token: str) -> int:
    """Seconds until ``token`` expires: its ``exp`` claim, believed because the token is in
    PocketBase's own answer, not in a request."""
    try:
        payload = token.split(".")[1]
        claims: Any = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        ttl = int(claims["exp"] - time.time())
    except (IndexError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return _TOKEN_TTL_DEFAULT
    return min(max(ttl, 1), _TOKEN_TTL_MAX)


def from_settings(app: ASGIApp, settings: Settings, metrics: Metrics, rules: Rules) -> RateLimit:
    """The layer with its store: Valkey/Redis when ``HAPTA_REDIS_URL`` is set, else memory."""
    if settings.redis_url:
        client = redis_client(settings.redis_url, settings.redis_timeout)
        windows: MemoryWindows | RedisWindows = RedisWindows(client)
        book = TokenBook(client)
    else:
        windows, book = MemoryWindows(), TokenBook()
    fail_open = settings.rate_limit_on_redis_error == "open"
    return RateLimit(app, rules, windows, book, metrics, fail_open)
