"""Feed bookkeeping of the typed streams: feeds left without a client are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from gateway import ssefeed
from gateway.eventsource import READY
from gateway.metrics import Metrics
from gateway.ssefeed import Feeds


async def _quiet_source(
    topic: str, authorization: bytes | None, client_ip: str, session: str | None
) -> AsyncGenerator[tuple[str, bytes], None]:
    """A subscription that is live at once and never has an event."""
    yield READY, b""
    await asyncio.Event().wait()


def test_feeds_kept_for_resumes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssefeed, "MAX_LINGERING", 2)

    async def scenario() -> tuple[int, list[bool]]:
        feeds = Feeds(_quiet_source, Metrics(), client_buffer=4, resume_events=10, resume_window=60)
        subscribers = [
            await feeds.join(f"posts/*?options={n}", None, "198.51.100.7", None, "sse")
            for n in range(3)
        ]
        for sub in subscribers:  # each client leaves: its feed stays for a resume, up to the bound
            feeds.leave(sub)
        closed = [sub.feed.closed for sub in subscribers]
        lingering = len(feeds.lingering)
        await feeds.aclose()
        return lingering, closed

    lingering, closed = asyncio.run(scenario())
    assert lingering == 2
    assert closed == [True, False, False]  # the oldest went first
