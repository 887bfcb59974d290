"""The type model (ir/types.py, ir/fieldtypes.py) and its printers: Python annotations
(emit/pytypes.py), JSON Schema (openapi/schemas.py) and TypeScript (emit/typescript.py; the
compiler checks its output in tests/sdk/test_typescript_types.py). Pure: no servers, no files
written."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import POSTLY_SCHEMA_PATH, REPO_ROOT
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from hapta_gen.emit.pytypes import annotation, declaration, default
from hapta_gen.emit.typescript import member, ts_type
from hapta_gen.ir import fieldtypes
from hapta_gen.ir.analyze import analyze
from hapta_gen.ir.config import Config
from hapta_gen.ir.model import SchemaIR
from hapta_gen.ir.naming import MODEL_MODULE_NAMES
from hapta_gen.ir.types import Constraints, SlotIR, TypeIR, list_of, module_imports
from hapta_gen.openapi.schemas import json_schema
from hapta_gen.schema.loader import load_file
from hapta_gen.schema.model import PBField

SCHEMAS = sorted((REPO_ROOT.parent / "shared" / "schemas").glob("*.json"))
BASE_PY = REPO_ROOT / "templates" / "service" / "package" / "models" / "base.py"


def _all_types(ir: SchemaIR) -> Iterator[TypeIR]:
    for c in ir.collections:
        for f in c.fields:
            yield from (s.type for s in (f.record, f.create, f.update) if s is not None)
        yield from (m.type for m in c.modifiers)
        yield from (e.type for e in c.expands)
        yield from (lit.type for lit in c.literals)


def _names_in(source: str) -> set[str]:
    """Python names in an annotation, string literals (select options) left out."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.string for t in tokens if t.type == tokenize.NAME}


# --- the data -------------------------------------------------------------------------------


def test_types_are_frozen_hashable_values() -> None:
    a = list_of(TypeIR("str"), Constraints(max_length=3), or_item=True)
    b = list_of(TypeIR("str"), Constraints(max_length=3), or_item=True)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.nullable = True  # type: ignore[misc]
    with pytest.raises(ValueError, match="item"):
        TypeIR("list")
    with pytest.raises(ValueError, match="item"):
        TypeIR("str", item=TypeIR("str"))


def test_imports_are_the_names_the_annotation_uses() -> None:
    required_text = fieldtypes.input_slot(PBField(name="t", type="text", required=True), None, update=False)
    assert required_text is not None and required_text.required
    assert required_text.type.imports == {"Annotated", "Field"}
    tags = TypeIR("literal", values=("a", "Email"), name="PostsTags")
    assert list_of(tags, or_item=True, nullable=True).imports == frozenset()  # the alias is local
    assert TypeIR("literal", values=("Email", "Blank")).imports == {"Literal"}  # values are strings
    assert TypeIR("bool", non_zero=True).imports == {"Literal"}
    assert TypeIR("date_input", non_zero=True).imports == {"RequiredDateInput"}
    assert TypeIR("geo_point_input", non_zero=True, nullable=True).imports == {
        "Annotated", "GeoPointInput", "NonZeroPoint",
    }
    # documented-only bounds (responses) need nothing
    assert TypeIR("int", constraints=Constraints(minimum=0), checked=False).imports == frozenset()
    assert module_imports({"Blank", "Field", "Annotated", "JsonValue", "Email"}) == (
        ("typing", ("Annotated",)),
        ("pydantic", ("Field", "JsonValue")),
        (".base", ("Blank", "Email")),
    )


@pytest.mark.parametrize("path", [POSTLY_SCHEMA_PATH, *SCHEMAS], ids=lambda p: p.stem)
def test_every_type_imports_exactly_what_it_prints(path: Path) -> None:
    """The regular expression over emitted text this replaced, kept as the oracle."""
    for t in _all_types(analyze(load_file(path), Config(include_system=True))):
        assert t.imports <= MODEL_MODULE_NAMES
        assert _names_in(annotation(t)) & MODEL_MODULE_NAMES == t.imports, annotation(t)


