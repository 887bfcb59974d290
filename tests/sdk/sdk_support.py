"""Shared by the real-client tests in tests/sdk (importable: pytest puts this dir on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hapta_gen.dev.pbserver import PocketBaseServer


@dataclass(frozen=True)
class Target:
    """What a real client is pointed at: PocketBase itself (the control) or the gateway."""

    name: str
    url: str
    pb: PocketBaseServer
    seed: dict[str, list[dict[str, Any]]]


#: The steps of the scripted SDK session, by part, in order (JS and Python run the same flow).
CRUD_STEPS = (
    "signup",
    "login",
    "create-with-file",
    "list-expand-filter",
    "update",
    "delete",
    "auth-refresh",
    "logout",
)
REALTIME_STEPS = ("signup", "login", "realtime", "logout")
