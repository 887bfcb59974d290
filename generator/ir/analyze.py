"""Input model + config → the intermediate model (``model``). Pure: no I/O, no Jinja.

Decides which collections are exposed, every Python name (with conflicts resolved here, once),
the relation graph behind ``expand`` and cache tags, and per-collection policies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..schema.model import PBCollection, PBField, PBSchema
from . import fieldtypes, naming, types
from .config import OPERATIONS, Config
from .jsonfields import JsonFieldIR, JsonSchemaDoc, check_fields
from .model import CollectionIR, ExpandIR, FieldIR, FileIR, LiteralIR, ModifierIR, SchemaIR
from .ratelimits import check_collections
from .types import SlotIR, TypeIR

#: Suffixes of the per-collection names (``Response``: the TypeScript types' own).
_RECORD_SUFFIXES = ("Record", "Create", "Update", "Page", "Expand", "Response")
_VIEW_SOURCE = re.compile(r"\b(?:from|join)\s+[`\"\[]?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class _Names:
    module: str
    prefix: str


def analyze(
    schema: PBSchema, config: Config, json_schemas: tuple[JsonSchemaDoc, ...] = ()
) -> SchemaIR:
    """Build the frozen IR for ``schema`` under ``config`` (``json_schemas``: the files of
    its ``json_schemas``, read by ``jsonfields.load_json_schemas``)."""
    known = {c.name for c in schema.collections}
    unknown = sorted(set(config.exclude) - known)
    if unknown:
        raise ConfigError(f"exclude names {unknown[0]!r}, which is not a collection of the schema")
    exposed = sorted(
        (c for c in schema.collections
         if c.name not in config.exclude and (config.include_system or not c.system)),
        key=lambda c: c.name,
    )
    excluded = tuple(sorted(known - {c.name for c in exposed}))
    caches = config.collection_cache()
    _check_policies(config, caches, {c.name: c for c in exposed})
    exposed = [_withhold(c, config.collections.get(c.name)) for c in exposed]
    limits = config.rate_limits()
    check_collections(limits, {c.name for c in exposed})
    check_fields(json_schemas, schema, {c.name for c in exposed})
    names = _assign_names(exposed)
    taken_globals = set(naming.MODEL_MODULE_NAMES) | naming.TS_NAMES
    for n in names.values():
        taken_globals.update(n.prefix + s for s in _RECORD_SUFFIXES)
    json_fields = _json_fields(json_schemas, names, taken_globals)
    resolve = {c.id: c for c in exposed} | {c.name: c for c in exposed}
    back_refs = _back_references(exposed, resolve)

    collections = []
    for col in exposed:
        ir = _collection(
            col, names, taken_globals, resolve, back_refs.get(col.name, []), schema,
            {jf.field: jf for jf in json_fields if jf.collection == col.name},
        )
        policy = config.collections.get(col.name)
        cache = caches.get(col.name)
        collections.append(
            replace(
                ir,
                operations=_operations(col, policy.operations if policy else None),
                withheld=tuple(policy.hidden) if policy else (),
                cache_enabled=cache.enabled if cache else True,
                cache_ttl=cache.ttl if cache else None,
            )
        )
    return SchemaIR(
        model_imports=_model_imports(collections, json_fields),
        catalog_imports=naming.import_order(
            n for c in collections for n in (c.record_class, c.create_class, c.update_class) if n
        ),
        catalog_spec_imports=naming.import_order(
            ["CollectionSpec", "FieldSpec", "Rules"]
            + (["ExpandSpec"] if any(c.expands for c in collections) else [])
            + (["AuthSpec"] if any(c.auth_spec != "None" for c in collections) else [])
        ),
        package=config.package,
        distribution=config.distribution,
        title=config.title,
        version=config.version,
        collections=tuple(collections),
        excluded=excluded,
        ratelimits=limits,
        cache_ttl=config.cache.ttl,
        cache_max_bytes=config.cache.max_bytes,
        cache_enabled=config.cache.enabled,
        extensions=config.extensions,
        extension_paths=config.extension_paths,
        warnings=schema.warnings + limits.warnings,
        typescript_out=config.typescript.out if config.typescript.enabled else "",
        sessions=config.sessions,
        json_fields=json_fields,
    )


def _json_fields(
    docs: tuple[JsonSchemaDoc, ...], names: dict[str, _Names], taken_globals: set[str]
) -> tuple[JsonFieldIR, ...]:
    """Each typed json field's module and root class (``PostsMeta``), unique among the rest."""
    modules: set[str] = set()
    out = []
    for doc in sorted(docs, key=lambda d: (d.collection, d.field)):
        module = naming.module_name(f"{doc.collection}_{doc.field}", taken=modules)
        modules.add(module)
        cls = naming.class_name(
            names[doc.collection].prefix + naming.class_name(doc.field), taken=taken_globals
        )
        taken_globals.add(cls)
        out.append(JsonFieldIR(doc.collection, doc.field, module, cls, doc.source, doc.schema))
    return tuple(out)


