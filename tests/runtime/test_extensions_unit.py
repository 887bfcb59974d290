"""``extensions``: loading the modules ``hapta.yaml`` names (one line when one cannot be used),
and what a context tells of its caller."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import pytest
from gateway.extapp import ExtensionApp
from gateway.extensions import ExtensionError, PocketBase, load


def test_the_postly_feed_loads_from_its_extension_path() -> None:
    loaded = load()  # the catalog's EXTENSIONS and EXTENSION_PATHS, relative to generated/
    assert [m.__name__ for m in loaded.modules] == ["postly_ext.feed"]
    assert [r.path for r in loaded.routers[0].routes] == ["/feed"]


def test_a_module_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "exploding_ext.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ExtensionError) as info:
        load(("exploding_ext",), (str(tmp_path),))
    assert str(info.value).startswith("extension exploding_ext cannot be imported (RuntimeError: boom)")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("before_write = {'nope:create': print}\n", "before_write key 'nope:create'"),
        ("after_read = {'posts:delete': print}\n", "after_read key 'posts:delete'"),
        ("after_read = [print]\n", "after_read must be a dict"),
        ("from fastapi import APIRouter\nrouter = APIRouter()\nrouter.get('/metrics')(print)\n", "route /metrics is reserved"),
        # the gateway's own streams and pages come first: a route there would never be reached
        ("from fastapi import APIRouter\nrouter = APIRouter()\nrouter.get('/sse/mine')(print)\n", "route /sse/mine is reserved"),
        ("from fastapi import APIRouter\nrouter = APIRouter()\nrouter.get('/demo/live/x')(print)\n", "route /demo/live/x is reserved"),
        ("router = object()\n", "router is not a FastAPI APIRouter"),
    ],
)
def test_what_a_module_exposes_is_checked(tmp_path: Path, source: str, message: str) -> None:
    name = f"ext_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_text(source)
    with pytest.raises(ExtensionError, match=message.replace("[", r"\[")):
        load((name,), (str(tmp_path),))
    sys.modules.pop(name, None)


def test_hooks_for_every_operation_expand_the_star(tmp_path: Path) -> None:
    (tmp_path / "star_ext.py").write_text("async def h(ctx, body):\n    return body\nbefore_write = {'posts:*': h}\n")
    loaded = load(("star_ext",), (str(tmp_path),))
    assert sorted(loaded.before_write) == [("posts", "create"), ("posts", "update")]


def _token(claims: dict[str, object]) -> bytes:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return b"xx." + payload + b".sig"


@pytest.mark.parametrize(
    ("headers", "authenticated", "claimed"),
    [
        ([], False, ""),
        ([(b"authorization", _token({"id": "usr000000000001", "type": "auth"}))], True, "usr000000000001"),
        ([(b"authorization", _token({"id": 'x" || true'}))], True, ""),  # never a filter's text
        ([(b"authorization", b"garbage")], True, ""),
    ],
)
def test_the_caller_as_the_context_sees_it(
    headers: list[tuple[bytes, bytes]], authenticated: bool, claimed: str
) -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    pb = PocketBase(app, {"headers": [*headers, (b"cookie", b"c=1")], "client": ("127.0.0.1", 1)})
    assert (pb.authenticated, pb.claimed_id) == (authenticated, claimed)
    assert all(k != b"cookie" for k, _ in pb._headers)  # only the credential and address go on


def test_an_extension_route_refuses_a_body_past_the_limit(tmp_path: Path) -> None:
    """As on ``/api/`` (``HAPTA_MAX_BODY_SIZE``): FastAPI would otherwise hold any body whole."""
    (tmp_path / "echo_ext.py").write_text(
        "from fastapi import APIRouter, Request\nrouter = APIRouter()\n"
        "@router.post('/echo')\nasync def echo(request: Request) -> dict:\n"
        "    return {'size': len(await request.body())}\n"
    )
    ext = ExtensionApp(load(("echo_ext",), (str(tmp_path),)), lambda scope: None, 16)  # type: ignore[arg-type, return-value]

    def post(body: bytes) -> tuple[int, bytes]:
        sent: list[dict[str, object]] = []
        chunks = [{"type": "http.request", "body": body[i : i + 8], "more_body": i + 8 < len(body)} for i in range(0, len(body), 8)]

        async def receive() -> dict[str, object]:
            return chunks.pop(0)

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
                 "headers": [(b"content-length", b"%d" % len(body))], "root_path": "", "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "http_version": "1.1"}
        asyncio.run(ext(scope, receive, send))  # type: ignore[arg-type]
        return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])  # type: ignore[call-overload, misc]

    assert post(b"x" * 16) == (200, b'{"size":16}')
    status, body = post(b"x" * 17)
    assert status == 413 and json.loads(body) == {"status": 413, "message": "Request entity too large.", "data": {}}
    sys.modules.pop("echo_ext", None)
