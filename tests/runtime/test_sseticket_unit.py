"""The in-memory stream tickets: single use, swept as they expire, bounded."""

from __future__ import annotations

import asyncio

import pytest
from gateway import sseticket
from gateway.errors import ApiError
from gateway.sseticket import MemoryTickets


def test_a_ticket_is_redeemed_once() -> None:
    async def scenario() -> tuple[bytes | None, bytes | None]:
        tickets = MemoryTickets(30)
        ticket, _ = await tickets.issue(b"Bearer token")
        return await tickets.redeem(ticket), await tickets.redeem(ticket)

    assert asyncio.run(scenario()) == (b"Bearer token", None)


def test_expired_tickets_are_dropped_when_the_next_is_issued() -> None:
    async def scenario() -> int:
        tickets = MemoryTickets(0)  # expired as soon as issued
        for _ in range(50):
            await tickets.issue(b"x")
        return len(tickets)

    assert asyncio.run(scenario()) == 1  # only the newest is still held


def test_live_tickets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sseticket, "MAX_TICKETS", 3)

    async def scenario() -> int:
        tickets = MemoryTickets(30)
        for _ in range(3):
            await tickets.issue(b"x")
        with pytest.raises(ApiError) as refused:
            await tickets.issue(b"x")
        return refused.value.status

    assert asyncio.run(scenario()) == 503
