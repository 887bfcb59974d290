"""seed: the postly example data goes into a real PocketBase, files and passwords included."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx

from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import file_content, png_bytes, postly_seed

Seeded = dict[str, list[dict[str, Any]]]


def test_png_bytes_is_a_valid_png() -> None:
    data = png_bytes(4, 3, seed="x")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    assert struct.unpack(">II", data[16:24]) == (4, 3)
    crc = struct.unpack(">I", data[16 + length : 20 + length])[0]
    assert crc == zlib.crc32(data[12 : 16 + length])
    assert data.endswith(b"IEND\xaeB`\x82")
    assert png_bytes(seed="a") == png_bytes(seed="a") != png_bytes(seed="b")


def test_file_content_by_extension() -> None:
    assert file_content("a.png")[2] == "image/png"
    assert file_content("notes.txt")[2] == "text/plain"


def test_every_seed_record_created(pb: PocketBaseServer, pb_seeded: Seeded) -> None:
    seed = postly_seed()
    assert list(pb_seeded) == list(seed)
    for collection, records in seed.items():
        assert [r["id"] for r in pb_seeded[collection]] == [r["id"] for r in records]
        total = pb.request("GET", f"/api/collections/{collection}/records").json()["totalItems"]
        assert total >= len(records)


def test_post_has_every_field_type_filled(pb: PocketBaseServer, pb_seeded: Seeded) -> None:
    post = pb.request("GET", "/api/collections/posts/records/pst000000000001").json()
    assert post["tags"] == ["python", "4K", "1"]
    assert post["location"] == {"lon": 13.405, "lat": 52.52}
    assert post["meta"]["featured"] is True
    assert post["moderationNote"] == "checked by dave"  # hidden, but superusers see it
    assert len(post["gallery"]) == 2 and post["cover"].endswith(".png")
    thumb = httpx.get(f"{pb.url}/api/files/posts/{post['id']}/{post['cover']}", params={"thumb": "100x100"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    guest = httpx.get(f"{pb.url}/api/collections/posts/records/{post['id']}").json()
    assert "moderationNote" not in guest


def test_seed_users_can_log_in(pb: PocketBaseServer, pb_seeded: Seeded) -> None:
    for user in postly_seed()["users"]:
        resp = httpx.post(
            f"{pb.url}/api/collections/users/auth-with-password",
            json={"identity": user["email"], "password": user["password"]},
        )
        assert resp.status_code == 200, user["email"]
        assert resp.json()["record"]["id"] == user["id"]


def test_view_counts_follow_seed(pb: PocketBaseServer, pb_seeded: Seeded) -> None:
    stats = httpx.get(f"{pb.url}/api/collections/post_stats/records/pst000000000001").json()
    assert (stats["comment_count"], stats["like_count"]) == (3, 3)
