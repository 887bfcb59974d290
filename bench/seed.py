"""Bench data: a PocketBase with the postly schema and N public posts, created fast.

Posts go in through PocketBase's batch API (enabled for the run, 100 creates per transaction),
as superuser, with fixed ids ``bnch00000000001``... so every run reads the same records. A post
is about the size of the performance anchors' one (~0.5 KB of JSON).
"""

from __future__ import annotations

from typing import Any

from hapta_gen.dev.pbserver import PocketBaseServer
from hapta_gen.dev.seed import postly_schema

AUTHOR_ID = "bnchauthor00001"
BATCH = 100
TAGS = ("news", "python", "go", "4K", "1", "c++", "how-to")


def post_id(index: int) -> str:
    return f"bnch{index:011d}"


def bench_post(index: int) -> dict[str, Any]:
    return {
        "id": post_id(index),
        "title": f"Benchmark post number {index}",
        "slug": f"bench-post-{index:05d}",
        "body": "<p>" + ("A realistic paragraph of post text for the benchmark. " * 3) + "</p>",
        "views": index * 7 % 1000,
        "rating": (index % 50) / 10,
        "published": True,
        "status": "published",
        "tags": [TAGS[index % len(TAGS)], TAGS[(index + 3) % len(TAGS)]],
        "publishAt": f"2025-{index % 12 + 1:02d}-{index % 28 + 1:02d} 10:00:00.000Z",
        "author": AUTHOR_ID,
        "meta": {"lang": "en", "n": index},
        "website": f"https://postly.test/p/{index}",
        "contact": "author@postly.test",
        "location": {"lon": 13.4 + index / 1000, "lat": 52.5},
    }


def seed_bench(server: PocketBaseServer, posts: int) -> list[str]:
    """Import the postly schema, one author and ``posts`` public posts; returns post ids."""
    server.import_collections(postly_schema())
    server.request(
        "POST",
        "/api/collections/users/records",
        json={
            "id": AUTHOR_ID,
            "email": "author@postly.test",
            "password": "bench-author-pass",
            "passwordConfirm": "bench-author-pass",
            "name": "Bench Author",
            "emailVisibility": True,
        },
    )
    previous = server.request("GET", "/api/settings").json().get("batch", {})
    server.patch_settings(
        {"batch": {"enabled": True, "maxRequests": BATCH, "timeout": 30, "maxBodySize": 0}}
    )
    try:
        for start in range(1, posts + 1, BATCH):
            requests = [
                {"method": "POST", "url": "/api/collections/posts/records", "body": bench_post(i)}
                for i in range(start, min(start + BATCH, posts + 1))
            ]
            server.request("POST", "/api/batch", json={"requests": requests})
    finally:
        server.patch_settings({"batch": previous})
    total = server.request(
        "GET", "/api/collections/posts/records", params={"perPage": 1}
    ).json()["totalItems"]
    if total != posts:
        raise RuntimeError(f"seeded {total} posts, expected {posts}")
    return [post_id(i) for i in range(1, posts + 1)]
