"""The library entry point: ``generate(schema, config)`` → files, warnings and errors.

The CLI is a thin shell over this. Nothing here touches the network, and the disk only to read
the templates and the files hapta.yaml names (``json_schemas``, ``templates``); errors are
returned, not raised, so callers decide how to report them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from .emit import jsonmodels
from .emit.formatting import format_files
from .emit.render import Computed, render, static_paths, template_overrides
from .emit.typescript import typescript_text
from .errors import HaptaError
from .ir.analyze import analyze
from .ir.config import Config
from .ir.jsonfields import JsonFieldIR, load_json_schemas
from .ir.model import SchemaIR
from .openapi.document import openapi_text
from .schema.loader import normalize, parse
from .schema.model import PBSchema

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GenerationResult:
    files: dict[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ir: SchemaIR | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def generate(schema: PBSchema | object, config: Config | None = None, *, progress: Progress | None = None) -> GenerationResult:
    """Build every file of the gateway for ``schema`` (a ``PBSchema`` or raw export JSON)."""
    say = progress or (lambda _msg: None)
    try:
        pb = schema if isinstance(schema, PBSchema) else parse(normalize(schema))
        say(f"loaded {len(pb.collections)} collections")
        settings = config or Config()
        ir = analyze(pb, settings, load_json_schemas(settings))
        say(f"analysed {len(ir.collections)} exposed collections")
        computed: Computed = {"openapi.json": openapi_text}
        if ir.typescript_out:
            computed = {**computed, ir.typescript_out: typescript_text}
        computed = {**computed, **_json_models(ir)}
        files = render(ir, computed, overrides=template_overrides(settings))
        say(f"rendered {len(files)} files")
        files = format_files(files, preformatted=static_paths(ir))
        say("formatted")
    except HaptaError as exc:
        return GenerationResult(errors=(exc.message,))
    return GenerationResult(files=files, warnings=ir.warnings, ir=ir)


def _json_models(ir: SchemaIR) -> Computed:
    """``<package>/models/json_fields/``: a module of models per typed json field."""
    if not ir.json_fields:
        return {}
    root = f"{ir.package}/models/json_fields"
    out: dict[str, Callable[[SchemaIR], str]] = {f"{root}/__init__.py": lambda _ir: jsonmodels.package_init()}
    for jf in ir.json_fields:
        out[f"{root}/{jf.module}.py"] = functools.partial(_json_model, jf)
    return out


def _json_model(jf: JsonFieldIR, _ir: SchemaIR) -> str:
    return jsonmodels.model_module(jf)
