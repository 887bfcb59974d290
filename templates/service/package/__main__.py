"""``python -m <package> --host 127.0.0.1 --port 8080 [--workers N]``: serve the gateway.

Settings come from the environment and ``.env`` (see ``settings``); a missing or wrong one stops
here with one line and exit code 2, before anything listens.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import uvicorn

from .catalog import SESSIONS
from .server import BoundedHttpToolsProtocol
from .settings import SettingsError, load_settings

_PACKAGE = __package__ or "gateway"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {_PACKAGE}", description="Serve the PocketBase gateway."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=10.0,
        help="seconds in-flight requests get to finish on shutdown (default 10)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and settings.cache_on and not settings.redis_url:
        # Each worker would hold a cache of its own, and a write through one would not reach
        # the others: several workers share a cache through HAPTA_REDIS_URL, or serve without.
        os.environ["HAPTA_CACHE"] = "off"
        print(
            "note: the response cache is off with --workers > 1 (set HAPTA_REDIS_URL to share "
            "one between the workers)",
            file=sys.stderr,
        )
    if args.workers > 1 and (settings.sessions or SESSIONS) == "rolling" and not settings.redis_url:
        print(
            "error: rolling sessions with --workers above 1 need HAPTA_REDIS_URL "
            "(sessions kept in memory are one process's)",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        f"{_PACKAGE}.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=BoundedHttpToolsProtocol,  # httptools, with bounds on heads and connections
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=False,  # the gateway writes its own structured access log
        proxy_headers=False,  # X-Forwarded-For is trusted only per HAPTA_TRUSTED_PROXIES
        server_header=False,
        date_header=False,  # PocketBase's Date header is passed through
        timeout_graceful_shutdown=args.graceful_timeout,
        log_level=settings.log_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
