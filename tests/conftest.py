"""Shared fixtures: real PocketBase servers on 127.0.0.1 (no mocks).

* ``pb``: one server for the whole session with the postly schema imported. Treat its schema as
  read-only (tests that change collections or settings use ``fresh_pb``). Records may be present
  (``pb_seeded`` seeds this same server), so do not count on an empty database.
* ``pb_seeded``: ``pb`` with ``examples/postly/seed.json`` loaded (once per session).
* ``fresh_pb``: a new, empty server per test, for tests that change the schema or settings.
* ``postly_schema`` / ``POSTLY_SCHEMA_PATH``: the committed example schema.
* ``http_stub``: a tiny ``http.server`` on 127.0.0.1 answering canned responses (for "not a
  PocketBase" and "too old a PocketBase" cases); ``closed_port``: a port nothing listens on;
  ``silent_port``: a port that accepts connections and never answers (timeouts).
* ``run_schema_cli``: runs ``python -m hapta_gen.cli.schema`` in a subprocess (real exit codes,
  real stderr), in a given working directory and with ``PB_*`` variables cleared.

Every server is started by the fixture that owns it and stopped by that same fixture.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # for `bench` (hapta_gen itself comes from the install)
    sys.path.insert(0, str(REPO_ROOT))

from hapta_gen.dev.pbserver import PocketBaseServer, free_port  # noqa: E402
from hapta_gen.dev.seed import seed_postly  # noqa: E402

#: Test modules here do ``from conftest import ...``; pytest drops ``conftest`` from
#: ``sys.modules`` each time it loads a sub-directory's conftest (tests/gateway, tests/sdk), so
#: put this one back before each test module of this directory is imported.
_THIS_CONFTEST = sys.modules[__name__]


def pytest_collectstart(collector: pytest.Collector) -> None:
    if isinstance(collector, pytest.Module) and collector.path.parent == Path(__file__).resolve().parent:
        sys.modules["conftest"] = _THIS_CONFTEST


POSTLY_DIR = REPO_ROOT / "examples" / "postly"
POSTLY_SCHEMA_PATH = POSTLY_DIR / "pb_schema.json"
PB_ENV_VARS = ("PB_URL", "PB_SUPERUSER_EMAIL", "PB_SUPERUSER_PASSWORD")


def load_postly_schema() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(POSTLY_SCHEMA_PATH.read_text("utf-8"))
    return data


def import_schema(server: PocketBaseServer, schema: Path | list[dict[str, Any]]) -> None:
    """Import a schema file (any shape PocketBase's import takes) or a list of collections."""
    if isinstance(schema, Path):
        data = json.loads(schema.read_text("utf-8"))
        collections = data["collections"] if isinstance(data, dict) else data
    else:
        collections = schema
    server.import_collections(copy.deepcopy(collections))


@pytest.fixture(scope="session")
def postly_schema() -> list[dict[str, Any]]:
    """The committed postly schema (a fresh copy is cheap; do not mutate the session one)."""
    return load_postly_schema()


@pytest.fixture(scope="session")
def pb() -> Iterator[PocketBaseServer]:
    """A PocketBase with the postly schema; shared by the session, schema is read-only."""
    with PocketBaseServer() as server:
        import_schema(server, load_postly_schema())
        yield server


@pytest.fixture(scope="session")
def pb_seeded(pb: PocketBaseServer) -> dict[str, list[dict[str, Any]]]:
    """Seeds ``pb`` once with examples/postly/seed.json; returns the created records."""
    return seed_postly(pb)


@pytest.fixture
def fresh_pb() -> Iterator[PocketBaseServer]:
    """A new, empty PocketBase (default collections only) for one test."""
    with PocketBaseServer() as server:
        yield server


CliRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_schema_cli(tmp_path: Path) -> CliRun:
    """Run ``hapta-gen schema ARGS`` as a real process in ``cwd`` (default: tmp_path)."""

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k not in PB_ENV_VARS}
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "hapta_gen.cli.schema", *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


#: (method, path without query) -> (status, content type, body[, extra headers])
Routes = dict[tuple[str, str], tuple[Any, ...]]


@pytest.fixture
def http_stub() -> Iterator[Callable[[Routes], str]]:
    """Start ``http.server`` on 127.0.0.1 with canned answers; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(routes: Routes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                key = (self.command, self.path.split("?", 1)[0])
                status, ctype, body, *extra = routes.get(key, (404, "text/html", "<h1>Not Found</h1>"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connection refused)."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections (backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]
