"""The Python printer of the type model: ``TypeIR`` → annotation, default and class-body line.

The names it prints (``Blank``, ``NonZero``, ``PBDateTime``...) are those ``TypeIR.imports``
lists (the tables in ``ir/types.py``), defined in the generated package's ``models/base.py``.
"""

from __future__ import annotations

from ..ir.types import PY_NAMES, PY_NON_ZERO_MARKERS, PY_NON_ZERO_TYPES, SlotIR, TypeIR

#: The default of a key that may be left out of a response: its kind's zero value.
_ZERO = {
    "str": '""',
    "literal": '""',
    "int": "0",
    "float": "0",
    "bool": "False",
    "date": "None",
    "json": "None",
    "geo_point": "Field(default_factory=GeoPoint)",
    "list": "Field(default_factory=list)",
}


def annotation(t: TypeIR) -> str:
    """``Annotated[list[PostsTags], Field(max_length=3)] | PostsTags | None`` and the like."""
    parts = [_value(t)]
    if t.or_item:
        assert t.item is not None
        parts.append(annotation(t.item))
    if t.blank:
        parts.append("Blank")
    if t.nullable:
        parts.append("None")
    return " | ".join(parts)


def default(slot: SlotIR) -> str:
    """The default's source text; "" for a key that must be present."""
    if slot.required:
        return ""
    if slot.type.nullable:
        return "None"
    return _ZERO[slot.type.kind]


def declaration(attr: str, key: str, slot: SlotIR | TypeIR) -> str:
    """A class-body line: ``attr: annotation = default``, with ``alias`` when names differ."""
    if isinstance(slot, TypeIR):
        slot = SlotIR(slot)
    ann, value = annotation(slot.type), default(slot)
    if attr == key:
        return f"{attr}: {ann}" + (f" = {value}" if value else "")
    if value.startswith("Field("):
        args = value[len("Field(") : -1]
        return f"{attr}: {ann} = Field({args}, alias={key!r})"
    if value:
        return f"{attr}: {ann} = Field(default={value}, alias={key!r})"
    return f"{attr}: {ann} = Field(alias={key!r})"


def _value(t: TypeIR) -> str:
    core = _core(t)
    meta = []
    if t.checked and t.constraints:
        meta.append(f"Field({', '.join(_field_args(t))})")
    if t.non_zero and t.kind in PY_NON_ZERO_MARKERS:
        meta.append(PY_NON_ZERO_MARKERS[t.kind])
    return f"Annotated[{core}, {', '.join(meta)}]" if meta else core


def _core(t: TypeIR) -> str:
    if t.non_zero and t.kind in PY_NON_ZERO_TYPES:
        return PY_NON_ZERO_TYPES[t.kind]
    if t.kind in PY_NAMES:
        return PY_NAMES[t.kind]
    if t.kind == "literal":
        return t.name or f"Literal[{', '.join(repr(v) for v in t.values)}]"
    if t.kind == "model":
        return t.name
    if t.kind == "list":
        assert t.item is not None
        return f"list[{annotation(t.item)}]"
    return t.kind  # str, int, float, bool


def _field_args(t: TypeIR) -> list[str]:
    c = t.constraints
    args = []
    if c.min_length is not None:
        args.append(f"min_length={c.min_length}")
    if c.max_length is not None:
        args.append(f"max_length={c.max_length}")
    if c.pattern:
        args.append(f"pattern={c.pattern!r}")
    if c.minimum is not None:
        args.append(f"ge={c.minimum!r}")
    if c.maximum is not None:
        args.append(f"le={c.maximum!r}")
    return args
