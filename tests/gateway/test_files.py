"""Files through the gateway: multi-file upload, download, thumbs, protected files with and
without a file token, and uploads refused (size, type, count) before PocketBase sees them."""

from __future__ import annotations

import os

import httpx
from gateway_support import GatewayProcess, auth

from hapta_gen.dev.seed import png_bytes

POSTS = "/api/collections/posts/records"
_SAME_HEADERS = ("content-type", "content-disposition", "cache-control", "content-security-policy")


def _png(seed: str, size: int = 32) -> bytes:
    return png_bytes(size, size, seed=seed)


def test_multi_file_upload_download_and_thumb(gw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]) -> None:
    bob = auth(tokens["bob"])
    cover, g1, g2 = _png("cover"), _png("g1"), _png("g2")
    resp = gw.post(
        POSTS,
        data={"title": "With pictures", "status": "draft", "author": "usr000000000002", "tags": ["go", "python"]},
        files=[("cover", ("cover.png", cover, "image/png")),
               ("gallery", ("one.png", g1, "image/png")), ("gallery", ("two.png", g2, "image/png"))],
        headers=bob,
    )
    assert resp.status_code == 200, resp.text
    record = resp.json()
    assert record["tags"] == ["go", "python"] and len(record["gallery"]) == 2
    base = f"/api/files/posts/{record['id']}"

    for name, content in ((record["cover"], cover), (record["gallery"][1], g2)):
        got, direct = gw.get(f"{base}/{name}"), pb.get(f"{base}/{name}")
        assert got.status_code == 200 and got.content == content == direct.content
        for header in _SAME_HEADERS:
            assert got.headers.get(header) == direct.headers.get(header), header

    download = gw.get(f"{base}/{record['cover']}", params={"download": 1})
    assert download.headers["content-disposition"].startswith("attachment")
    thumb, direct_thumb = (c.get(f"{base}/{record['cover']}", params={"thumb": "100x100"}) for c in (gw, pb))
    assert thumb.status_code == 200 and thumb.content == direct_thumb.content and thumb.content != cover
    assert gw.get(f"{base}/missing.png").status_code == pb.get(f"{base}/missing.png").status_code == 404

    # append one more with `gallery+`, remove one with `gallery-` (JSON)
    more = gw.patch(f"{POSTS}/{record['id']}", files=[("gallery+", ("three.png", _png("g3"), "image/png"))], headers=bob)
    assert more.status_code == 200 and len(more.json()["gallery"]) == 3, more.text
    less = gw.patch(f"{POSTS}/{record['id']}", json={"gallery-": [record["gallery"][0]]}, headers=bob)
    assert less.status_code == 200 and len(less.json()["gallery"]) == 2, less.text
    assert gw.delete(f"{POSTS}/{record['id']}", headers=bob).status_code == 204


def test_large_file_streams_both_ways(gw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]) -> None:
    bob = auth(tokens["bob"])
    blob = os.urandom(3 * 1024 * 1024 + 17)
    resp = gw.post("/api/collections/attachments/records", data={"title": "big", "owner": "usr000000000002"},
                   files={"file": ("big.bin", blob, "application/octet-stream")}, headers=bob)
    assert resp.status_code == 200, resp.text
    record = resp.json()
    token = gw.post("/api/files/token", headers=bob).json()["token"]
    path = f"/api/files/attachments/{record['id']}/{record['file']}"
    with gw.stream("GET", path, params={"token": token}) as streamed:
        assert streamed.status_code == 200
        received = b"".join(streamed.iter_bytes())
    assert received == blob
    assert gw.delete(f"/api/collections/attachments/records/{record['id']}", headers=bob).status_code == 204


def test_protected_file_needs_a_file_token(gw: httpx.Client, pb: httpx.Client, tokens: dict[str, str]) -> None:
    bob, alice = auth(tokens["bob"]), auth(tokens["alice"])
    record = pb.get("/api/collections/attachments/records/att000000000001", headers=bob).json()
    path = f"/api/files/attachments/{record['id']}/{record['file']}"
    assert gw.get(path).status_code == pb.get(path).status_code == 404
    assert gw.get(path, headers=bob).status_code == 404  # the auth header alone is not enough
    assert gw.post("/api/files/token").status_code == pb.post("/api/files/token").status_code == 401
    bob_file_token = gw.post("/api/files/token", headers=bob).json()["token"]
    ok = gw.get(path, params={"token": bob_file_token})
    assert ok.status_code == 200 and ok.content == pb.get(path, params={"token": bob_file_token}).content
    alice_file_token = gw.post("/api/files/token", headers=alice).json()["token"]
    assert gw.get(path, params={"token": alice_file_token}).status_code == 404


def _refused(resp: httpx.Response, field: str, code: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["data"][field]["code"] == code, resp.text


def test_uploads_refused_while_streaming(gateway: GatewayProcess, gw: httpx.Client, tokens: dict[str, str]) -> None:
    bob = auth(tokens["bob"])
    before = gateway.upstream_calls()
    # users.avatar allows 2 MB: a PNG one byte too large
    big = _png("avatar") + b"\0" * (2 * 1024 * 1024)
    resp = gw.patch("/api/collections/users/records/usr000000000002",
                    files={"avatar": ("avatar.png", big, "image/png")}, headers=bob)
    _refused(resp, "avatar", "validation_file_size_limit")
    # posts.cover allows png/jpeg/webp: a text file, whatever it claims to be
    resp = gw.post(POSTS, data={"title": "Wrong type", "status": "draft", "author": "usr000000000002"},
                   files={"cover": ("cover.png", b"just some text, not an image\n", "image/png")}, headers=bob)
    _refused(resp, "cover", "validation_invalid_mime_type")
    # posts.gallery takes at most 5
    resp = gw.post(POSTS, data={"title": "Too many", "status": "draft", "author": "usr000000000002"},
                   files=[("gallery", (f"g{i}.png", _png(f"g{i}"), "image/png")) for i in range(6)], headers=bob)
    _refused(resp, "gallery", "validation_too_many_values")
    # a single-file field given two files
    resp = gw.post(POSTS, data={"title": "Two covers", "status": "draft", "author": "usr000000000002"},
                   files=[("cover", ("a.png", _png("a"), "image/png")), ("cover", ("b.png", _png("b"), "image/png"))],
                   headers=bob)
    _refused(resp, "cover", "validation_too_many_values")
    # a body past every limit of the collection: 413 before it is all read
    huge = b"\0" * (40 * 1024 * 1024)
    resp = gw.post("/api/collections/comments/records", files={"x": ("x.bin", huge)}, headers=bob)
    assert resp.status_code == 413
    assert gateway.upstream_calls() == before, "PocketBase was called"
