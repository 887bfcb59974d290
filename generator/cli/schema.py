"""``hapta-gen schema ...``: pull the schema of a live PocketBase, convert an export, compare schemas.

The main CLI mounts ``schema_app`` with ``app.add_typer(schema_app, name="schema")``.
Connection settings come from flags, else the environment (``PB_URL``, ``PB_SUPERUSER_EMAIL``,
``PB_SUPERUSER_PASSWORD``), else a ``.env`` file in the working directory; real environment
variables always win over ``.env``. Progress goes to stderr, results to stdout; errors are one
``error: ...`` line and exit code 2 (``diff`` exits 1 when the schemas differ). ``convert``
works offline.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from dotenv import dotenv_values

from ..errors import HaptaError
from ..schema.convert import convert
from ..schema.diff import diff_collections
from ..schema.loader import normalize, read_json
from ..schema.pull import DEFAULT_PAGE_SIZE, pull_collections
from ..schema.snapshot import count_fields, snapshot_collections, snapshot_text
from .failure import handle_errors

ENV_URL = "PB_URL"
ENV_EMAIL = "PB_SUPERUSER_EMAIL"
ENV_PASSWORD = "PB_SUPERUSER_PASSWORD"
DEFAULT_SCHEMA = Path("pb_schema.json")

schema_app = typer.Typer(
    help=(
        "Pull a live PocketBase schema into pb_schema.json, convert any export into the current "
        "format, or compare schemas."
    ),
    no_args_is_help=True,
    add_completion=False,
)

UrlOpt = Annotated[
    str | None, typer.Option("--url", help=f"PocketBase base URL (env: {ENV_URL})", show_default=False)
]
EmailOpt = Annotated[
    str | None,
    typer.Option("--email", help=f"Superuser email (env: {ENV_EMAIL})", show_default=False),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        help=f"Superuser password; prefer the environment (env: {ENV_PASSWORD})",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each HTTP request.")
]
IncludeSystemOpt = Annotated[
    bool,
    typer.Option("--include-system", help="Keep PocketBase's system collections (_superusers, ...)."),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress lines on stderr (errors still print).")
]
PageSizeOpt = Annotated[
    int, typer.Option("--page-size", min=1, hidden=True, help="Collections per list request.")
]


@dataclass(frozen=True)
class Connection:
    """Where and as whom to pull. ``repr`` never shows the password."""

    url: str
    email: str
    password: str

    def __repr__(self) -> str:
        return f"Connection(url={self.url!r}, email={self.email!r}, password='***')"


def _setting(flag: str | None, var: str, dotenv: dict[str, str | None]) -> str | None:
    if flag:
        return flag
    return os.environ.get(var) or dotenv.get(var) or None


def resolve_connection(
    url: str | None, email: str | None, password: str | None, *, url_hint: str = "--url"
) -> Connection:
    """Flags, else environment, else ``./.env``; a missing setting is a one-line HaptaError."""
    env_file = Path.cwd() / ".env"
    dotenv: dict[str, str | None] = dict(dotenv_values(env_file)) if env_file.is_file() else {}
    found_url = _setting(url, ENV_URL, dotenv)
    if not found_url:
        raise HaptaError(f"no PocketBase URL: pass {url_hint} or set {ENV_URL} (environment or .env)")
    found_email = _setting(email, ENV_EMAIL, dotenv)
    if not found_email:
        raise HaptaError(
            f"no superuser email: pass --email or set {ENV_EMAIL} (environment or .env)"
        )
    found_password = _setting(password, ENV_PASSWORD, dotenv)
    if not found_password:
        raise HaptaError(
            f"no superuser password: set {ENV_PASSWORD} (environment or .env) or pass --password"
        )
    return Connection(found_url, found_email, found_password)


def _progress(line: str) -> None:
    typer.echo(line, err=True)


def _pull(
    conn: Connection, *, timeout: float, page_size: int, quiet: bool
) -> list[dict[str, Any]]:
    return pull_collections(
        conn.url,
        conn.email,
        conn.password,
        timeout=timeout,
        page_size=page_size,
        progress=None if quiet else _progress,
    )


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@schema_app.command("pull")
@handle_errors
def pull_command(
    url: UrlOpt = None,
    email: EmailOpt = None,
    password: PasswordOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="File to write ('-' for stdout).")
    ] = DEFAULT_SCHEMA,
    include_system: IncludeSystemOpt = False,
    timeout: TimeoutOpt = 10.0,
    quiet: QuietOpt = False,
    page_size: PageSizeOpt = DEFAULT_PAGE_SIZE,
) -> None:
    """Read every collection of a live PocketBase and write a stable, secret-free pb_schema.json."""
    conn = resolve_connection(url, email, password)
    raw = _pull(conn, timeout=timeout, page_size=page_size, quiet=quiet)
    snapshot = snapshot_collections(raw, include_system=include_system)
    text = snapshot_text(raw, include_system=include_system)
    to_stdout = str(out) == "-"
    if to_stdout:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _write_atomically(out, text)
    summary = (
        f"wrote {'stdout' if to_stdout else out}: "
        f"{len(snapshot)} collections, {count_fields(snapshot)} fields"
    )
    typer.echo(summary, err=to_stdout)


_CONVERT_HELP = "\n\n".join(
    (
        "Rewrite any PocketBase export in the current format, so an import keeps every field.",
        "PocketBase 0.23+ answers an import of an older export (`schema` with nested `options`) "
        "with success and keeps none of its fields. This writes the file PocketBase 0.23+ takes "
        "whole (Dashboard > Settings > Import collections, or PUT /api/collections/import), "
        "exactly as `schema pull` writes it after that import: options under their current "
        "names, the fields older exports leave implicit (id, created/updated as autodate "
        "fields, the auth fields), PocketBase's ids, @request.data renamed @request.body, and "
        "`users` merged into the users collection every PocketBase has.",
        "What PocketBase cannot take (a field name used twice, an index on a missing column, a "
        "relation to a collection that does not exist, a rule naming a missing field, a type "
        "clash with a field of the system users collection) is one error line naming the "
        "collection and field, and nothing is written. --force drops those instead (a dropped "
        "rule becomes superusers-only) and lists each on stderr.",
        "Exit code 0: written; 2: cannot convert or cannot read the file.",
    )
)


@schema_app.command("convert", help=_CONVERT_HELP)
@handle_errors
def convert_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="The export to convert: any format (legacy < 0.23, current, wrapped, hand-written).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="File to write ('-' for stdout).")
    ] = DEFAULT_SCHEMA,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write what can be converted and list what was dropped, instead of failing.",
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Rewrite any PocketBase export in the current format, so an import keeps every field."""
    say = (lambda _line: None) if quiet else _progress
    say(f"reading {source}")
    result = convert(read_json(source), force=force)
    for problem in result.dropped:
        typer.echo(f"dropped {problem.dropped}: {problem.message}", err=True)
    text = snapshot_text(result.collections)
    to_stdout = str(out) == "-"
    if to_stdout:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _write_atomically(out, text)
    dropped = f", {len(result.dropped)} dropped" if result.dropped else ""
    summary = (
        f"wrote {'stdout' if to_stdout else out}: {len(result.collections)} collections, "
        f"{count_fields(result.collections)} fields (from {result.source_format} format{dropped})"
    )
    typer.echo(summary, err=to_stdout)


