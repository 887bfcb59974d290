"""How every hapta-gen command reports failure: one ``error: ...`` line on stderr, exit code 2.

Use ``cli_errors()`` as a context manager around a command body, or ``@handle_errors`` on a Typer
command (put it below ``@app.command()``). Either turns ``HaptaError``, ``OSError`` and bad JSON
into that one line and ``typer.Exit(2)``; no traceback reaches the user for them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, ParamSpec, TypeVar

import typer

from ..errors import HaptaError

EXIT_ERROR = 2
P = ParamSpec("P")
R = TypeVar("R")


def one_line(message: str) -> str:
    """Collapse whitespace (newlines included) so a message is exactly one line."""
    return " ".join(message.split())


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code``."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def describe(exc: BaseException) -> str:
    """The one-line text for an error the CLI reports instead of a traceback."""
    if isinstance(exc, HaptaError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return str(exc) or type(exc).__name__


@contextmanager
def cli_errors() -> Iterator[None]:
    """Report HaptaError / OSError / bad JSON as one ``error:`` line and exit 2."""
    try:
        yield
    except (HaptaError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(describe(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of ``cli_errors()`` for Typer commands (keeps the signature Typer reads)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cli_errors():
            return func(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover  (cli_errors never swallows)

    return wrapper