def _typed_json(slot: SlotIR | None, jf: JsonFieldIR | None) -> SlotIR | None:
    """A json field's slot typed with its schema's root model (the same key rules)."""
    if slot is None or jf is None:
        return slot
    model = TypeIR("model", name=jf.class_name, nullable=slot.type.nullable)
    return SlotIR(model, required=slot.required)


def _check_policies(
    config: Config, caches: Mapping[str, object], exposed: dict[str, PBCollection]
) -> None:
    """``collections:`` and ``cache: collections:`` name exposed collections and their fields."""
    for section, names in (("collections", config.collections), ("cache: collections", caches)):
        for name in names:
            if name not in exposed:
                what = "an exposed collection" if name in config.exclude else "a collection"
                raise ConfigError(f"{section} names {name!r}, which is not {what} of the schema")
    for name, policy in config.collections.items():
        col = exposed[name]
        for field in policy.hidden:
            found = col.field(field)
            if found is None:
                raise ConfigError(
                    f"collections: {name}: hidden names {field!r}, which is not a field of {name}"
                )
            if field == "id":
                raise ConfigError(f"collections: {name}: hidden cannot hide id")


def _withhold(col: PBCollection, policy: object) -> PBCollection:
    """``col`` with the fields ``hidden`` in its policy hidden as PocketBase hides its own:
    out of the Record, Create and Update models, the expands and the modifiers."""
    hidden = set(getattr(policy, "hidden", ()))
    if not hidden:
        return col
    fields = tuple(replace(f, hidden=True) if f.name in hidden else f for f in col.fields)
    return replace(col, fields=fields)


def _operations(col: PBCollection, chosen: tuple[str, ...] | None) -> tuple[str, ...]:
    """The operations the gateway serves for ``col`` (``None``: all of them)."""
    return tuple(op for op in OPERATIONS if chosen is None or op in chosen)


def _assign_names(collections: list[PBCollection]) -> dict[str, _Names]:
    modules: set[str] = set()
    prefixes: set[str] = set()
    out = {}
    for col in collections:
        module = naming.module_name(col.name, taken=modules)
        prefix = naming.class_name(col.name, taken=prefixes)
        modules.add(module)
        prefixes.add(prefix)
        out[col.name] = _Names(module, prefix)
    return out


def _back_references(
    collections: list[PBCollection], resolve: dict[str, PBCollection]
) -> dict[str, list[tuple[PBCollection, PBField]]]:
    """For each collection, the (collection, relation field) pairs that point at it."""
    refs: dict[str, list[tuple[PBCollection, PBField]]] = {}
    for col in collections:
        for f in col.fields:
            target = resolve.get(f.collection_id) if f.type == "relation" else None
            if target is not None and col.type != "view" and not f.hidden:
                refs.setdefault(target.name, []).append((col, f))
    return refs


