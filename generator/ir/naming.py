"""Python names for PocketBase names: identifiers, class names and module names.

PocketBase allows names Python does not (`2_player`, `for`, `class`) and names that would shadow
something a generated module relies on (`str`, `type`, `model_dump`). Every rule for turning a
PocketBase name into a Python one lives here, so templates only print the result.
No English inflection: `metadata` stays `Metadata`, `news` stays `News`.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]+")
_WORDS = re.compile(r"[0-9A-Za-z]+")

#: Names a generated model class body must not define as attributes: builtins used in
#: annotations, typing names the modules import, and every attribute of pydantic's BaseModel.
_BASEMODEL_ATTRS = frozenset(
    {
        "construct", "copy", "dict", "json", "parse_obj", "parse_raw", "parse_file",
        "from_orm", "schema", "schema_json", "update_forward_refs", "validate", "fields",
        "model_config", "model_fields", "model_computed_fields", "model_extra",
        "model_fields_set", "model_construct", "model_copy", "model_dump", "model_dump_json",
        "model_json_schema", "model_parametrized_name", "model_post_init", "model_rebuild",
        "model_validate", "model_validate_json", "model_validate_strings",
    }
)
#: Names the generated model modules import (see templates/service/models/base.py).
MODEL_MODULE_NAMES = frozenset(
    {"Any", "Annotated", "Literal", "Field", "BaseModel", "ConfigDict", "JsonValue",
     "TYPE_CHECKING", "annotations", "GeoPoint", "GeoPointInput", "PBDateTime", "Blank",
     "NonZero", "NonBlank", "NonZeroPoint", "Email", "DateInput", "RequiredDateInput",
     "FileNames", "RecordBase", "ExpandBase", "PageBase", "InputBase"}
)
_TYPING_NAMES = MODEL_MODULE_NAMES
#: Module-level names of the TypeScript types file (``emit/typescript.py``): select aliases
#: must not take them either.
TS_NAMES = frozenset(
    {"PocketBase", "RecordService", "Collections", "IsoDateString", "RecordIdString",
     "HTMLString", "GeoPoint", "FileNames", "FileUpload", "ExpandType", "BaseSystemFields",
     "AuthSystemFields", "ViewSystemFields", "CollectionRecords", "CollectionResponses",
     "TypedPocketBase", "Record", "Required", "Array", "Blob"}
)
#: Soft keywords of every Python the generated code may run on (``type`` since 3.12).
SOFT_KEYWORDS = frozenset({"_", "case", "match", "type"}) | frozenset(keyword.softkwlist)
RESERVED_ATTRS = frozenset(
    set(keyword.kwlist) | SOFT_KEYWORDS | set(dir(builtins)) | _BASEMODEL_ATTRS | _TYPING_NAMES
)
#: Attribute names that are fine even though they shadow a builtin (they are the record's own).
_ALLOWED_SHADOWS = frozenset({"id"})


def identifier(name: str, *, taken: Iterable[str] = ()) -> str:
    """A safe attribute name for a PocketBase field name, unique among ``taken``.

    >>> identifier("for"), identifier("type"), identifier("2_player"), identifier("object")
    ('for_', 'type_', 'f_2_player', 'object_')
    """
    base = _NOT_IDENT.sub("_", name).strip("_") if name else ""
    if not base:
        base = "field"
    if base[0].isdigit() or name.startswith("_"):
        base = "f_" + base
    if (base in RESERVED_ATTRS and base not in _ALLOWED_SHADOWS) or base.startswith("__"):
        base += "_"
    return _unique(base, _as_set(taken))


def class_name(name: str, *, taken: Iterable[str] = ()) -> str:
    """A PascalCase class name for a collection or field name, without inflection.

    >>> class_name("habit_logs"), class_name("journalEntries"), class_name("2players")
    ('HabitLogs', 'JournalEntries', 'C2players')
    """
    words = _WORDS.findall(name)
    base = "".join(w[0].upper() + w[1:] for w in words) or "Collection"
    if base[0].isdigit():
        base = "C" + base
    if keyword.iskeyword(base) or base in RESERVED_ATTRS:
        base += "_"
    return _unique(base, _as_set(taken))


def module_name(name: str, *, taken: Iterable[str] = ()) -> str:
    """A lower_snake module name for a collection name.

    >>> module_name("habitLogs"), module_name("Posts"), module_name("for")
    ('habit_logs', 'posts', 'for_')
    """
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    base = _NOT_IDENT.sub("_", snake).strip("_").lower() or "collection"
    if base[0].isdigit():
        base = "c_" + base
    if keyword.iskeyword(base) or base in SOFT_KEYWORDS or base in _RESERVED_MODULES:
        base += "_"
    return _unique(base, _as_set(taken))


#: ``json_fields``: the sub-package of the typed json fields' models (``ir/jsonfields.py``).
_RESERVED_MODULES = frozenset(
    {"base", "types", "typing", "enum", "json", "__init__", "datetime", "json_fields"}
)


def import_order(names: Iterable[str]) -> tuple[str, ...]:
    """Names in the order isort and ruff put them: CONSTANTS, Classes, then functions."""

    def key(name: str) -> tuple[int, str, str]:
        kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return kind, name.lower(), name

    return tuple(sorted(set(names), key=key))


def _as_set(taken: Iterable[str]) -> AbstractSet[str]:
    """``taken`` as a set, without copying one the caller already keeps (callers add to it)."""
    return taken if isinstance(taken, AbstractSet) else set(taken)


def _unique(base: str, taken: AbstractSet[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"
