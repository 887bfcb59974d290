"""The shapes of the gateway's collection catalog (filled in by ``catalog``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
class FieldSpec:
    """A schema field as the gateway checks it at run time (sort keys, multipart, uploads)."""

    name: str
    type: str
    multiple: bool = False
    required: bool = False
    hidden: bool = False
    max_select: int = 0
    #: Files: the largest accepted upload, in bytes (PocketBase's 5 MB when the schema says 0).
    max_size: int = 0
    mime_types: tuple[str, ...] = ()
    thumbs: tuple[str, ...] = ()
    protected: bool = False
    #: Relations: the exposed collection the field points at.
    target: str | None = None


@dataclass(frozen=True)
class AuthSpec:
    """What an auth collection allows (PocketBase still decides every request)."""

    password: bool
    identity_fields: tuple[str, ...]
    otp: bool
    oauth2: bool
    mfa: bool


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
    fields: tuple[FieldSpec, ...] = ()
    auth: AuthSpec | None = None
    #: ``hapta.yaml``'s ``collections: <name>:``: the operations served (``list``, ``view``,
    #: ``create``, ``update``, ``delete``, ``file``, ``auth``, ``realtime``; the others answer
    #: 405), the fields withheld from every answer, and the response cache's settings.
    operations: frozenset[str] = frozenset(
        {"list", "view", "create", "update", "delete", "file", "auth", "realtime"}
    )
    hidden: tuple[str, ...] = ()
    cache: bool = True
    cache_ttl: int | None = None

    @cached_property
    def field_by_name(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}

    @cached_property
    def expand_by_key(self) -> dict[str, ExpandSpec]:
        return {e.key: e for e in self.expands}

    @cached_property
    def file_fields(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields if f.type == "file"}