def _collection(
    col: PBCollection,
    names: dict[str, _Names],
    taken_globals: set[str],
    resolve: dict[str, PBCollection],
    back_refs: list[tuple[PBCollection, PBField]],
    schema: PBSchema,
    typed_json: dict[str, JsonFieldIR],
) -> CollectionIR:
    own = names[col.name]
    attrs: set[str] = set(_BASE_ATTRS)
    literals: list[LiteralIR] = []
    fields: list[FieldIR] = []
    writable = col.type != "view"
    for f in _with_auth_inputs(col):
        literal = None
        if f.type == "select" and f.values:
            alias = naming.class_name(own.prefix + naming.class_name(f.name), taken=taken_globals)
            taken_globals.add(alias)
            literal = fieldtypes.literal_type(f, alias)
            assert literal is not None
            literals.append(LiteralIR(alias, replace(literal, name="")))
        attr = "id" if f.name == "id" else naming.identifier(f.name, taken=attrs)
        attrs.add(attr)
        record = None if f.name in _AUTH_INPUT_ONLY else fieldtypes.record_slot(f, literal)
        create = fieldtypes.input_slot(f, literal, update=False) if writable else None
        update = fieldtypes.input_slot(f, literal, update=True) if writable else None
        if f.name == "oldPassword":
            create = None
        if f.primary_key:
            update = None  # a record's id cannot change
        if f.type == "json" and f.name in typed_json:
            jf = typed_json[f.name]
            record = None if record is None else SlotIR(TypeIR("model", name=jf.class_name, nullable=True))
            create, update = _typed_json(create, jf), _typed_json(update, jf)
        target = resolve.get(f.collection_id) if f.type == "relation" else None
        fields.append(
            FieldIR(
                name=f.name,
                attr=attr,
                alias=None if attr == f.name else f.name,
                type=f.type,
                required=f.required,
                hidden=f.hidden,
                multiple=f.multiple,
                max_select=f.max_select,
                record=record,
                create=create,
                update=update,
                target=target.name if target is not None else None,
                description=f.help,
                values=f.values,
                only_int=f.only_int,
                bounds=(f.min, f.max) if f.type == "number" else (None, None),
                file=_file(f),
                spec="" if f.name in _AUTH_INPUT_ONLY else field_spec(f, target.name if target else None),
            )
        )
    modifiers = _modifiers(fields, attrs) if writable else ()
    expands = _expands(col, fields, names, resolve, back_refs)
    expand_imports = sorted(
        {(e.target_module, e.target_class) for e in expands if e.target != col.name}
    )
    literal_names = tuple(lit.name for lit in literals)
    classes = tuple(
        c for c in (own.prefix + "Expand", own.prefix + "Record", own.prefix + "Page",
                    own.prefix + "Create" if writable else None,
                    own.prefix + "Update" if writable else None) if c
    )
    return CollectionIR(
        name=col.name,
        id=col.id,
        type=col.type,
        system=col.system,
        module=own.module,
        class_prefix=own.prefix,
        record_class=own.prefix + "Record",
        create_class=own.prefix + "Create" if writable else None,
        update_class=own.prefix + "Update" if writable else None,
        page_class=own.prefix + "Page",
        expand_class=own.prefix + "Expand",
        fields=tuple(fields),
        modifiers=modifiers,
        expands=expands,
        literals=tuple(literals),
        rules=col.rules,
        auth=col.auth,
        view_query=col.view_query,
        depends_on=_depends_on(col, schema),
        records_path=f"/api/collections/{col.name}/records",
        sse_topic=f"{col.name}/*",
        public_list=col.rules.list == "",
        public_view=col.rules.view == "",
        expand_imports=tuple(expand_imports),
        imports=_imports(fields, modifiers, expands, literals, writable, bool(expand_imports))
        + tuple(
            (f".json_fields.{jf.module}", (jf.class_name,))
            for jf in sorted(typed_json.values(), key=lambda jf: jf.module)
        ),
        exports=literal_names + classes,
        auth_spec=auth_spec(col),
    )


#: PocketBase's per-file limit when a file field's ``maxSize`` is 0.
DEFAULT_FILE_MAX = 5 * 1024 * 1024


def field_spec(f: PBField, target: str | None) -> str:
    """The catalog's ``FieldSpec(...)``: what the gateway checks at run time, defaults omitted."""
    args = [f"name={f.name!r}", f"type={f.type!r}"]
    if f.multiple:
        args.append("multiple=True")
    if f.required:
        args.append("required=True")
    if f.hidden:
        args.append("hidden=True")
    if f.type in ("select", "file", "relation"):
        args.append(f"max_select={max(f.max_select, 1)}")
    if f.type == "file":
        args.append(f"max_size={f.max_size or DEFAULT_FILE_MAX}")
        if f.mime_types:
            args.append(f"mime_types={f.mime_types!r}")
        if f.thumbs:
            args.append(f"thumbs={f.thumbs!r}")
        if f.protected:
            args.append("protected=True")
    if target is not None:
        args.append(f"target={target!r}")
    return f"FieldSpec({', '.join(args)})"


def auth_spec(col: PBCollection) -> str:
    """The catalog's ``AuthSpec(...)`` for an auth collection, else ``"None"``."""
    a = col.auth
    if col.type != "auth" or a is None:
        return "None"
    return (
        f"AuthSpec(password={a.password_enabled}, identity_fields={a.identity_fields!r}, "
        f"otp={a.otp_enabled}, oauth2={a.oauth2_enabled}, mfa={a.mfa_enabled})"
    )


