"""``fanout``'s decisions in-process: which topics are shared (served from the one upstream
subscription) for which caller, and a client's bounded buffer."""

from __future__ import annotations

import base64
import json

import pytest
from gateway.fanout import GUEST, SUPERUSER, USER, Client, caller_kind, shared_topic


def token(claims: dict[str, object]) -> bytes:
    """A JWT-shaped token with these claims (unsigned: only the claims are read here)."""
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig".encode()


@pytest.mark.parametrize(
    ("topic", "caller", "shared"),
    [
        ("posts/*", GUEST, True),
        ("posts", GUEST, True),  # the deprecated alias of posts/*
        ("posts/abc123", GUEST, True),  # viewRule ""
        ("posts/*", USER, True),
        ("posts/*", SUPERUSER, False),  # posts has a hidden field a superuser sees
        ("comments/*", SUPERUSER, True),
        ("users/*", GUEST, True),
        ("users/*", USER, False),  # an auth record sees its own email
        ("attachments/*", GUEST, False),  # owner-only
        ("audit_log/*", GUEST, False),  # superusers only
        ("posts/*?options=%7B%7D", GUEST, False),  # options may shape the payload
        ("posts/*#x", GUEST, False),
        ("posts/", GUEST, False),
        ("posts/a/b", GUEST, False),
        ("nope/*", GUEST, False),
    ],
)
def test_which_topics_are_shared(topic: str, caller: str, shared: bool) -> None:
    assert shared_topic(topic, caller) is shared


def test_the_caller_kind_comes_from_the_token_claims() -> None:
    assert caller_kind(None) == GUEST
    assert caller_kind(b"") == GUEST
    assert caller_kind(token({"collectionId": "_pb_users_auth_", "id": "u1"})) == USER
    assert caller_kind(b"Bearer " + token({"collectionId": "pbc_3142635823", "id": "s1"})) == SUPERUSER
    assert caller_kind(b"garbage") == USER  # not a guest's: never shared where a user's is not


def test_a_client_buffer_is_bounded_but_takes_one_large_event() -> None:
    client = Client("c" * 40, "127.0.0.1", limit=1024)
    big = b"x" * 4096
    client.clear()  # (the PB_CONNECT frame taken)
    assert client.deliver("posts/*", big, b"posts/*\ndata:" + big + b"\n\n")  # alone: accepted
    assert not client.deliver("posts/*", b"{}", b"posts/*\ndata:{}\n\n")  # then: over the bound
