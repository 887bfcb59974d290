"""Rolling-key sessions (``sessions: rolling``): clients hold the gateway's keys, never PocketBase's
tokens. In the chain only in rolling mode.

On the way in, a session key in ``Authorization`` is swapped for the PocketBase token it stands
for (records, batch, file tokens, realtime subscriptions, auth-refresh: wherever PocketBase reads
one). A key the store does not know, a rotated key past its grace window (which also revokes its
session family), or a raw PocketBase token is refused with PocketBase's 401 and never forwarded;
only the calls that log in or need no credential go on as a guest's, so a client holding a stale
key can still log in. A file key in ``?token=`` is swapped the same way (an unknown one is dropped:
PocketBase then answers as for no token).

On the way out, the answer of a successful auth call (password, OTP, OAuth2, impersonate) starts a
session family and carries a new key in place of ``token``; a successful ``auth-refresh`` rotates
the caller's family to a new key; ``POST /api/files/token`` answers a file key. ``POST
/api/hapta/logout`` revokes the caller's family (204). Realtime streams whose subscriptions were
made with a key of a revoked family are ended (``fanout.Hub.watch_sessions``): the session
layer leaves the caller's key hash in ``RequestState.session`` for the realtime hub.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import orjson

from ..asgi import STATE, ASGIApp, Message, Receive, RequestState, Scope, Send, respond
from ..errors import ApiError
from ..gorequest import pair_name
from ..metrics import Metrics
from ..routing import FILE_TOKEN, LOGOUT
from ..sessions import (
    REUSED,
    MemoryStore,
    Resolved,
    SessionStore,
    StoreUnavailable,
    bare_key,
    key_hash,
    new_file_key,
    new_key,
    token_claims,
)

INVALID_TOKEN = "The request requires valid record authorization token."
STORE_DOWN = "The session store is unavailable; try again shortly."
#: Calls that need no credential: a key that does not resolve makes them a guest's, not a 401.
_GUEST_OK = frozenset(
    "auth." + action
    for action in (
        "methods",
        "auth-with-password",
        "auth-with-otp",
        "auth-with-oauth2",
        "request-otp",
        "request-password-reset",
        "confirm-password-reset",
        "request-verification",
        "confirm-verification",
        "confirm-email-change",
    )
)
#: Calls whose successful answer carries a new PocketBase auth token.
_LOGINS = frozenset(
    {"auth.auth-with-password", "auth.auth-with-otp", "auth.auth-with-oauth2", "auth.impersonate"}
)
_REFRESH = "auth.auth-refresh"
#: Calls whose answer may carry a token to turn into a key (``Sessions._issuer``).
_ISSUING = _LOGINS | {_REFRESH, FILE_TOKEN.name}
#: Lifetime of a session whose token says no ``exp`` (PocketBase always sets one).
_DEFAULT_TTL = 3600.0

#: Turns PocketBase's token into what the client gets (``None``: refuse with a 401).
Issuer = Callable[[str], Awaitable[str | None]]
#: A request's headers, the position of its ``Authorization`` and its value.
_Given = tuple[list[tuple[bytes, bytes]], int, bytes]
#: Key hashes remembered (``Sessions._hash``), and the longest key remembered.
_HASHES = 10_000
_HASHED_LENGTH = 1024


class Sessions:
    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        metrics: Metrics,
        grace: float,
        on_revoke: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics
        self.grace = grace
        #: Called when this process revoked a family (the realtime hub ends its streams).
        self.on_revoke = on_revoke
        #: The in-process store, looked up without a coroutine on every request.
        self.memory = store if isinstance(store, MemoryStore) else None
        self._hashes: dict[bytes, str] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Swaps the caller's key, then hands back the rest of the chain's awaitable: in the
        common case (the in-process store, a call that issues no key) without a coroutine of
        its own, as a cache hit is cheap enough for one to show."""
        st: RequestState = scope[STATE]
        route = st.route
        assert route is not None
        name = route.name
        if (
            self.memory is not None
            and name not in _ISSUING
            and route is not LOGOUT
            and not (name == "files.download" and scope["query_string"])
        ):
            given = _take_authorization(scope)
            if given is not None:
                hashed = self._hash(given[2])
                token = self._resolve_now(hashed) if hashed else b""
                st.session = self._swap(given, hashed, token, name)
            return self.app(scope, receive, send)
        return self._call(scope, receive, send)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        st: RequestState = scope[STATE]
        route = st.route
        assert route is not None
        name = route.name
        try:
            if route is LOGOUT and scope["method"] == "POST":
                await self._logout(scope, send)
                return
            given = _take_authorization(scope)
            if given is not None:
                hashed = self._hash(given[2])
                if not hashed:
                    token = b""
                elif self.memory is not None:
                    token = self._resolve_now(hashed)
                else:
                    token = await self._resolve(hashed)
                st.session = self._swap(given, hashed, token, name)
            key = st.session
            if name == "files.download" and scope["query_string"]:
                await self._swap_file_token(scope)
            issue = self._issuer(name, key) if name in _ISSUING else None
            if issue is None:
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, _Rewrite(send, issue, st).send)
        except StoreUnavailable:
            if st.responding:
                raise
            raise ApiError(503, STORE_DOWN) from None

    def _hash(self, value: bytes) -> str:
        """The hash of the key in an ``Authorization`` value (``bare_key``, ``key_hash``), ``""``
        when it holds none; remembered for the values seen lately (a hash costs a cache hit
        more than the rest of the lookup): at most ``_HASHES`` values of at most
        ``_HASHED_LENGTH`` bytes (a session key is a few hundred), all dropped when full."""
        hashed = self._hashes.get(value)
        if hashed is None:
            key = bare_key(value)
            hashed = key_hash(key) if key else ""
            if len(value) <= _HASHED_LENGTH:
                if len(self._hashes) >= _HASHES:
                    self._hashes.clear()
                self._hashes[value] = hashed
        return hashed

    @staticmethod
    def _swap(given: _Given, hashed: str, token: bytes, route: str) -> str | None:
        """Put PocketBase's ``token`` in place of the caller's key (``hashed``: its hash, empty
        for none); the key's hash, or ``None`` (no token: a 401, or a guest's call for the calls
        that need no credential)."""
        headers, position = given[0], given[1]
        if not token:
            if hashed and route not in _GUEST_OK:
                raise ApiError(401, INVALID_TOKEN)
            del headers[position]  # a guest's call: the unknown key goes nowhere
            return None
        headers[position] = (b"authorization", token)
        return hashed

    def _resolve_now(self, hashed: str) -> bytes:
        assert self.memory is not None
        return self._token(self.memory.resolve_now(hashed, time.time(), self.grace))

    async def _resolve(self, hashed: str) -> bytes:
        return self._token(await self.store.resolve(hashed, time.time(), self.grace))

    def _token(self, found: Resolved) -> bytes:
        """The token a key resolved to (empty for none); a reused key counted and its
        family's streams ended."""
        if found.outcome == REUSED:
            self.metrics.session_reuse.inc()
            self.on_revoke()
        return found.raw

    async def _swap_file_token(self, scope: Scope) -> None:
        """``?token=<file key>`` → PocketBase's file token; an unknown one is dropped."""
        pairs = scope["query_string"].split(b"&")
        # by the name PocketBase reads: ``%74oken=`` is ``token=`` once Go decodes it
        given = [p for p in pairs if pair_name(p) == "token"]
        if not given:
            return
        rest = [p for p in pairs if pair_name(p) != "token"]
        value = unquote_to_bytes(given[0].partition(b"=")[2].replace(b"+", b" "))
        token = await self.store.get_file(key_hash(value), time.time()) if value else None
        if token is not None:
            rest.append(b"token=" + quote(token, safe="").encode())
        scope["query_string"] = b"&".join(rest)

    def _issuer(self, route: str, key: str | None) -> Issuer | None:
        """What turns a successful answer's PocketBase token into a key, for this call."""
        if route in _LOGINS:
            return self._login
        if route == _REFRESH and key is not None:
            return self._refresher(key)
        if route == FILE_TOKEN.name:
            return self._file
        return None

    def _refresher(self, old: str) -> Issuer:
        async def issue(token: str) -> str | None:
            return await self._refresh(old, token)

        return issue

    async def _login(self, token: str) -> str | None:
        claims = token_claims(token)
        key = new_key(claims)
        now = time.time()
        active = await self.store.create(key_hash(key), token, _ttl(claims, now), now)
        self.metrics.sessions_active.set(active)
        return key

    async def _refresh(self, old: str, token: str) -> str | None:
        claims = token_claims(token)
        key = new_key(claims)
        now = time.time()
        active = await self.store.rotate(old, key_hash(key), token, _ttl(claims, now), now)
        if active is None:  # logged out or revoked while PocketBase was refreshing
            return None
        self.metrics.sessions_active.set(active)
        return key

    async def _file(self, token: str) -> str | None:
        now = time.time()
        key = new_file_key()
        await self.store.put_file(key_hash(key), token, _ttl(token_claims(token), now), now)
        return key

    async def _logout(self, scope: Scope, send: Send) -> None:
        given = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        key = bare_key(given) if given is not None else b""
        active = await self.store.revoke(key_hash(key)) if key else None
        if active is None:
            raise ApiError(401, INVALID_TOKEN)
        self.metrics.sessions_active.set(active)
        self.on_revoke()
        await respond(scope, send, 204, [], b"")


