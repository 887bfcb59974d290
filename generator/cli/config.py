"""``hapta-gen config ...``: the settings file, `hapta.yaml`.

    hapta-gen config schema                      # its JSON Schema on stdout
    hapta-gen config schema --out hapta.schema.json [--check]

Point editors at the schema with ``# yaml-language-server: $schema=./hapta.schema.json`` as the
first line of `hapta.yaml` (examples/postly does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..ir.config import config_schema_text
from .failure import fail, handle_errors

config_app = typer.Typer(
    help="The settings file, hapta.yaml: its JSON Schema for editors.",
    no_args_is_help=True,
    add_completion=False,
)


@config_app.command("schema")
@handle_errors
def schema(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if --out is not the current schema.")
    ] = False,
) -> None:
    """Print (or write, or check) the JSON Schema of hapta.yaml."""
    text = config_schema_text()
    if out is None:
        if check:
            fail("--check needs --out")
        typer.echo(text, nl=False)
        return
    if check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            typer.echo(f"{out} is stale; run `hapta-gen config schema --out {out}`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is up to date", err=True)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)
