"""The type model: what a value in one of the generated models may be, as data.

A ``TypeIR`` is decided once, in ``fieldtypes`` (from the input field) or ``analyze`` (update
modifiers, expanded relations), and printed by one printer per target: Python annotations in
``emit/pytypes.py``, JSON Schema in ``openapi/schemas.py``. Nothing downstream looks at the
input field again. ``imports`` is the set of names a generated model module needs for the
Python spelling; a module imports the union over the types it uses (``module_imports``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from . import naming

Kind = Literal[
    "str",  # a string (text, editor, url, relation ids, file names)
    "int",
    "float",
    "bool",
    "json",  # any JSON value, ``null`` included
    "email",  # an email address as PocketBase checks it (``Email``)
    "date",  # a stored date as PocketBase returns it, or "" (``PBDateTime``)
    "date_input",  # a date a body may carry, or "" (``DateInput``)
    "geo_point",  # ``{lon, lat}`` as returned (``GeoPoint``)
    "geo_point_input",  # ``{lon, lat}`` within range, nothing else (``GeoPointInput``)
    "file_names",  # kept filenames in a JSON body: a name or a list of names (``FileNames``)
    "literal",  # one of ``values`` (a select option)
    "list",  # a list of ``item``
    "model",  # a generated model class, ``name`` (an expanded record)
]


@dataclass(frozen=True)
class Constraints:
    """Bounds and pattern of a value; ``None``/``""`` where there is none."""

    min_length: int | None = None  #: characters of a string, items of a list
    max_length: int | None = None
    minimum: float | None = None  #: inclusive, numbers (as written in the schema: int or float)
    maximum: float | None = None
    pattern: str = ""  #: a regular expression both Python and JSON Schema can check

    def __bool__(self) -> bool:
        return self != NO_CONSTRAINTS


NO_CONSTRAINTS = Constraints()


@dataclass(frozen=True)
class TypeIR:
    """A value's type in one model (record, create, update...)."""

    kind: Kind
    #: ``list``: the item type.
    item: TypeIR | None = None
    #: ``literal``: the allowed strings (unique, in schema order).
    values: tuple[str, ...] = ()
    #: ``literal``: the module's alias for it (``PostsStatus``, "" for none); ``model``: the class.
    name: str = ""
    constraints: Constraints = NO_CONSTRAINTS
    #: False where ``constraints`` only document (response models accept older rows as they are).
    checked: bool = True
    #: ``required``: the kind's zero value (``""``, ``0``, ``false``, empty json, ``(0, 0)``) is
    #: refused.
    non_zero: bool = False
    #: ``list``: a single item is accepted too (PocketBase wraps it).
    or_item: bool = False
    #: ``""`` is accepted besides (it clears the field).
    blank: bool = False
    #: ``null`` is accepted (and is the default: the key may be left out).
    nullable: bool = False
    #: The names the Python spelling uses that a model module imports.
    imports: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if (self.kind == "list") != (self.item is not None):
            raise ValueError("a list type, and only a list type, has an item type")
        object.__setattr__(self, "imports", frozenset(_names(self)))


@dataclass(frozen=True)
class SlotIR:
    """A key of a generated model: its value's type and whether the key must be present."""

    type: TypeIR
    required: bool = False


#: The Python name of each kind, where it has one (``str``, ``list``... are builtins).
PY_NAMES: dict[str, str] = {
    "json": "JsonValue",
    "email": "Email",
    "date": "PBDateTime",
    "date_input": "DateInput",
    "geo_point": "GeoPoint",
    "geo_point_input": "GeoPointInput",
    "file_names": "FileNames",
}
#: The Python spelling of ``non_zero`` by kind: an ``Annotated`` marker, or a whole other type.
PY_NON_ZERO_MARKERS: dict[str, str] = {
    "str": "NonBlank",
    "json": "NonBlank",
    "int": "NonZero",
    "float": "NonZero",
    "geo_point_input": "NonZeroPoint",
}
PY_NON_ZERO_TYPES: dict[str, str] = {"bool": "Literal[True]", "date_input": "RequiredDateInput"}
#: Where a model module imports each name from (the rest come from ``.base``).
PY_MODULES: dict[str, str] = {
    "Annotated": "typing",
    "Literal": "typing",
    "TYPE_CHECKING": "typing",
    "Field": "pydantic",
    "JsonValue": "pydantic",
}
_IMPORT_ORDER = ("typing", "pydantic", ".base")


def _names(t: TypeIR) -> set[str]:
    names: set[str] = set(t.item.imports) if t.item is not None else set()
    if t.kind == "literal" and not t.name:
        names.add("Literal")
    if t.non_zero and t.kind in PY_NON_ZERO_TYPES:
        names.add("Literal" if t.kind == "bool" else PY_NON_ZERO_TYPES[t.kind])
    elif t.kind in PY_NAMES:
        names.add(PY_NAMES[t.kind])
    field_args = t.checked and bool(t.constraints)
    if t.non_zero and t.kind in PY_NON_ZERO_MARKERS:
        names |= {"Annotated", PY_NON_ZERO_MARKERS[t.kind]}
    if field_args:
        names |= {"Annotated", "Field"}
    if t.blank:
        names.add("Blank")
    return names


def module_imports(names: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(module, names)`` pairs in import order (typing, pydantic, then the package's base)."""
    groups: dict[str, set[str]] = {}
    for name in names:
        groups.setdefault(PY_MODULES.get(name, ".base"), set()).add(name)
    return tuple((m, naming.import_order(groups[m])) for m in _IMPORT_ORDER if m in groups)


# --- constructors ---------------------------------------------------------------------------


def list_of(
    item: TypeIR,
    constraints: Constraints = NO_CONSTRAINTS,
    *,
    checked: bool = True,
    or_item: bool = False,
    nullable: bool = False,
) -> TypeIR:
    """A list of ``item`` (``or_item``: a single item too)."""
    return TypeIR(
        "list", item=item, constraints=constraints, checked=checked, or_item=or_item,
        nullable=nullable,
    )