# --- the printers ---------------------------------------------------------------------------


def _input(field: PBField, *, update: bool = False, literal: TypeIR | None = None) -> SlotIR:
    slot = fieldtypes.input_slot(field, literal, update=update)
    assert slot is not None
    return slot


STATUS = TypeIR("literal", values=("draft", "live"), name="Status")

#: (field, flavour, Python annotation, default, JSON Schema)
PRINTED: list[tuple[PBField, str, str, str, dict[str, Any]]] = [
    (
        PBField(name="t", type="text", required=True, max=20, pattern="^[a-z]+$"),
        "create",
        "Annotated[str, Field(min_length=1, max_length=20, pattern='^[a-z]+$')]",
        "",
        {"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^[a-z]+$"},
    ),
    (
        PBField(name="t", type="text", min=3),
        "create",
        "Annotated[str, Field(min_length=3, max_length=5000)] | Blank | None",
        "None",
        {
            "anyOf": [
                {"type": "string", "minLength": 3, "maxLength": 5000},
                {"const": ""},
                {"type": "null"},
            ]
        },
    ),
    (
        PBField(name="t", type="text", pattern="(?<bad"),  # Python cannot check it: PocketBase does
        "update",
        "Annotated[str, Field(max_length=5000)] | None",
        "None",
        {"type": ["string", "null"], "maxLength": 5000},
    ),
    (
        PBField(name="n", type="number", required=True, min=1, max=5, only_int=True),
        "create",
        "Annotated[int, Field(ge=1, le=5), NonZero]",
        "",
        {"type": "integer", "minimum": 1, "maximum": 5, "not": {"const": 0}},
    ),
    (
        PBField(name="n", type="number", min=1, max=5.5),
        "record",
        "float",
        "0",
        {"type": "number", "maximum": 5.5},  # 0 is stored whatever min says
    ),
    (
        PBField(name="b", type="bool", required=True),
        "create",
        "Literal[True]",
        "",
        {"type": "boolean", "const": True},
    ),
    (
        PBField(name="e", type="editor", required=True),
        "update",
        "Annotated[str, NonBlank] | None",
        "None",
        {"type": ["string", "null"], "minLength": 1},
    ),
    (
        PBField(name="d", type="date", required=True),
        "create",
        "RequiredDateInput",
        "",
        None,  # the shared pattern, checked in test_openapi
    ),
    (PBField(name="d", type="autodate"), "record", "PBDateTime", "None", None),
    (
        PBField(name="j", type="json", required=True),
        "create",
        "Annotated[JsonValue, NonBlank]",
        "",
        {"not": {"enum": [None, "", 0, False, [], {}]}},
    ),
    (PBField(name="j", type="json"), "record", "JsonValue", "None", {}),
    (
        PBField(name="g", type="geoPoint"),
        "record",
        "GeoPoint",
        "Field(default_factory=GeoPoint)",
        {"$ref": "#/components/schemas/GeoPoint"},
    ),
    (
        PBField(name="s", type="select", values=("draft", "live"), max_select=3, required=True),
        "create",
        "Annotated[list[Status], Field(min_length=1, max_length=3)] | Status",
        "",
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "enum": ["draft", "live"]},
                    "minItems": 1,
                    "maxItems": 3,
                },
                {"type": "string", "enum": ["draft", "live"]},
            ]
        },
    ),
    (
        PBField(name="s", type="select", values=("draft", "live")),
        "record",
        "Status | Blank",
        '""',
        {"type": "string", "enum": ["draft", "live", ""]},
    ),
    (
        PBField(name="s", type="select", values=("draft", "live")),
        "update",
        "Status | Blank | None",
        "None",
        {"type": ["string", "null"], "enum": ["draft", "live", "", None]},
    ),
    (
        PBField(name="r", type="relation", max_select=2),
        "record",
        "list[str]",
        "Field(default_factory=list)",
        {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    ),
    (
        PBField(name="f", type="file", required=True),
        "create",
        "FileNames | None",
        "None",
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "null"},
            ]
        },
    ),
    (
        PBField(name="m", type="email"),
        "create",
        "Email | Blank | None",
        "None",
        None,
    ),
]


