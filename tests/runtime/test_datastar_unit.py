"""The Datastar list stream's page (``layers.sse``): it stays at most ``LIST_SIZE`` records, a new
one on top pushing the bottom one off (its element removed), so a long-lived page on a busy
collection grows neither in the gateway nor in the browser."""

from __future__ import annotations

import asyncio

import orjson
from gateway.catalog import BY_NAME
from gateway.fragments import Fragments
from gateway.layers.sse import LIST_SIZE, _DatastarWriter, _Lister
from gateway.ssefeed import Event


def test_the_page_keeps_list_size_records_and_drops_the_bottom_one() -> None:
    spec = BY_NAME["posts"]
    lister = _Lister.__new__(_Lister)  # as a first read of a full page left it (no PocketBase)
    lister.spec, lister.count = spec, LIST_SIZE
    lister.shown = {f"p{i:03d}": None for i in range(LIST_SIZE)}  # p000 at the bottom
    writer = _DatastarWriter(spec, Fragments(), lister, b"")

    def created(record_id: str) -> str:
        data = orjson.dumps({"action": "create", "record": {"id": record_id, "title": "t"}})
        return asyncio.run(writer.event(Event(record_id, "create", data))).decode()

    text = created("new1")
    assert "posts-new1" in text and "mode prepend" in text
    assert "selector #posts-p000" in text and "mode remove" in text  # the bottom one left
    assert len(lister.shown) == LIST_SIZE and "p000" not in lister.shown and lister.count == LIST_SIZE + 1
    text = created("new2")
    assert "selector #posts-p001" in text and len(lister.shown) == LIST_SIZE
    # a deleted record on the page frees a place: the next create pushes nothing off
    asyncio.run(writer.event(Event("d", "delete", orjson.dumps({"action": "delete", "record": {"id": "p050"}}))))
    text = created("new3")
    assert "mode remove" not in text and len(lister.shown) == LIST_SIZE
