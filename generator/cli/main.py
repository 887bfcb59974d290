"""The ``hapta-gen`` command line: a thin Typer shell over the library.

    hapta-gen schema pull      # live PocketBase → pb_schema.json
    hapta-gen schema convert   # any export (legacy < 0.23 too) → the current, importable format
    hapta-gen schema diff      # has the schema changed under the code?
    hapta-gen build            # pb_schema.json → the gateway package, openapi.json, types.ts
                               # (or --check for drift)
    hapta-gen config schema    # the JSON Schema of hapta.yaml, for editors
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from .config import config_app
from .demo import demo
from .failure import fail, handle_errors
from .schema import schema_app

app = typer.Typer(
    name="hapta-gen",
    help=(
        "Generate a gateway for a PocketBase schema: a pure-ASGI proxy that validates requests "
        "before PocketBase sees them, with FastAPI only for its docs and ops pages.\n\n"
        "Typical CI steps: `hapta-gen schema pull` (live server → pb_schema.json), then "
        "`hapta-gen build` (pb_schema.json → the gateway package) or `hapta-gen build --check` "
        "(fail when the committed package is stale)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(schema_app, name="schema")
app.add_typer(config_app, name="config")
app.command()(demo)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hapta-gen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Generate a gateway (a validating pure-ASGI proxy) for a PocketBase schema."""


@app.command()
@handle_errors
def build(
    schema: Annotated[
        Path, typer.Option("--schema", "-s", help="Schema file: pb_schema.json or any PocketBase export.")
    ] = Path("pb_schema.json"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory of the generated package.")] = Path(
        "generated"
    ),
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="hapta.yaml with generation settings (package name, exclusions, limits)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; print a diff and exit 1 if --out is not what build would write."),
    ] = False,
    dump_ir: Annotated[
        bool, typer.Option("--dump-ir", help="Print the intermediate model as JSON and exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the summary.")] = False,
    list_templates: Annotated[
        bool,
        typer.Option(
            "--list-templates",
            help="List the built-in templates a hapta.yaml `templates:` folder can override, and exit.",
        ),
    ] = False,
) -> None:
    """Render the gateway package for a schema into --out, with openapi.json and the TypeScript
    types (types.ts; hapta.yaml's `typescript`), or check that it is up to date."""
    if list_templates:
        from ..emit.render import list_templates as templates

        for rel, note in templates():
            typer.echo(f"{rel}  # {note}")
        return
    from ..api import generate  # black and Jinja load only for the commands that render
    from ..emit.writer import compare, diff_text, write
    from ..ir.config import load_config
    from ..ir.model import to_json
    from ..schema.loader import load_file
    from .extensions import check_extensions

    started = time.perf_counter()

    def progress(message: str) -> None:
        if not quiet:
            _say(f"  {message}")

    progress(f"reading {schema}")
    pb = load_file(schema)
    settings = load_config(config)
    result = generate(pb, settings, progress=progress)
    if not result.ok:
        fail(result.errors[0])
    for warning in result.warnings:
        _say(f"warning: {warning}")
    assert result.ir is not None
    if dump_ir:
        typer.echo(to_json(result.ir), nl=False)
        return
    check_extensions(result.ir, out, config)
    elapsed = time.perf_counter() - started
    if check:
        changes = compare(result.files, out)
        if changes.clean:
            _say(f"{out} is up to date ({len(result.files)} files, {elapsed:.2f} s)")
            return
        typer.echo(diff_text(result.files, out, changes), nl=False)
        _say(
            f"{out} is stale: {len(changes.added)} missing, {len(changes.changed)} changed, "
            f"{len(changes.removed)} no longer generated; run `hapta-gen build` and commit"
        )
        raise typer.Exit(1)
    changes = write(result.files, out)
    _say(
        f"built {len(result.ir.collections)} collections into {out}: {len(result.files)} files "
        f"({len(changes.added)} added, {len(changes.changed)} changed, {len(changes.removed)} removed) "
        f"in {time.perf_counter() - started:.2f} s"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
