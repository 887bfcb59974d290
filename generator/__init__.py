"""hapta-gen: generate a gateway for a PocketBase schema.

The gateway is a pure-ASGI proxy in front of PocketBase that validates requests before PocketBase
sees them; FastAPI serves only its docs and ops pages (``/docs``, ``/health``, ``/metrics``).

``generate`` and friends load lazily, so commands that do not render (``schema pull``) do not
pay for importing black and Jinja.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import GenerationResult, generate
    from .ir.config import Config, load_config

__all__ = ["Config", "GenerationResult", "generate", "load_config"]
__version__ = "0.1.0"

_LAZY = {"GenerationResult": "api", "generate": "api", "Config": "ir.config", "load_config": "ir.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
