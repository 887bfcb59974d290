"""``routing.match``: method + path → the endpoint, or PocketBase's 404 before PocketBase."""

from __future__ import annotations

import pytest
from gateway.errors import ApiError
from gateway.routing import BATCH, FILE_TOKEN, HEALTH, REALTIME_CONNECT, REALTIME_SUBSCRIBE, match


@pytest.mark.parametrize(
    ("method", "path", "name", "record_id"),
    [
        ("GET", "/api/collections/posts/records", "records.list", ""),
        ("HEAD", "/api/collections/posts/records", "records.list", ""),
        ("POST", "/api/collections/posts/records", "records.create", ""),
        ("GET", "/api/collections/posts/records/abc", "records.view", "abc"),
        ("PATCH", "/api/collections/posts/records/abc", "records.update", "abc"),
        ("DELETE", "/api/collections/posts/records/abc", "records.delete", "abc"),
        ("POST", "/api/collections/users/auth-with-password", "auth.auth-with-password", ""),
        ("GET", "/api/collections/users/auth-methods", "auth.methods", ""),
        ("POST", "/api/collections/users/impersonate/u1", "auth.impersonate", "u1"),
        ("GET", "/api/files/posts/abc/pic.png", "files.download", "abc"),
    ],
)
def test_endpoints(method: str, path: str, name: str, record_id: str) -> None:
    route = match(method, path)
    assert route.name == name
    assert route.record_id == record_id
    assert route.collection is not None


def test_collection_by_id_is_the_same_collection() -> None:
    by_name = match("GET", "/api/collections/posts/records").collection
    assert by_name is not None
    assert match("GET", f"/api/collections/{by_name.id}/records").collection is by_name


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/api/health", HEALTH),
        ("POST", "/api/batch", BATCH),
        ("POST", "/api/files/token", FILE_TOKEN),
        ("GET", "/api/realtime", REALTIME_CONNECT),
        ("POST", "/api/realtime", REALTIME_SUBSCRIBE),
    ],
)
def test_fixed_endpoints(method: str, path: str, route: object) -> None:
    assert match(method, path) is route


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/api/collections/nope/records", "Missing collection context."),
        ("GET", "/api/collections/posts/auth-methods", "Missing or invalid auth collection context."),
        ("GET", "/api/files/nope/abc/x.png", "Missing or invalid collection context."),
        ("GET", "/api/collections/posts/records/a/b", "The requested resource wasn't found."),
        ("GET", "/api/collections/posts/records/./x", "The requested resource wasn't found."),
        ("GET", "/api/collections/posts/../users/records", "The requested resource wasn't found."),
        ("PUT", "/api/collections/posts/records/abc", "The requested resource wasn't found."),
        ("GET", "/api/batch", "The requested resource wasn't found."),
        ("GET", "/api/collections", "The requested resource wasn't found."),
        ("GET", "/api/settings", "The requested resource wasn't found."),
        ("GET", "/api/collections/_superusers/records", "Missing collection context."),
    ],
)
def test_refused_before_pocketbase(method: str, path: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        match(method, path)
    assert caught.value.status == 404
    assert caught.value.message == message
