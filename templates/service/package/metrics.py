"""Prometheus metrics: requests, latency, upstream calls, open realtime streams, the cache,
requests refused by a rate limit, rolling sessions. Served at ``/metrics``.

Label children are looked up once and kept, so the request path pays a dict lookup and an
increment. With ``--workers N`` each worker counts its own requests unless
``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The gateway's metrics in their own registry (one per app, so tests can build many)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hapta_requests_total",
            "Requests answered by the gateway.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "hapta_request_duration_seconds",
            "Time from the request's arrival to the end of the response.",
            ("route",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.upstream = Counter(
            "hapta_upstream_requests_total",
            "Requests sent to PocketBase, by outcome (HTTP status, error or timeout).",
            ("route", "outcome"),
            registry=self.registry,
        )
        #: Server-sent-event streams by ``endpoint``: ``realtime`` (``/api/realtime``), ``sse``
        #: (``/sse/...``), ``datastar`` (``/datastar/...``).
        self.sse_clients_by = Gauge(
            "hapta_sse_clients",
            "Server-sent-event clients connected now, by endpoint (realtime: /api/realtime "
            "streams and other code's subscriptions; sse; datastar).",
            ("endpoint",),
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.sse_clients = self.sse_clients_by.labels("realtime")
        self.sse_events_by = Counter(
            "hapta_sse_events_total",
            "Server-sent events queued for clients (one per client and event; heartbeats "
            "excepted), by endpoint.",
            ("endpoint",),
            registry=self.registry,
        )
        self.sse_events = self.sse_events_by.labels("realtime")
        self.sse_dropped_by = Counter(
            "hapta_sse_dropped_total",
            "Server-sent-event clients dropped for not reading (buffer full or send timeout), "
            "by endpoint.",
            ("endpoint",),
            registry=self.registry,
        )
        self.sse_dropped = self.sse_dropped_by.labels("realtime")
        self.upstream_streams_by = Gauge(
            "hapta_upstream_streams",
            "Realtime streams open to PocketBase now, by endpoint (realtime: one shared per "
            "process, plus one per client holding a topic that cannot be shared; sse: the "
            "typed-stream feeds' subscriptions, held on the realtime hub).",
            ("endpoint",),
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.upstream_streams = self.upstream_streams_by.labels("realtime")
        self.cache_hits = Counter(
            "hapta_cache_hits", "Reads answered from the cache.", registry=self.registry
        )
        self.cache_misses = Counter(
            "hapta_cache_misses",
            "Cacheable reads that were fetched from PocketBase.",
            registry=self.registry,
        )
        self.cache_invalidations = Counter(
            "hapta_cache_invalidations",
            "Cache entries dropped because a write may have made them stale.",
            registry=self.registry,
        )
        self.cache_flushes = Counter(
            "hapta_cache_flushes",
            "Whole-cache flushes: the realtime invalidation subscription was (re)made or dropped.",
            registry=self.registry,
        )
        self.cache_listener_up = Gauge(
            "hapta_cache_listener_up",
            "1 while the realtime invalidation subscription is up (writes elsewhere are seen).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.cache_shared_up = Gauge(
            "hapta_cache_shared_up",
            "1 while the shared cache (HAPTA_REDIS_URL) answers and its invalidations are heard.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.cache_bytes = Gauge(
            "hapta_cache_bytes",
            "Bytes held by the cache (bodies, headers and bookkeeping).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.limited = Counter(
            "hapta_ratelimited_total",
            "Requests refused (429) by a rate-limit rule, by rule name.",
            ("rule",),
            registry=self.registry,
        )
        self.sessions_active = Gauge(
            "hapta_sessions_active",
            "Live rolling sessions (families), as of the last session change this node made; "
            "with HAPTA_REDIS_URL the count is every node's.",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.session_reuse = Counter(
            "hapta_session_reuse_detected_total",
            "Rotated session keys presented after their grace window (each revoked its family).",
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in _METHODS:  # a client must not be able to mint label values
            method = "OTHER"
        key = ("r", route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        hist_key = ("d", route)
        hist = self._children.get(hist_key)
        if hist is None:
            hist = self._children[hist_key] = self.duration.labels(route)
        hist.observe(seconds)

    def upstream_call(self, route: str, outcome: str | int) -> None:
        key = ("u", route, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.upstream.labels(route, str(outcome))
        child.inc()

    def ratelimited(self, rule: str) -> None:
        key = ("l", rule)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.limited.labels(rule)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
