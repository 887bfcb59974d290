"""``hapta-gen demo``: the command's options; the work is ``dev.demo.run_demo``."""

from __future__ import annotations

from typing import Annotated

import typer

from ..dev.demo import run_demo
from .failure import handle_errors


@handle_errors
def demo(
    port: Annotated[int, typer.Option("--port", "-p", help="Port of the gateway.")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Interface of the gateway.")] = "127.0.0.1",
    pb_port: Annotated[
        int | None, typer.Option("--pb-port", help="Port of PocketBase (default: any free one).")
    ] = None,
    pocketbase_only: Annotated[
        bool,
        typer.Option("--pocketbase-only", help="Only the seeded PocketBase, no gateway (`task pb:up`)."),
    ] = False,
) -> None:
    """Run the example: a bundled, seeded PocketBase with the gateway in front (Ctrl-C stops all).

    Prints the gateway, /docs and PocketBase admin URLs and the example users' logins.
    """
    run_demo(port=port, host=host, pb_port=pb_port, pocketbase_only=pocketbase_only)
