"""The PocketBase Python SDK (PyPI ``pocketbase``, 0.17.x, written for PocketBase 0.23+) runs
the same user session as the JS SDK: signup, password login, a post with a file (downloaded
back), a filtered list with ``expand``, update with modifiers, delete, token refresh, a realtime
subscription that receives the create event, and logout. Against PocketBase itself (the
control) and against the gateway (also with rolling sessions), changing only the base URL. CRUD and realtime are separate
tests, so one gap does not hide the other.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pocketbase import PocketBase
from pocketbase.client import FileUpload
from pocketbase.errors import ClientResponseError
from pocketbase.models.record import Record
from sdk_support import Target

from hapta_gen.dev.seed import png_bytes

REALTIME_WAIT = 10.0  # seconds the realtime event may take; a deadline, not a sleep


def status_of(call: Any, *args: Any, **kwargs: Any) -> int:
    """The HTTP status a failing SDK call raised (0 when it did not fail)."""
    try:
        call(*args, **kwargs)
    except ClientResponseError as exc:
        return exc.status
    return 0


def close_realtime(pb: PocketBase) -> None:
    """End the SDK's SSE thread: its ``close()`` only sets a flag ("TODO: does not work like
    this" in the SDK), so the stream would stay open until the server ends it."""
    pb.realtime.unsubscribe()
    source = pb.realtime.event_source
    loop = getattr(source, "_loop_thread", None)
    if loop is not None:
        loop.kill = True
        loop.client.close()
        loop.join(timeout=5)


class RealtimeWatch:
    """Collects realtime messages; knows when the SDK has POSTed its subscriptions."""

    def __init__(self, pb: PocketBase) -> None:
        self.messages: list[tuple[str, str]] = []
        self.submitted = threading.Event()
        self.answers: list[int] = []
        self._wanted: str | None = None
        self.arrived = threading.Event()
        pb.after_send = self._after_send

    def _after_send(self, response: httpx.Response, data: Any, options: dict[str, Any]) -> Any:
        request = response.request
        if request.url.path == "/api/realtime" and request.method == "POST":
            self.answers.append(response.status_code)
            if response.status_code == 204:
                self.submitted.set()
        return data

    def expect(self, title: str) -> None:
        self._wanted = title

    def __call__(self, message: Any) -> None:
        record: Record = message.record
        self.messages.append((message.action, record.id))
        if message.action == "create" and getattr(record, "title", None) == self._wanted:
            self.arrived.set()


def probe_realtime(base_url: str) -> str:
    """What ``GET /api/realtime`` answers (status, content type, first bytes)."""
    try:
        with httpx.stream("GET", f"{base_url}/api/realtime", timeout=3) as resp:
            first = next(resp.iter_bytes(), b"")[:200]
            ctype = resp.headers.get("content-type")
            return f"GET /api/realtime answered {resp.status_code} {ctype}: {first!r}"
    except httpx.HTTPError as exc:
        return f"GET /api/realtime failed: {exc!r}"


@pytest.fixture
def pb_client(target: Target) -> Iterator[PocketBase]:
    client = PocketBase(target.url, timeout=15.0)
    yield client
    close_realtime(client)
    client.http_client.close()


def sign_up_and_log_in(pb: PocketBase, target: Target) -> tuple[Record, str, str]:
    """Steps ``signup`` and ``login``; returns the user, its email and a unique suffix."""
    suffix = secrets.token_hex(5)
    email, password = f"py-{suffix}@postly.test", f"py-pass-{suffix}"
    users = pb.collection("users")
    user = users.create(
        {"email": email, "password": password, "passwordConfirm": password,
         "name": "Python SDK", "emailVisibility": True}
    )
    assert len(user.id) == 15 and user.email == email and user.name == "Python SDK"
    assert not hasattr(user, "password") and not hasattr(user, "token_key")
    assert not pb.auth_store.token, "signing up must not log in"

    auth = users.auth_with_password(email, password)
    assert auth.token.count(".") == 2
    assert auth.record.id == user.id and pb.auth_store.model.id == user.id
    assert pb.auth_store.token == auth.token
    assert status_of(PocketBase(target.url).collection("users").auth_with_password,
                     email, "wrong-password-1") == 400
    return user, email, suffix


def log_out(pb: PocketBase, target: Target, user: Record) -> None:
    """Step ``logout``: the cleared client is a guest again."""
    pb.auth_store.clear()
    assert not pb.auth_store.token
    assert status_of(pb.collection("posts").create,
                     {"title": "guest post", "status": "draft", "author": user.id}) == 400
    assert status_of(pb.collection("users").auth_refresh) == 401
    assert target.pb.http.get(f"/api/collections/users/records/{user.id}").status_code == 200


