"""The intermediate model: everything a template prints, decided in advance.

Frozen dataclasses, built by ``analyze`` from the input model and the config. Every Python
name, type annotation, constraint, route, cache policy, rate limit and SSE topic is here, so the
templates only loop and print. ``to_json`` dumps it for `hapta-gen build --dump-ir`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..schema.model import AuthOptions, PBField, Rules
from .ratelimits import RateLimits


@dataclass(frozen=True)
class FieldIR:
    """One field of a collection, with its Python spelling in each model."""

    source: PBField
    name: str  #: the JSON key PocketBase uses
    attr: str  #: the Python attribute
    alias: str | None  #: set when ``attr`` differs from ``name``
    #: In the response model (``None``: never returned to users: hidden or password).
    record_annotation: str | None
    record_default: str
    #: In the create / update models (``None``: cannot be written through the API).
    create_annotation: str | None
    create_default: str
    update_annotation: str | None
    #: Select fields get a named ``Literal`` alias (``PostsStatus``).
    literal_alias: str | None
    #: Relation target (collection name), ``None`` when not in the schema.
    target: str | None
    description: str
    #: Ready-to-print class-body lines (``None`` where the model lacks the field).
    record_decl: str | None
    create_decl: str | None
    update_decl: str | None
    #: The catalog's ``FieldSpec(...)`` for a schema field ("" for body-only keys such as
    #: ``passwordConfirm``): what the gateway checks at run time (files, sort, multipart).
    spec: str = ""


@dataclass(frozen=True)
class ModifierIR:
    """A `field+` / `+field` / `field-` key of an update body."""

    key: str
    attr: str
    annotation: str
    field: str
    decl: str


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
    decl: str


@dataclass(frozen=True)
class LiteralIR:
    name: str
    values: tuple[str, ...]
    annotation: str


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
    #: ``(module, names)`` the collection's model module imports, in import order.
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    #: Every public name the model module defines (for ``__all__`` and re-exports).
    exports: tuple[str, ...]
    #: The catalog's ``AuthSpec(...)`` (auth collections) or ``"None"``.
    auth_spec: str = "None"

    @property
    def field_specs(self) -> tuple[str, ...]:
        return tuple(f.spec for f in self.fields if f.spec)

    @property
    def record_fields(self) -> tuple[FieldIR, ...]:
        return tuple(f for f in self.fields if f.record_annotation is not None)

    @property
    def create_fields(self) -> tuple[FieldIR, ...]:
        return tuple(f for f in self.fields if f.create_annotation is not None)

    @property
    def update_fields(self) -> tuple[FieldIR, ...]:
        return tuple(f for f in self.fields if f.update_annotation is not None)


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

    def collection(self, name: str) -> CollectionIR:
        return next(c for c in self.collections if c.name == name)


def to_json(ir: SchemaIR) -> str:
    """The IR as indented JSON (for ``--dump-ir``), stable across runs."""
    return json.dumps(_plain(ir), indent=2, ensure_ascii=False) + "\n"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
