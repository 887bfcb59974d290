"""hatchling build hook: an editable install imports ``hapta_gen`` from the checkout's ``generator/``.

The wheel installs the folder ``generator/`` as the package ``hapta_gen`` (the force-include
table in pyproject.toml). hatchling's own editable mode exposes folders only under their own
names (it refuses a ``sources`` rewrite that renames one), so for ``pip install -e`` this hook
maps the name with an import hook from ``editables``, the library hatchling uses for its exact
dev mode. Nothing else of the checkout goes on ``sys.path``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

IMPORT_NAME = "hapta_gen"
SOURCE_DIR = "generator"


class EditableImportName(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        from editables import EditableProject

        project = EditableProject(self.metadata.core.name, self.root)
        project.map(IMPORT_NAME, SOURCE_DIR)
        self._scratch = Path(tempfile.mkdtemp(prefix="hapta-gen-editable-"))
        for name, content in project.files():  # a .pth file and the module it imports
            path = self._scratch / name
            path.write_text(content, encoding="utf-8")
            build_data["force_include_editable"][str(path)] = name
        build_data["dependencies"].extend(project.dependencies())

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if version == "editable":
            shutil.rmtree(self._scratch, ignore_errors=True)
