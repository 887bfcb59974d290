"""``reshape.Reshape``: a 200 JSON answer is changed whole; one past the bound is not held."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from gateway import reshape
from gateway.errors import ApiError
from gateway.reshape import Reshape


async def _add_flag(data: Any) -> Any:
    return {**data, "changed": True}


def _run(strict: bool, pieces: list[bytes]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> None:
        out = Reshape(send, _add_flag, strict)
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]}
        await out(start)
        for n, piece in enumerate(pieces):
            await out({"type": "http.response.body", "body": piece, "more_body": n < len(pieces) - 1})

    asyncio.run(scenario())
    return sent


def test_an_answer_is_changed_and_its_length_recomputed() -> None:
    sent = _run(True, [b'{"a":', b"1}"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert orjson.loads(body) == {"a": 1, "changed": True}
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()


def test_an_answer_past_the_bound_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reshape, "MAX_ANSWER", 8)
    pieces = [b'{"a":"', b"0123456789", b'"}']
    sent = _run(False, pieces)  # not strict: passes as it came
    assert sent[0]["status"] == 200 and b"".join(m.get("body", b"") for m in sent[1:]) == b"".join(pieces)
    with pytest.raises(ApiError) as refused:  # strict (hidden fields): never unchecked
        _run(True, pieces)
    assert refused.value.status == 502
