"""Run-time settings, from the environment and ``.env`` (pydantic-settings).

``load_settings`` fails with one line (``SettingsError``) naming the setting that is missing or
wrong, so ``python -m <package>`` can stop before serving anything.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Seconds a cache entry lives at most when writes made elsewhere are not observed (no
#: ``PB_SUPERUSER_*``) and ``HAPTA_CACHE_TTL`` is not set.
NO_LISTENER_TTL = 5.0


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line meant for the operator."""


class Settings(BaseSettings):
    """Everything the gateway reads at start. Only ``POCKETBASE_URL`` is required."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    #: The upstream PocketBase, e.g. ``http://127.0.0.1:8090``.
    pocketbase_url: str = Field(alias="POCKETBASE_URL")
    #: Optional: used only for startup checks and the cache's realtime invalidation
    #: subscription (``cachelisten``), never for a user's request.
    superuser_email: str | None = Field(default=None, alias="PB_SUPERUSER_EMAIL")
    superuser_password: SecretStr | None = Field(default=None, alias="PB_SUPERUSER_PASSWORD")
    #: Optional shared state (cache, limits, sessions) for several gateway nodes.
    redis_url: str | None = Field(default=None, alias="HAPTA_REDIS_URL")
    #: Seconds Valkey/Redis may take to connect or answer before it counts as down.
    redis_timeout: float = Field(default=1.0, gt=0, alias="HAPTA_REDIS_TIMEOUT")
    #: Rate limits (the rules are generated from ``hapta.yaml``): off switch, and what to do
    #: when Valkey/Redis does not answer: ``open`` serves unlimited (with a log line),
    #: ``closed`` answers 503.
    rate_limit_enabled: bool = Field(default=True, alias="HAPTA_RATE_LIMIT_ENABLED")
    rate_limit_on_redis_error: Literal["open", "closed"] = Field(
        default="open", alias="HAPTA_RATE_LIMIT_ON_REDIS_ERROR"
    )
    #: Peers whose ``X-Forwarded-For`` is believed: IPs or CIDRs, comma-separated.
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        default=(), alias="HAPTA_TRUSTED_PROXIES"
    )
    #: A ``hapta.yaml`` (generation settings; the gateway reads it for run-time policies).
    config_path: Path | None = Field(default=None, alias="HAPTA_CONFIG")
    #: Upstream timeouts (seconds) and pool size: to connect, per read, for the whole exchange
    #: (request sent to answer's last byte; realtime streams excepted), and the wait for a free
    #: pooled connection.
    connect_timeout: float = Field(default=5.0, gt=0, alias="HAPTA_CONNECT_TIMEOUT")
    upstream_timeout: float = Field(default=30.0, gt=0, alias="HAPTA_UPSTREAM_TIMEOUT")
    upstream_deadline: float = Field(default=120.0, gt=0, alias="HAPTA_UPSTREAM_DEADLINE")
    pool_timeout: float = Field(default=5.0, gt=0, alias="HAPTA_POOL_TIMEOUT")
    max_connections: int = Field(default=100, ge=1, alias="HAPTA_MAX_CONNECTIONS")
    #: Seconds a client may take to accept the next piece of a long answer before it is
    #: dropped (a client that stops reading holds no upstream connection, only its spool).
    send_timeout: float = Field(default=30.0, gt=0, alias="HAPTA_SEND_TIMEOUT")
    #: Largest JSON body accepted (bytes); multipart uploads are bounded per file field.
    max_body_size: int = Field(default=32 * 1024 * 1024, ge=1024, alias="HAPTA_MAX_BODY_SIZE")
    #: Bounds on what one client can make the gateway hold (see ``server`` and ``streams``):
    #: request head bytes (request line and headers) and header count (past them: 431), open
    #: client connections (past it: 503), realtime streams in total (503) and per client IP
    #: (429). Connections and streams are clamped to what the open-file limit allows.
    max_header_size: int = Field(default=64 * 1024, ge=1024, alias="HAPTA_MAX_HEADER_SIZE")
    #: Seconds a client has to send a whole request head, from the connection's opening or the
    #: request's first byte (past them: 408, the connection closed). Both timeouts are checked
    #: every min(HAPTA_HEADER_TIMEOUT, HAPTA_BODY_TIMEOUT) seconds, so act within that much more.
    header_timeout: float = Field(default=10.0, gt=0, alias="HAPTA_HEADER_TIMEOUT")
    #: Seconds a request body's next piece may take to come while the gateway reads it (past
    #: them the connection is closed).
    body_timeout: float = Field(default=30.0, gt=0, alias="HAPTA_BODY_TIMEOUT")
    max_headers: int = Field(default=100, ge=8, alias="HAPTA_MAX_HEADERS")
    max_clients: int = Field(default=10_000, ge=1, alias="HAPTA_MAX_CLIENTS")
    max_streams: int = Field(default=1000, ge=1, alias="HAPTA_MAX_STREAMS")
    max_streams_per_ip: int = Field(default=20, ge=1, alias="HAPTA_MAX_STREAMS_PER_IP")
    #: Streams (``/api/realtime``, ``/sse/...``, ``/datastar/...``): seconds without an event
    #: before a stream gets a heartbeat (a comment line); seconds between the fresh upstream
    #: subscriptions that replace one (before PocketBase's 5-minute idle and 30-minute caps end
    #: it).
    sse_heartbeat: float = Field(default=15.0, gt=0, alias="HAPTA_SSE_HEARTBEAT")
    sse_rotate: float = Field(default=240.0, gt=0, le=280, alias="HAPTA_SSE_ROTATE")
    #: Realtime (``fanout``): bytes a client may leave unread before it is dropped, and how
    #: often (seconds) streams made with a rolling session key are checked against revocations
    #: made elsewhere.
    sse_buffer: int = Field(default=256 * 1024, ge=1024, alias="HAPTA_SSE_BUFFER")
    sse_session_check: float = Field(default=10.0, gt=0, alias="HAPTA_SSE_SESSION_CHECK")
    #: Typed SSE and Datastar streams (``ssefeed``): events a client may have waiting before it
    #: is dropped as too slow; events each feed keeps for ``Last-Event-ID`` resumes, and seconds
    #: a feed (its upstream stream) stays open after its last client left, so that a
    #: reconnecting client resumes; lifetime of a single-use stream ticket
    #: (``POST /sse/ticket``); a directory of record fragment templates (``<collection>.html``)
    #: that shadow the generated ones; the example page ``/demo/live/<collection>`` on or off.
    sse_client_buffer: int = Field(default=256, ge=1, alias="HAPTA_SSE_CLIENT_BUFFER")
    sse_resume_events: int = Field(default=1000, ge=0, alias="HAPTA_SSE_RESUME_EVENTS")
    sse_resume_window: float = Field(default=30.0, ge=0, alias="HAPTA_SSE_RESUME_WINDOW")
    sse_ticket_ttl: float = Field(default=30.0, gt=0, le=3600, alias="HAPTA_SSE_TICKET_TTL")
    fragments_dir: Path | None = Field(default=None, alias="HAPTA_FRAGMENTS_DIR")
    demo_pages: bool = Field(default=False, alias="HAPTA_DEMO_PAGES")
    #: Worker processes that check bodies above 16 KiB off the event loop (see ``offload``).
    check_workers: int = Field(default=2, ge=1, alias="HAPTA_CHECK_WORKERS")
    #: The response cache (``layers/cache``): ``off`` takes it out of the chain. Entries live
    #: at most ``cache_ttl`` seconds (default: ``hapta.yaml``'s ``cache: ttl``, 300, with the
    #: superuser credentials, which let ``cachelisten`` see writes made elsewhere; at most 5
    #: without) and hold ``cache_max_bytes`` in all. Unset, each takes ``hapta.yaml``'s value
    #: as generated (the catalog's ``CACHE_*``); set, it wins.
    cache: bool | None = Field(default=None, alias="HAPTA_CACHE")
    cache_ttl: float | None = Field(default=None, gt=0, alias="HAPTA_CACHE_TTL")
    cache_max_bytes: int | None = Field(default=None, ge=4096, alias="HAPTA_CACHE_MAX_BYTES")
    #: Rolling-key sessions (``rolling``) or PocketBase's tokens as they are (``passthrough``);
    #: unset: ``hapta.yaml``'s ``sessions`` as generated. Rolling sessions live in
    #: ``HAPTA_REDIS_URL`` when set (shared, survive restarts), else in this process.
    sessions: Literal["passthrough", "rolling"] | None = Field(default=None, alias="HAPTA_SESSIONS")
    #: Seconds a rotated session key still works (requests in flight during a refresh).
    session_grace: float = Field(default=10.0, ge=0, alias="HAPTA_SESSION_GRACE")
    #: Rolling sessions kept in this process (without ``HAPTA_REDIS_URL``); past it a login
    #: evicts the session least recently logged in or refreshed.
    sessions_max: int = Field(default=100_000, ge=1, alias="HAPTA_SESSIONS_MAX")
    #: One JSON line per request on stderr.
    access_log: bool = Field(default=True, alias="HAPTA_ACCESS_LOG")
    log_level: str = Field(default="info", alias="HAPTA_LOG_LEVEL")

    @field_validator("pocketbase_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8090")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value.strip().rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("redis", "rediss", "unix", "valkey", "valkeys"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value.strip()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> tuple[Network, ...]:
        if value is None or value == "":
            return ()
        items = value.split(",") if isinstance(value, str) else list(value)
        out = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                out.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"{text!r} is not an IP address or CIDR") from None
        return tuple(out)

    @field_validator("config_path")
    @classmethod
    def _config(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(f"{value} is not a file")
        try:
            data = yaml.safe_load(value.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{value} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{value} must hold a mapping of settings")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError("must be one of debug, info, warning, error, critical")
        return value.lower()

    @property
    def has_superuser(self) -> bool:
        return bool(self.superuser_email and self.superuser_password)

    @property
    def cache_on(self) -> bool:
        """``HAPTA_CACHE``, else ``hapta.yaml``'s ``cache: enabled``."""
        from .catalog import CACHE_ENABLED

        return CACHE_ENABLED if self.cache is None else self.cache

    @property
    def cache_bytes(self) -> int:
        """``HAPTA_CACHE_MAX_BYTES``, else ``hapta.yaml``'s ``cache: max_bytes``."""
        from .catalog import CACHE_MAX_BYTES

        return CACHE_MAX_BYTES if self.cache_max_bytes is None else self.cache_max_bytes

    @property
    def cache_lifetime(self) -> float:
        """``HAPTA_CACHE_TTL``, or ``hapta.yaml``'s ``cache: ttl`` (at most ``NO_LISTENER_TTL``
        when writes made elsewhere are not seen)."""
        return self.lifetime(None)

    def lifetime(self, wanted: float | None) -> float:
        """How long an entry may live that its collections want to keep ``wanted`` seconds
        (``None``: ``hapta.yaml``'s ``cache: ttl``); ``HAPTA_CACHE_TTL``, when set, decides the
        default and caps the rest."""
        from .catalog import CACHE_TTL

        if self.cache_ttl is not None:
            return self.cache_ttl if wanted is None else min(wanted, self.cache_ttl)
        ttl = float(CACHE_TTL if wanted is None else wanted)
        return ttl if self.has_superuser else min(ttl, NO_LISTENER_TTL)


_ENV_NAMES = {name: (info.alias or name) for name, info in Settings.model_fields.items()}


def load_settings(**overrides: Any) -> Settings:
    """Read the settings (environment, then ``.env``); one ``SettingsError`` line if wrong."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err["loc"] else "settings"
        name = _ENV_NAMES.get(loc, loc)
        if err["type"] == "missing":
            raise SettingsError(
                f"{name} is not set (the upstream PocketBase, e.g. http://127.0.0.1:8090)"
            ) from None
        message = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(
            f"{name} {message}" if err["type"] == "value_error" else f"{name}: {message}"
        ) from None
    if bool(settings.superuser_email) != bool(settings.superuser_password):
        raise SettingsError("PB_SUPERUSER_EMAIL and PB_SUPERUSER_PASSWORD must be set together")
    return settings
