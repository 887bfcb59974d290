"""Record fragments: the HTML a Datastar stream sends for one record.

Each collection has a generated Jinja template, ``fragments/<collection>.html`` in this package,
rendered with ``record`` (the record as PocketBase sent it), ``collection`` and ``element_id``.
A file of the same name in ``HAPTA_FRAGMENTS_DIR`` shadows it, so a team restyles its records
without editing generated code. Autoescaping is on: record values are text, never markup. The ``value`` filter prints a value
as text: a string as it is, ``null`` as nothing, anything else as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import orjson

_BUILT_IN = Path(__file__).resolve().parent / "fragments"


class Fragments:
    def __init__(self, override: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(_BUILT_IN))]
        if override is not None:
            loaders.insert(0, jinja2.FileSystemLoader(str(override)))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # read once: no file check per event and client
        )
        self._env.filters["value"] = value

    def render(self, collection: str, record: dict[str, Any]) -> str:
        template = self._env.get_template(f"{collection}.html")
        return template.render(
            record=record, collection=collection, element_id=element_id(collection, record)
        ).strip()


def element_id(collection: str, record: dict[str, Any]) -> str:
    """The HTML id of a record's element (what updates and deletes patch)."""
    return f"{collection}-{record.get('id', '')}"


def value(given: Any) -> str:
    """A record value as text (the ``value`` filter of fragment templates)."""
    if given is None or isinstance(given, jinja2.Undefined):  # null, or left out by ``fields``
        return ""
    if isinstance(given, str):
        return given
    return orjson.dumps(given).decode()
