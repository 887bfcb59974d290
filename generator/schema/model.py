"""The validated input model: PocketBase collections as hapta-gen reads them.

This is what every accepted export format becomes after loading (see ``loader``): the current
PocketBase format (flat field options, 0.23+), typed and checked. It describes PocketBase, not
Python; Python names and types are decided later, in the intermediate model (``ir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal[
    "text", "editor", "number", "bool", "email", "url", "date", "autodate", "select", "file",
    "relation", "json", "geoPoint", "password",
]
FIELD_TYPES: tuple[str, ...] = (
    "text", "editor", "number", "bool", "email", "url", "date", "autodate", "select", "file",
    "relation", "json", "geoPoint", "password",
)
CollectionType = Literal["base", "auth", "view"]
COLLECTION_TYPES: tuple[str, ...] = ("base", "auth", "view")


@dataclass(frozen=True)
class PBField:
    """One field, with every option PocketBase defines for its type (defaults where absent)."""

    name: str
    type: FieldType
    id: str = ""
    system: bool = False
    hidden: bool = False
    required: bool = False
    presentable: bool = False
    help: str = ""
    # text / password
    min: float | None = None
    max: float | None = None
    pattern: str = ""
    autogenerate_pattern: str = ""
    primary_key: bool = False
    # number
    only_int: bool = False
    # editor / json / file
    max_size: int = 0
    convert_urls: bool = False
    # email / url
    only_domains: tuple[str, ...] = ()
    except_domains: tuple[str, ...] = ()
    # date
    date_min: str = ""
    date_max: str = ""
    # autodate
    on_create: bool = False
    on_update: bool = False
    # select / file / relation
    values: tuple[str, ...] = ()
    max_select: int = 0
    min_select: int = 0
    mime_types: tuple[str, ...] = ()
    thumbs: tuple[str, ...] = ()
    protected: bool = False
    collection_id: str = ""
    cascade_delete: bool = False

    @property
    def multiple(self) -> bool:
        """Select, file and relation fields hold a list when ``maxSelect`` is above 1."""
        return self.type in ("select", "file", "relation") and self.max_select > 1


@dataclass(frozen=True)
class Rules:
    """API rules: ``None`` is superuser only, ``""`` is public, anything else a filter."""

    list: str | None = None
    view: str | None = None
    create: str | None = None
    update: str | None = None
    delete: str | None = None
    auth: str | None = None
    manage: str | None = None


@dataclass(frozen=True)
class AuthOptions:
    """The parts of an auth collection's options the gateway needs (no secrets)."""

    password_enabled: bool = True
    identity_fields: tuple[str, ...] = ("email",)
    oauth2_enabled: bool = False
    oauth2_providers: tuple[str, ...] = ()
    otp_enabled: bool = False
    mfa_enabled: bool = False


@dataclass(frozen=True)
class PBCollection:
    name: str
    type: CollectionType
    id: str
    system: bool = False
    fields: tuple[PBField, ...] = ()
    rules: Rules = field(default_factory=Rules)
    indexes: tuple[str, ...] = ()
    view_query: str = ""
    auth: AuthOptions | None = None

    def field(self, name: str) -> PBField | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class PBSchema:
    collections: tuple[PBCollection, ...]
    #: What the loader noticed and accepted (dangling relations and such), one line each.
    warnings: tuple[str, ...] = ()

    def by_id_or_name(self, key: str) -> PBCollection | None:
        return next((c for c in self.collections if key in (c.id, c.name)), None)
