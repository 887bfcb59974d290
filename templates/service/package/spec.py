"""The shapes of the gateway's collection catalog (filled in by ``catalog``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True)
class Rules:
    """PocketBase API rules: ``None`` superuser only, ``""`` public, else a filter."""

    list: str | None
    view: str | None
    create: str | None
    update: str | None
    delete: str | None


@dataclass(frozen=True)
class ExpandSpec:
    key: str
    target: str
    multiple: bool
    back: bool


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    id: str
    kind: str  #: base | auth | view
    record: type[BaseModel]
    create: type[BaseModel] | None
    update: type[BaseModel] | None
    rules: Rules
    expands: tuple[ExpandSpec, ...]
    depends_on: tuple[str, ...]
    public_list: bool
    public_view: bool
