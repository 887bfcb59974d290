"""A ranked home feed for postly: ``GET /feed?page=1&perPage=20``.

The pattern to copy for a gateway extension (``hapta.yaml``'s ``extensions``):

* ``router`` is a FastAPI ``APIRouter``; the gateway serves it outside ``/api/``.
* A handler takes its context from ``request.state.hapta``. ``ctx.pocketbase`` asks PocketBase
  through the gateway **as the caller** (their own token, or none for a guest): PocketBase's
  rules decide what the feed may hold, as for any request of theirs.
* ``ctx.cached(key, compute)`` keeps the computed answer in the gateway's response cache, per
  caller, tagged with every read ``compute`` made: a new post, like, comment or follow drops it
  like any cached list.

Ranking: posts of the people the caller follows (and the caller's own), scored
``(1 + likes + 2 * comments) / (age_hours + 2) ** 1.5``; a guest gets every post a guest may
list. Counts come from the ``post_stats`` view.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

if TYPE_CHECKING:  # the generated package; never imported at build time
    from gateway.extensions import Context

router = APIRouter()

#: How many recent posts are ranked, and how many followed authors are read.
CANDIDATES = 200
MAX_FOLLOWED = 100
GRAVITY = 1.5


@router.get("/feed")
async def feed(
    request: Request,
    page: int = Query(1, ge=1),
    per_page: int = Query(20, ge=1, le=100, alias="perPage"),
) -> Response:
    ctx: Context = request.state.hapta
    body = await ctx.cached(("feed", page, per_page), lambda: ranked(ctx, page, per_page))
    return Response(body, media_type="application/json")


async def ranked(ctx: Context, page: int, per_page: int) -> dict[str, Any]:
    pb = ctx.pocketbase
    me = pb.claimed_id  # unverified: it only chooses what to ask; PocketBase's rules decide
    where = ""
    if pb.authenticated:
        authors = [*await followed(ctx, me), me] if me else []
        where = " || ".join(f'author = "{a}"' for a in authors) or 'id = ""'

    params: dict[str, Any] = {"sort": "-created", "perPage": CANDIDATES, "skipTotal": "true"}
    if where:
        params["filter"] = where
    posts = (await pb.records("posts", **params))["items"]
    stats_params: dict[str, Any] = {"perPage": CANDIDATES, "skipTotal": "true"}
    if where:
        stats_params["filter"] = where
    stats = {s["id"]: s for s in (await pb.records("post_stats", **stats_params))["items"]}
    now = datetime.now(UTC)
    for post in posts:
        s = stats.get(post["id"], {})
        post["likes"] = int(s.get("like_count", 0))
        post["comments"] = int(s.get("comment_count", 0))
        post["score"] = score(post["likes"], post["comments"], _age_hours(post, now))
    posts.sort(key=lambda p: (-p["score"], p["id"]))
    start = (page - 1) * per_page
    return {
        "page": page,
        "perPage": per_page,
        "totalItems": len(posts),
        "items": posts[start : start + per_page],
    }


async def followed(ctx: Context, me: str) -> list[str]:
    """The ids of the people ``me`` follows."""
    page = await ctx.pocketbase.records(
        "follows",
        filter=f'follower = "{me}"',
        fields="following",
        perPage=MAX_FOLLOWED,
        skipTotal="true",
    )
    return sorted({str(f["following"]) for f in page["items"] if f.get("following")})


def score(likes: int, comments: int, age_hours: float) -> float:
    return (1 + likes + 2 * comments) / (max(age_hours, 0.0) + 2) ** GRAVITY


def _age_hours(post: dict[str, Any], now: datetime) -> float:
    text = str(post.get("created", ""))
    try:
        created = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (now - created).total_seconds() / 3600
