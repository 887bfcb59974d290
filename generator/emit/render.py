"""IR → ``{path: text}``: a declarative plan of templates, rendered with StrictUndefined.

Templates are named after the file they produce and only loop and print strings the IR
already holds. ``hapta.yaml``'s ``templates`` names a folder of the user's own: a file there
with the same relative path as a built-in one (``list_templates``) replaces it, static files
included; Jinja's ``include``/``extends`` look there first too. Files under ``templates/service`` without a ``.jinja`` suffix are static runtime
code, copied as they are. ``package`` in a template path stands for the generated package's
import name. The DO-NOT-EDIT header is added here, once, in the comment syntax of each file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..errors import ConfigError
from ..ir.config import Config
from ..ir.model import CollectionIR, SchemaIR
from . import pytypes
from .header import HEADER, with_header


def templates_dir() -> Path:
    """The templates shipped with the package (wheel) or beside it (source checkout)."""
    here = Path(__file__).resolve().parent.parent  # the package: hapta_gen/ (generator/ in a checkout)
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "service").is_dir():
            return candidate
    raise FileNotFoundError("hapta-gen's templates/ directory is missing from the installation")


@dataclass(frozen=True)
class Target:
    """One rendered file: which template, where it goes, and whether once per collection."""

    template: str
    path: str
    per_collection: bool = False


PLAN: tuple[Target, ...] = (
    Target("pyproject.toml.jinja", "pyproject.toml"),
    Target("README.md.jinja", "README.md"),
    Target("package/__init__.py.jinja", "{package}/__init__.py"),
    Target("package/models/__init__.py.jinja", "{package}/models/__init__.py"),
    Target("package/models/collection.py.jinja", "{package}/models/{module}.py", per_collection=True),
    Target("package/catalog.py.jinja", "{package}/catalog.py"),
    Target("package/ratelimit_rules.py.jinja", "{package}/ratelimit_rules.py"),
    Target("package/jsonschemas.py.jinja", "{package}/jsonschemas.py"),
    Target("package/fragments/collection.html.jinja", "{package}/fragments/{name}.html", per_collection=True),
)
#: Files computed in Python rather than from a template (``openapi.json``, ``types.ts``), by
#: output path; the caller passes them in, so this stage depends on no other stage's printer.
Computed = Mapping[str, Callable[[SchemaIR], str]]


def _rule(rule: str | None) -> str:
    if rule is None:
        return "superusers only"
    return "public" if rule == "" else "`" + rule.replace("|", "\\|") + "`"


#: Formatting filters only: how a precomputed value is spelled in the target language.
FILTERS: dict[str, Callable[..., str]] = {
    "py": repr,
    "py_toml": lambda value: json.dumps(str(value), ensure_ascii=False),
    "rule": _rule,
    "code": lambda value: f"`{value}`",
    "py_type": pytypes.annotation,
    "py_decl": lambda slot, attr, key: pytypes.declaration(attr, key, slot),
}


def render(
    ir: SchemaIR, computed: Computed | None = None, *, overrides: Path | None = None
) -> dict[str, str]:
    """Every output file of the generated service, with its header, unformatted; plus the
    ``computed`` files as their functions print them (with the header where the file type has
    comments). ``overrides``: a folder whose files replace the built-in templates of the same
    relative path (``template_overrides``)."""
    root = templates_dir() / "service"
    search = [str(overrides), str(root)] if overrides is not None else [str(root)]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    files: dict[str, str] = {}
    for target in PLAN:
        try:
            template = env.get_template(target.template)
            for path, context in _instances(target, ir):
                files[path] = with_header(path, template.render(**context))
        except jinja2.TemplateError as exc:  # an override's mistake: one line, not a traceback
            line = getattr(exc, "lineno", None)
            where = f"{target.template}" + (f", line {line}" if line else "")
            raise ConfigError(f"templates: {where}: {exc.message or exc}") from None
    for rel in _static_files(root):
        path = rel.replace("package/", f"{ir.package}/", 1) if rel.startswith("package/") else rel
        source = overrides / rel if overrides is not None and (overrides / rel).is_file() else root / rel
        files[path] = with_header(path, source.read_text(encoding="utf-8"))
    for path, compute in (computed or {}).items():
        files[path] = with_header(path, compute(ir))
    return dict(sorted(files.items()))


def static_paths(ir: SchemaIR) -> frozenset[str]:
    """Output paths of the static runtime files: kept black-formatted in templates/ already."""
    root = templates_dir() / "service"
    return frozenset(
        rel.replace("package/", f"{ir.package}/", 1) if rel.startswith("package/") else rel
        for rel in _static_files(root)
    )


def list_templates() -> list[tuple[str, str]]:
    """Every built-in template a ``templates:`` folder may override: (relative path, what it
    makes), in path order."""
    root = templates_dir() / "service"
    planned = {t.template: t for t in PLAN}
    out = []
    for rel in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in rel:
            continue
        target = planned.get(rel)
        if target is not None:
            each = ", one per collection" if target.per_collection else ""
            out.append((rel, f"Jinja template → {target.path}{each}"))
        elif not rel.endswith(".jinja"):
            out.append((rel, "runtime code, copied as is (package/ is the package's name)"))
    return out


def template_overrides(config: Config) -> Path | None:
    """``hapta.yaml``'s ``templates`` folder (relative to the hapta.yaml), checked: it exists,
    and every file in it replaces a built-in template (a stray name is a typo, not a no-op)."""
    if config.templates is None:
        return None
    folder = config.base_dir / config.templates
    if not folder.is_dir():
        raise ConfigError(
            f"templates: {config.templates}: no such folder (paths are relative to hapta.yaml)"
        )
    known = {rel for rel, _ in list_templates()}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and "__pycache__" not in rel and rel not in known:
            raise ConfigError(
                f"templates: {config.templates}: {rel} replaces no built-in template "
                "(see hapta-gen build --list-templates)"
            )
    return folder


def _instances(target: Target, ir: SchemaIR) -> Iterator[tuple[str, dict[str, object]]]:
    if not target.per_collection:
        yield target.path.format(package=ir.package), {"ir": ir, "header": HEADER}
        return
    for c in ir.collections:
        yield _collection_path(target, ir, c), {"ir": ir, "c": c, "header": HEADER}


def _collection_path(target: Target, ir: SchemaIR, c: CollectionIR) -> str:
    return target.path.format(package=ir.package, module=c.module, name=c.name)


def _static_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".jinja" and "__pycache__" not in p.parts
    )
