"""The intermediate model: everything a template prints, decided in advance.

Frozen dataclasses, built by ``analyze`` from the input model and the config. Every Python
name, type (``types.TypeIR``: kind, constraints, imports), route, cache policy, rate limit and
SSE topic is here, so the templates and printers only loop and print (the input fields are not:
what later stages need of them is spelled out). ``to_json`` dumps it for `hapta-gen build
--dump-ir`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..schema.model import AuthOptions, FieldType, Rules
from .config import OPERATIONS
from .jsonfields import JsonFieldIR
from .ratelimits import RateLimits
from .types import SlotIR, TypeIR


@dataclass(frozen=True)
class FileIR:
    """What a file field allows (``max_size`` 0: PocketBase's default limit)."""

    max_size: int = 0
    mime_types: tuple[str, ...] = ()
    thumbs: tuple[str, ...] = ()
    protected: bool = False


@dataclass(frozen=True)
class FieldIR:
    """One field of a collection: its Python name, and its type in each model."""

    name: str  #: the JSON key PocketBase uses
    attr: str  #: the Python attribute
    alias: str | None  #: set when ``attr`` differs from ``name``
    type: FieldType  #: PocketBase's field type
    required: bool
    hidden: bool
    multiple: bool
    max_select: int  #: select / file / relation: PocketBase's ``maxSelect``
    #: In the response model (``None``: never returned to users: hidden or password).
    record: SlotIR | None
    #: In the create / update models (``None``: cannot be written through the API).
    create: SlotIR | None
    update: SlotIR | None
    #: Relation target (collection name), ``None`` when not in the schema.
    target: str | None
    description: str
    #: select: the options; number: ``only_int`` (read by the update modifiers' schema).
    values: tuple[str, ...] = ()
    only_int: bool = False
    #: number: the schema's ``(min, max)``, which writes must respect.
    bounds: tuple[float | None, float | None] = (None, None)
    file: FileIR | None = None
    #: The catalog's ``FieldSpec(...)`` for a schema field ("" for body-only keys such as
    #: ``passwordConfirm``): what the gateway checks at run time (files, sort, multipart).
    spec: str = ""


@dataclass(frozen=True)
class ModifierIR:
    """A `field+` / `+field` / `field-` key of an update body."""

    key: str
    attr: str
    type: TypeIR
    field: str


@dataclass(frozen=True)
class ExpandIR:
    """One key of ``expand``: a relation field, or a back-relation ``<coll>_via_<field>``."""

    key: str
    attr: str
    alias: str | None
    target: str  #: collection name
    target_class: str  #: its Record class
    target_module: str
    multiple: bool
    back: bool
    via_field: str
    type: TypeIR  #: of the key in the Expand model


@dataclass(frozen=True)
class LiteralIR:
    """A select field's options, as a module-level alias (``PostsStatus = Literal[...]``)."""

    name: str
    type: TypeIR  #: the literal itself (no alias)

    @property
    def values(self) -> tuple[str, ...]:
        return self.type.values


@dataclass(frozen=True)
class CollectionIR:
    name: str
    id: str
    type: str  #: base | auth | view
    system: bool
    module: str
    class_prefix: str
    record_class: str
    create_class: str | None
    update_class: str | None
    page_class: str
    expand_class: str
    fields: tuple[FieldIR, ...]
    modifiers: tuple[ModifierIR, ...]
    expands: tuple[ExpandIR, ...]
    literals: tuple[LiteralIR, ...]
    rules: Rules
    auth: AuthOptions | None
    view_query: str
    #: Collections whose changes change this collection's responses: itself, or for a view the
    #: collections its query reads (``("*",)`` when that cannot be told).
    depends_on: tuple[str, ...]
    records_path: str
    sse_topic: str
    #: True when guests may list / view: responses are the same for every caller and can be
    #: shared, as long as every expanded relation is public too (decided per request).
    public_list: bool
    public_view: bool
    #: Modules whose Record classes the expand model refers to.
    expand_imports: tuple[tuple[str, str], ...]
    #: ``(module, names)`` the collection's model module imports, in import order: the union of
    #: the ``imports`` of every type it uses, and its base classes.
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    #: Every public name the model module defines (for ``__all__`` and re-exports).
    exports: tuple[str, ...]
    #: The catalog's ``AuthSpec(...)`` (auth collections) or ``"None"``.
    auth_spec: str = "None"
    #: ``hapta.yaml``'s ``collections: <name>:``: the operations served (the others: 405),
    #: the fields withheld from every answer, and the cache's settings for this collection.
    operations: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()
    cache_enabled: bool = True
    cache_ttl: int | None = None

    @property
    def policy_summary(self) -> str:
        """``hapta.yaml``'s policy for the collection in words (the generated README), or ""."""
        parts = []
        if self.operations and len(self.operations) < len(OPERATIONS):
            parts.append("operations " + ", ".join(self.operations))
        elif not self.operations:
            parts.append("no operations")
        if self.withheld:
            parts.append("hidden " + ", ".join(self.withheld))
        if not self.cache_enabled:
            parts.append("not cached")
        elif self.cache_ttl is not None:
            parts.append(f"cached at most {self.cache_ttl} s")
        return "; ".join(parts)

    @property
    def field_specs(self) -> tuple[str, ...]:
        return tuple(f.spec for f in self.fields if f.spec)

    @property
    def record_fields(self) -> tuple[FieldIR, ...]:
        return tuple(f for f in self.fields if f.record is not None)

    @property
    def create_fields(self) -> tuple[FieldIR, ...]:
        return tuple(f for f in self.fields if f.create is not None)

    @property
    def update_fields(self) -> tuple[FieldIR, ...]:
        return tuple(f for f in self.fields if f.update is not None)


@dataclass(frozen=True)
class SchemaIR:
    #: ``models/__init__``'s ``(module, names)`` imports, in isort order.
    model_imports: tuple[tuple[str, tuple[str, ...]], ...]
    #: The model classes ``catalog`` imports, in isort order.
    catalog_imports: tuple[str, ...]
    catalog_spec_imports: tuple[str, ...]
    package: str
    distribution: str
    title: str
    version: str
    collections: tuple[CollectionIR, ...]
    excluded: tuple[str, ...]
    ratelimits: RateLimits
    cache_ttl: int
    cache_max_bytes: int
    warnings: tuple[str, ...]
    #: Where ``build`` writes the TypeScript types, relative to its output ("": nowhere).
    typescript_out: str = ""
    #: ``hapta.yaml``'s ``sessions``: ``passthrough`` or ``rolling`` (the catalog's ``SESSIONS``).
    sessions: str = "passthrough"
    #: ``hapta.yaml``'s ``json_schemas``: the typed json fields, by collection and field name.
    json_fields: tuple[JsonFieldIR, ...] = ()
    #: ``hapta.yaml``'s ``cache: enabled`` (``HAPTA_CACHE`` overrides it at run time).
    cache_enabled: bool = True
    #: Modules the gateway imports at start (``extensions``), and where it looks first.
    extensions: tuple[str, ...] = ()
    extension_paths: tuple[str, ...] = ()

    def collection(self, name: str) -> CollectionIR:
        return next(c for c in self.collections if c.name == name)


def to_json(ir: SchemaIR) -> str:
    """The IR as indented JSON (for ``--dump-ir``), stable across runs."""
    return json.dumps(_plain(ir), indent=2, ensure_ascii=False) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(value)
    return value