class _Rewrite:
    """Holds back a successful answer's head and body and sends them with the PocketBase token
    replaced by ``issue(token)`` (``None``: the session is gone, a 401 instead)."""

    def __init__(self, send: Send, issue: Issuer, st: RequestState) -> None:
        self._send = send
        self._issue = issue
        self._state = st
        self._start: Message | None = None
        self._parts: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                await self._send(message)
                return
            self._start = message
            return
        if self._start is None:
            await self._send(message)
            return
        self._parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, self._start = self._start, None
        status, headers, body = await self._rewrite(start, b"".join(self._parts))
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        self._state.status = status
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def _rewrite(
        self, start: Message, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers: list[tuple[bytes, bytes]] = list(start["headers"])
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            return start["status"], headers, body
        assert isinstance(answer, dict)
        try:
            key = await self._issue(token)
        except StoreUnavailable:  # nothing has gone to the client yet: say so
            return 503, [(b"content-type", b"application/json")], ApiError(503, STORE_DOWN).body()
        if key is None:
            error = ApiError(401, INVALID_TOKEN)
            return 401, [(b"content-type", b"application/json")], error.body()
        answer["token"] = key
        return 200, headers, orjson.dumps(answer)


def _take_authorization(scope: Scope) -> _Given | None:
    """The request's headers, the position of its first ``Authorization`` and its value;
    ``None`` without one. Any further ``Authorization`` header is taken out: only the swapped
    token goes on, in place of the first."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    given = None
    position = 0
    several = False
    for index, (name, value) in enumerate(headers):
        if name == b"authorization":
            if given is None:
                given, position = value, index
            else:
                several = True
    if given is None:
        return None
    if several:
        headers = [
            item
            for index, item in enumerate(headers)
            if index == position or item[0] != b"authorization"
        ]
        scope["headers"] = headers
    return headers, position, given


def _ttl(claims: dict[str, Any], now: float) -> float:
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return max(1.0, exp - now)
    return _DEFAULT_TTL