@pytest.mark.parametrize(("field", "flavour", "python", "zero", "schema"), PRINTED)
def test_both_printers_print_one_type(
    field: PBField, flavour: str, python: str, zero: str, schema: dict[str, Any] | None
) -> None:
    literal = STATUS if field.type == "select" else None
    if flavour == "record":
        slot = fieldtypes.record_slot(field, literal)
        assert slot is not None
    else:
        slot = _input(field, update=flavour == "update", literal=literal)
    assert annotation(slot.type) == python
    assert default(slot) == zero
    if schema is not None:
        assert json_schema(slot.type) == schema


def test_declarations_alias_python_hostile_keys() -> None:
    assert declaration("type_", "type", SlotIR(TypeIR("str"))) == "type_: str = Field(default=\"\", alias='type')"
    assert declaration("id", "id", SlotIR(TypeIR("str"), required=True)) == "id: str"
    many = list_of(TypeIR("str"))
    assert declaration("a_b", "a-b", SlotIR(many)) == "a_b: list[str] = Field(default_factory=list, alias='a-b')"
    assert declaration("x", "x", TypeIR("model", name="UsersRecord", nullable=True)) == "x: UsersRecord | None = None"


TAGS = TypeIR("literal", values=("a b", 'say "hi"'))
TS_PRINTED: list[tuple[TypeIR, str]] = [
    (TypeIR("str", non_zero=True, constraints=Constraints(max_length=5)), "string"),
    (TypeIR("int", nullable=True), "number | null"),
    (TypeIR("bool", non_zero=True), "true"),
    (TypeIR("json", non_zero=True, nullable=True), "unknown"),
    (TypeIR("date"), "IsoDateString"),
    (TypeIR("date_input", blank=True, nullable=True), 'IsoDateString | "" | null'),
    (TypeIR("geo_point_input", non_zero=True), "GeoPoint"),
    (TypeIR("file_names", nullable=True), "FileNames | FileUpload | null"),
    (STATUS, "Status"),
    (dataclasses.replace(STATUS, blank=True), 'Status | ""'),
    (TAGS, '"a b" | "say \\"hi\\""'),
    (list_of(STATUS, or_item=True, nullable=True), "Status[] | Status | null"),
    (list_of(TAGS), 'Array<"a b" | "say \\"hi\\"">'),
    (list_of(TypeIR("model", name="UsersRecord")), "UsersResponse[]"),
]


@pytest.mark.parametrize(("t", "ts"), TS_PRINTED, ids=lambda v: v if isinstance(v, str) else "")
def test_typescript_printer(t: TypeIR, ts: str) -> None:
    assert ts_type(t, {"UsersRecord": "UsersResponse"}) == ts


def test_typescript_members_quote_modifier_keys_and_mark_optional_ones() -> None:
    assert member("id", SlotIR(TypeIR("str"), required=True)) == "id: string"
    assert member("views+", SlotIR(TypeIR("int", nullable=True))) == '"views+"?: number | null'
    assert member("2fa", SlotIR(TypeIR("bool"))) == '"2fa"?: boolean'


def test_form_values_are_never_null() -> None:
    t = _input(PBField(name="n", type="number"), update=True).type
    assert json_schema(t) == {"type": ["number", "null"]}
    assert json_schema(t, null=False) == {"type": "number"}


# --- agreement: the pydantic model and the JSON Schema accept the same values ---------------


