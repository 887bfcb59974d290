"""Helpers of the rolling-session tests: a scanner that fails a test the moment a response carries
a PocketBase token (their Valkey: ``valkey_support``)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx

#: A JWT's three base64url parts (PocketBase's tokens and the gateway's keys both have them).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def jwt_part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_session_key(value: str) -> bool:
    """The gateway's key: a JWT-shaped envelope (readable ``exp``) around 32 random bytes."""
    parts = value.split(".")
    return (
        len(parts) == 3
        and jwt_part(parts[0]) == {"alg": "none", "typ": "hapta-session"}
        and len(base64.urlsafe_b64decode(parts[2] + "=")) == 32
    )


def pocketbase_tokens_in(text: str) -> list[str]:
    """Every PocketBase token in ``text``: a JWT signed HS256 (the gateway's keys are not)."""
    return [m for m in _JWT.findall(text) if jwt_part(m.split(".")[0]).get("alg") == "HS256"]


class TokenScanner:
    """An httpx response hook: every response's headers and body are read and checked for a
    PocketBase token (by shape, and against ``known`` tokens taken from PocketBase itself)."""

    def __init__(self, known: list[str]) -> None:
        self.known = known
        self.scanned = 0

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        texts = [f"{k}: {v}" for k, v in response.headers.items()]
        texts.append(response.content.decode("utf-8", "replace"))
        for text in texts:
            found = pocketbase_tokens_in(text)
            assert not found, f"{response.request.url} answered a PocketBase token: {found[0][:40]}..."
            for token in self.known:
                assert token not in text, f"{response.request.url} answered a seed user's token"
        self.scanned += 1