def _load_snapshot(path: Path, include_system: bool) -> list[dict[str, Any]]:
    return snapshot_collections(normalize(read_json(path)), include_system=include_system)


@schema_app.command("diff")
@handle_errors
def diff_command(
    schema: Annotated[
        Path, typer.Option("--schema", help="The schema file to compare (usually the committed one).")
    ] = DEFAULT_SCHEMA,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Compare with this schema file instead of a live PocketBase.",
            show_default=False,
        ),
    ] = None,
    url: UrlOpt = None,
    email: EmailOpt = None,
    password: PasswordOpt = None,
    include_system: IncludeSystemOpt = False,
    timeout: TimeoutOpt = 10.0,
    quiet: QuietOpt = False,
    page_size: PageSizeOpt = DEFAULT_PAGE_SIZE,
) -> None:
    """Show how a schema file differs from another file or a live PocketBase.

    Exit code 0: no changes; 1: the schemas differ; 2: error.
    """
    if against is not None and url is not None:
        raise HaptaError("pass either --against FILE or --url, not both")
    old = _load_snapshot(schema, include_system)
    if against is not None:
        new = _load_snapshot(against, include_system)
    else:
        conn = resolve_connection(url, email, password, url_hint="--against FILE, or --url")
        raw = _pull(conn, timeout=timeout, page_size=page_size, quiet=quiet)
        new = snapshot_collections(normalize(raw), include_system=include_system)
    lines = diff_collections(old, new)
    if not lines:
        typer.echo("no changes")
        return
    for line in lines:
        typer.echo(line)
    raise typer.Exit(1)


@schema_app.command("infer-json")
@handle_errors
def infer_json_command(
    key: Annotated[str, typer.Argument(help="The json field, as <collection>.<field> (posts.meta).")],
    url: UrlOpt = None,
    email: EmailOpt = None,
    password: PasswordOpt = None,
    sample: Annotated[
        int, typer.Option("--sample", min=1, help="How many of the newest records to read.")
    ] = 200,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
    timeout: TimeoutOpt = 10.0,
    quiet: QuietOpt = False,
) -> None:
    """Propose a JSON Schema for a json field from the values its live records hold (a starting
    point for hapta.yaml's json_schemas: read it, tighten it, commit it)."""
    import json

    from ..schema.infer import infer_schema, sample_values

    collection, dot, field = key.partition(".")
    if not dot or not collection or not field or "." in field:
        raise HaptaError(f"{key!r} is not <collection>.<field>")
    conn = resolve_connection(url, email, password)
    values = sample_values(
        conn.url, conn.email, conn.password, collection, field, sample=sample, timeout=timeout,
        progress=None if quiet else _progress,
    )
    if not values:
        raise HaptaError(f"no {collection} record has a value in {field!r}: nothing to infer from")
    text = json.dumps(infer_schema(values, title=key), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _write_atomically(out, text)
    typer.echo(f"wrote {out}: a JSON Schema of {key} from {len(values)} values", err=True)


if __name__ == "__main__":  # `python -m hapta_gen.cli.schema`, for running without the main CLI
    schema_app(prog_name="hapta-gen schema")
