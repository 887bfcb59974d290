"""Shared by the real-client tests in tests/sdk (importable: pytest puts this dir on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.pbserver import PocketBaseServer

#: The steps of the scripted SDK session, in order (JS and Python run the same flow).
STEPS = (
    "signup",
    "login",
    "create-with-file",
    "list-expand-filter",
    "update",
    "delete",
    "auth-refresh",
    "realtime",
    "logout",
)


@dataclass(frozen=True)
class Target:
    """What a real client is pointed at: PocketBase itself (the control) or the gateway."""

    name: str
    url: str
    pb: PocketBaseServer
    seed: dict[str, list[dict[str, Any]]]