@pytest.fixture(scope="module")
def base() -> Iterator[ModuleType]:
    """The generated package's models/base.py, imported on its own (it imports nothing local)."""
    spec = importlib.util.spec_from_file_location("hapta_types_base", BASE_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


FIELDS = [
    PBField(name="v", type="text", required=True, min=2, max=4, pattern="^[a-z]*$"),
    PBField(name="v", type="text", min=2),
    PBField(name="v", type="editor", required=True),
    PBField(name="v", type="number", required=True, min=-1, max=3, only_int=True),
    PBField(name="v", type="number", min=0.5),
    PBField(name="v", type="bool", required=True),
    PBField(name="v", type="bool"),
    PBField(name="v", type="json", required=True),
    PBField(name="v", type="date"),
    PBField(name="v", type="select", values=("a", "b"), required=True),
    PBField(name="v", type="select", values=("a", "b"), max_select=2, min_select=1),
    PBField(name="v", type="relation", max_select=3, required=True),
    PBField(name="v", type="relation", required=True),
    PBField(name="v", type="email", required=True),
]
VALUES: list[Any] = [
    None, "", "a", "ab", "abcd", "abcde", "AB", 0, 1, 3, 4, -2, 0.5, 0.25, True, False,
    [], ["a"], ["a", "b"], ["a", "b", "c", "d"], ["z"], {}, {"k": 1}, "2026-01-02 03:04:05.678Z",
    "2026-01-02", "yesterday", "a@b.test", "not-an-email",
]


def _lax(field: PBField, value: Any) -> bool:
    """Pydantic's lax mode takes ``true`` for a number and ``0``/``1`` for a bool; the JSON
    Schema does not (known, older than the type model: the document is the stricter)."""
    if field.type == "number":
        return isinstance(value, bool)
    return field.type == "bool" and value in (0, 1) and not isinstance(value, bool)


def _model(base: ModuleType, slot: SlotIR, literal: TypeIR | None) -> type[BaseModel]:
    names = {n: getattr(base, n) for n in slot.type.imports if hasattr(base, n)}
    source = "\n".join(
        [
            "from typing import Annotated, Literal",
            "from pydantic import Field, JsonValue",
            *([f"{literal.name} = {annotation(TypeIR('literal', values=literal.values))}"] if literal else []),
            "class Body(InputBase):",
            "    " + declaration("v", "v", slot),
        ]
    )
    scope: dict[str, Any] = {**names, "InputBase": base.InputBase, "__name__": "hapta_types_body"}
    exec(source, scope)
    model: type[BaseModel] = scope["Body"]
    model.model_rebuild(_types_namespace=scope)
    return model


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"{f.type}-{'req' if f.required else 'opt'}")
@pytest.mark.parametrize("update", [False, True], ids=["create", "update"])
def test_models_and_schemas_agree(base: ModuleType, field: PBField, update: bool) -> None:
    literal = fieldtypes.literal_type(field, "Status")
    slot = _input(field, update=update, literal=literal)
    model = _model(base, slot, literal)
    properties = {"v": json_schema(slot.type)}
    schema = {"type": "object", "properties": properties, "required": ["v"] if slot.required else []}
    validator = Draft202012Validator(schema)
    disagreements = []
    for value in VALUES:
        if _lax(field, value):
            continue
        body = {"v": value}
        try:
            model.model_validate_json(json.dumps(body))
            accepted = True
        except ValidationError:
            accepted = False
        if validator.is_valid(body) != accepted:
            disagreements.append((value, accepted))
    assert not disagreements, (annotation(slot.type), disagreements)


def test_select_aliases_leave_the_typescript_names_free() -> None:
    """A select field ``response`` of ``class`` must not take ``ClassResponse`` (types.ts's)."""
    ir = analyze(load_file(REPO_ROOT / "tests" / "cases" / "odd-names" / "schema.json"), Config())
    assert [lit.name for lit in ir.collection("class").literals] == ["ClassResponse2", "ClassKind"]