def test_python_sdk_crud_session(target: Target, pb_client: PocketBase) -> None:
    pb = pb_client
    user, email, suffix = sign_up_and_log_in(pb, target)
    users, posts = pb.collection("users"), pb.collection("posts")

    # create with a file, then download it
    cover = png_bytes(seed=suffix)
    post = posts.create(
        {"title": f"Python SDK post {suffix}", "status": "draft", "author": user.id,
         "tags": ["python", "go"], "views": 1, "meta": '{"sdk": "python"}',
         "cover": FileUpload(("cover.png", cover, "image/png"))}
    )
    assert post.title == f"Python SDK post {suffix}" and post.author == user.id
    assert post.tags == ["python", "go"] and post.views == 1
    assert post.meta == {"sdk": "python"}
    assert post.cover.startswith("cover_") and post.cover.endswith(".png")
    assert not hasattr(post, "moderation_note")
    download = httpx.get(pb.files.get_url(post, post.cover), timeout=15)
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert download.content == cover

    # list with expand and filter
    page = posts.get_list(1, 30, {
        "filter": pb.filter("author = {:author} && title ~ {:title}",
                            {"author": user.id, "title": suffix}),
        "expand": "author", "sort": "-created",
    })
    assert (page.page, page.per_page, page.total_items) == (1, 30, 1)
    assert [item.id for item in page.items] == [post.id]
    assert page.items[0].expand["author"].id == user.id
    assert page.items[0].expand["author"].email == email
    seeded = posts.get_list(1, 2, {"filter": "status = 'published'", "expand": "author",
                                   "sort": "created", "skipTotal": 1})
    assert len(seeded.items) == 2 and seeded.total_items == -1
    for item in seeded.items:
        assert item.status == "published" and item.expand["author"].id == item.author

    # update with modifiers
    updated = posts.update(post.id, {"title": f"Python SDK edited {suffix}", "views+": 4,
                                     "tags-": "go"})
    assert (updated.id, updated.title) == (post.id, f"Python SDK edited {suffix}")
    assert updated.views == 5 and updated.tags == ["python"] and updated.cover == post.cover
    again = posts.get_one(post.id, {"fields": "id,title,views"})
    assert (again.id, again.title, again.views) == (post.id, updated.title, 5)

    # delete
    assert posts.delete(post.id) is True
    assert status_of(posts.get_one, post.id) == 404
    assert target.pb.http.get(f"/api/collections/posts/records/{post.id}").status_code == 404

    # auth refresh
    refreshed = users.auth_refresh()
    assert refreshed.token.count(".") == 2 and refreshed.record.id == user.id
    assert refreshed.record.email == email and pb.auth_store.token == refreshed.token

    log_out(pb, target, user)


def test_python_sdk_realtime(target: Target, pb_client: PocketBase) -> None:
    pb = pb_client
    user, _, suffix = sign_up_and_log_in(pb, target)
    posts = pb.collection("posts")

    # subscribe, wait until the SDK has registered the subscription, receive a create
    watch = RealtimeWatch(pb)
    title = f"Python SDK realtime {suffix}"
    watch.expect(title)
    posts.subscribe(watch)
    assert watch.submitted.wait(REALTIME_WAIT), (
        f"the SDK never registered its subscription (POST /api/realtime answers: "
        f"{watch.answers}); {probe_realtime(target.url)}"
    )
    live = posts.create({"title": title, "status": "draft", "author": user.id})
    assert watch.arrived.wait(REALTIME_WAIT), f"no realtime create event; got {watch.messages}"
    assert ("create", live.id) in watch.messages
    posts.unsubscribe()
    assert posts.delete(live.id) is True

    log_out(pb, target, user)


def test_python_sdk_realtime_mixes_public_and_owner_only_topics(target: Target, pb_client: PocketBase) -> None:
    """One SDK client on a public topic (``posts``: the gateway's shared stream) and an
    owner-only one (``attachments``: the client's own upstream stream) receives both."""
    pb = pb_client
    user, _, suffix = sign_up_and_log_in(pb, target)
    got: dict[str, list[tuple[str, str]]] = {"posts": [], "attachments": []}
    both = threading.Event()

    def listener(name: str) -> Any:
        def receive(message: Any) -> None:
            got[name].append((message.action, message.record.id))
            if got["posts"] and got["attachments"]:
                both.set()
        return receive

    watch = RealtimeWatch(pb)
    pb.collection("posts").subscribe(listener("posts"))
    assert watch.submitted.wait(REALTIME_WAIT), f"subscription not registered: {watch.answers}"
    watch.submitted.clear()
    pb.collection("attachments").subscribe(listener("attachments"))
    assert watch.submitted.wait(REALTIME_WAIT), f"subscription not registered: {watch.answers}"
    attachment = pb.collection("attachments").create(
        {"title": f"mine {suffix}", "owner": user.id,
         "file": FileUpload(("note.txt", b"for me", "text/plain"))}
    )
    post = pb.collection("posts").create({"title": f"mixed {suffix}", "status": "draft", "author": user.id})
    assert both.wait(REALTIME_WAIT), f"not both topics' events: {got}"
    assert ("create", post.id) in got["posts"]
    assert ("create", attachment.id) in got["attachments"]
    pb.realtime.unsubscribe()
    assert pb.collection("attachments").delete(attachment.id) is True
    assert pb.collection("posts").delete(post.id) is True
    log_out(pb, target, user)