def _model_imports(
    collections: list[CollectionIR], json_fields: tuple[JsonFieldIR, ...] = ()
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``models/__init__``'s imports: ``.base``, every collection module and the typed json
    fields' root models, sorted by module."""
    modules = {"base": naming.import_order(("GeoPoint", "PageBase", "RecordBase"))}
    modules |= {c.module: naming.import_order(c.exports) for c in collections}
    modules |= {f"json_fields.{jf.module}": (jf.class_name,) for jf in json_fields}
    return tuple(sorted(modules.items()))


def _file(f: PBField) -> FileIR | None:
    if f.type != "file":
        return None
    return FileIR(
        max_size=f.max_size, mime_types=f.mime_types, thumbs=f.thumbs, protected=f.protected
    )


def _imports(
    fields: list[FieldIR],
    modifiers: tuple[ModifierIR, ...],
    expands: tuple[ExpandIR, ...],
    literals: list[LiteralIR],
    writable: bool,
    type_checking: bool,
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What a collection's model module imports: the names of every type it uses, its bases
    (and ``TYPE_CHECKING`` when it refers to other modules' Record classes)."""
    slots = [s for f in fields for s in (f.record, f.create, f.update) if s is not None]
    used_types = [s.type for s in slots] + [m.type for m in modifiers]
    used_types += [e.type for e in expands] + [lit.type for lit in literals]
    names = {name for t in used_types for name in t.imports}
    names |= {"ExpandBase", "RecordBase", "PageBase"} | ({"InputBase"} if writable else set())
    names.add("Field")  # Page.items uses Field(default_factory=list)
    if type_checking:
        names.add("TYPE_CHECKING")
    return types.module_imports(names)


#: Attributes every Record already has (``RecordBase``): user fields must not reuse them.
_BASE_ATTRS = ("collectionId", "collectionName", "expand")
#: Body keys of auth collections that are not schema fields.
_AUTH_INPUT_ONLY = ("passwordConfirm", "oldPassword")


def _with_auth_inputs(col: PBCollection) -> list[PBField]:
    """The schema's fields, plus ``passwordConfirm``/``oldPassword`` on auth collections."""
    fields = list(col.fields)
    password = col.field("password")
    if col.type == "auth" and password is not None:
        at = fields.index(password) + 1
        fields[at:at] = [
            PBField(name="passwordConfirm", type="password", required=True, system=True),
            PBField(name="oldPassword", type="password", required=False, system=True),
        ]
    return fields


def _modifiers(fields: list[FieldIR], attrs: set[str]) -> tuple[ModifierIR, ...]:
    """`views+`, `tags+`, `+tags`, `tags-` keys accepted by update bodies."""
    out = []
    for f in fields:
        if f.update is None or f.hidden:
            continue
        keys: tuple[tuple[str, str, TypeIR], ...]
        if f.type == "number":
            number = TypeIR("int" if f.only_int else "float", nullable=True)
            keys = ((f"{f.name}+", "add", number), (f"{f.name}-", "sub", number))
        elif f.multiple and f.type in ("select", "relation"):
            item = f.update.type.item
            assert item is not None
            many = types.list_of(item, or_item=True, nullable=True)
            keys = ((f"{f.name}+", "append", many), (f"+{f.name}", "prepend", many), (f"{f.name}-", "remove", many))
        elif f.type == "file":
            names = types.list_of(TypeIR("str"), or_item=True, nullable=True)
            keys = ((f"{f.name}-", "remove", names),)
        else:
            continue
        for key, verb, t in keys:
            attr = naming.identifier(f"{f.attr}_{verb}", taken=attrs)
            attrs.add(attr)
            out.append(ModifierIR(key=key, attr=attr, type=t, field=f.name))
    return tuple(out)


def _expand_type(cls: str, multiple: bool) -> TypeIR:
    record = TypeIR("model", name=cls)
    return types.list_of(record, nullable=True) if multiple else replace(record, nullable=True)


def _expands(
    col: PBCollection,
    fields: list[FieldIR],
    names: dict[str, _Names],
    resolve: dict[str, PBCollection],
    back_refs: list[tuple[PBCollection, PBField]],
) -> tuple[ExpandIR, ...]:
    attrs: set[str] = set()
    out = []
    for f in fields:
        if f.target is None or f.hidden:
            continue
        attr = naming.identifier(f.name, taken=attrs)
        attrs.add(attr)
        t = names[f.target]
        out.append(ExpandIR(
            key=f.name, attr=attr, alias=None if attr == f.name else f.name, target=f.target,
            target_class=t.prefix + "Record", target_module=t.module, multiple=f.multiple,
            back=False, via_field=f.name, type=_expand_type(t.prefix + "Record", f.multiple),
        ))
    for src_col, src_field in back_refs:
        key = f"{src_col.name}_via_{src_field.name}"
        attr = naming.identifier(key, taken=attrs)
        attrs.add(attr)
        t = names[src_col.name]
        out.append(ExpandIR(
            key=key, attr=attr, alias=None if attr == key else key, target=src_col.name,
            target_class=t.prefix + "Record", target_module=t.module, multiple=True,
            back=True, via_field=src_field.name,
            type=_expand_type(t.prefix + "Record", True),
        ))
    return tuple(out)


def _depends_on(col: PBCollection, schema: PBSchema) -> tuple[str, ...]:
    if col.type != "view":
        return (col.name,)
    known = {c.name.lower(): c.name for c in schema.collections}
    found = sorted({known[m.lower()] for m in _VIEW_SOURCE.findall(col.view_query) if m.lower() in known})
    return tuple(found) if found else ("*",)
