"""The build's check of ``hapta.yaml``'s ``extensions``: each module imports (from
``extension_paths``, relative to ``--out`` or to ``hapta.yaml``, then the usual import path), and its hooks name
exposed collections. A failure is a ``ConfigError`` line; nothing is written."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ..errors import ConfigError
from ..ir.model import SchemaIR

_HOOKS = {"before_write": ("create", "update", "*"), "after_read": ("list", "view", "*")}
#: The gateway's own paths (the generated ``extensions.RESERVED``: keep both the same).
_RESERVED = (
    "/api/",
    "/docs",
    "/openapi.json",
    "/health",
    "/metrics",
    "/sse/",
    "/datastar/",
    "/demo/live/",
    "/static/datastar.js",
)


def check_extensions(ir: SchemaIR, out: Path, config: Path | None = None) -> None:
    """Import every extension as the gateway will at start (from ``extension_paths`` relative
    to ``out``; for a build elsewhere, relative to the ``hapta.yaml`` too); check what it
    exposes."""
    if not ir.extensions:
        return
    bases = [out] + ([config.parent] if config is not None else [])
    added = [
        str((base / p).resolve())
        for p in ir.extension_paths
        for base in bases
        if (base / p).is_dir()
    ]
    saved = list(sys.path)
    sys.path[:0] = added
    try:
        for name in ir.extensions:
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # whatever the module raises: one line
                raise ConfigError(
                    f"extensions: {name} cannot be imported ({type(exc).__name__}: {exc})"
                ) from None
            _check(name, module, {c.name for c in ir.collections} | {c.id for c in ir.collections})
    finally:
        sys.path[:] = saved


def _check(name: str, module: object, exposed: set[str]) -> None:
    router = getattr(module, "router", None)
    if router is not None:
        routes = getattr(router, "routes", None)
        if not isinstance(routes, list):
            raise ConfigError(f"extensions: {name}: router is not a FastAPI APIRouter")
        for route in routes:
            path = str(getattr(route, "path", ""))
            if any(path == r.rstrip("/") or path.startswith(r) for r in _RESERVED):
                raise ConfigError(
                    f"extensions: {name}: route {path} is reserved (extensions live outside /api/)"
                )
    for attribute, operations in _HOOKS.items():
        table = getattr(module, attribute, None)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"extensions: {name}: {attribute} must be a dict of hooks")
        for label in table:
            collection, _, operation = str(label).partition(":")
            if collection not in exposed:
                raise ConfigError(
                    f"extensions: {name}: {attribute} names {collection!r}, which is not an "
                    "exposed collection of the schema"
                )
            if operation not in operations:
                raise ConfigError(
                    f"extensions: {name}: {attribute} key {label!r}: the operation must be one "
                    f"of {', '.join(operations)}"
                )
