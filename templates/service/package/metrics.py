"""Prometheus metrics: requests, latency, upstream calls, open realtime streams, the cache,
requests refused by a rate limit, rolling sessions. Served at ``/metrics``.

Label children are looked up once and kept, so the request path pays a dict lookup and an
increment. The counts every request makes (``hapta_requests_total``, the duration histogram,
``hapta_cache_hits_total``) are plain Python numbers, turned into Prometheus families when
``/metrics`` is read (``_Hot``): prometheus-client takes a lock for each increment, which cost a
cache hit more than the cache lookup (the event loop is one thread: nothing to lock against).
With ``--workers N`` each worker counts its own requests unless ``PROMETHEUS_MULTIPROC_DIR`` is
set (prometheus-client's multiprocess mode; then prometheus-client's own objects count them).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The buckets' ``le`` labels, as prometheus-client writes them.
_LE = (*(repr(bound) for bound in _BUCKETS), "+Inf")


_REQUESTS = ("hapta_requests", "Requests answered by the gateway.")
_DURATION = (
    "hapta_request_duration_seconds",
    "Time from the request's arrival to the end of the response.",
)
_CACHE_HITS = ("hapta_cache_hits", "Reads answered from the cache.")


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Tally:
    """A counter without a lock, for the event loop's thread; exported by ``_Hot``."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


#: Requests the HTTP server (``server``) refused before the application saw them, by reason:
#: counted for the whole process and shown by every ``Metrics`` (``hapta_refused_total``).
REFUSED: dict[str, int] = dict.fromkeys(
    ("head_too_large", "uri_too_long", "too_many_clients", "head_timeout", "body_timeout"), 0
)


def refused(reason: str) -> None:
    """Count one refusal of the server's (``head_too_large``, ``uri_too_long``,
    ``too_many_clients``, ``head_timeout``, ``body_timeout``, ``invalid``)."""
    REFUSED[reason] = REFUSED.get(reason, 0) + 1


class _Refused(Collector):
    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "hapta_refused",
            "Requests and connections the HTTP server refused before the gateway saw them "
            "(431 head too large, 414 URI too long, 503 too many clients, 400 invalid).",
            labels=("reason",),
        )
        for reason, n in list(REFUSED.items()):
            family.add_metric((reason,), n)
        yield family


class _Hot(Collector):
    """The per-request counts, as Prometheus families when scraped."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        #: Per route: how many fell in each bucket (the last: above every bound), then the sum.
        self.durations: dict[str, list[float]] = {}
        self.cache_hits = Tally()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        counts = self.durations.get(route)
        if counts is None:
            counts = self.durations[route] = [0.0] * (len(_BUCKETS) + 2)
        counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(*_REQUESTS, labels=("route", "method", "status"))
        for (route, method, status), n in list(self.requests.items()):
            requests.add_metric((route, method, str(status)), n)
        yield requests
        duration = HistogramMetricFamily(*_DURATION, labels=("route",))
        for route, counts in list(self.durations.items()):
            buckets: list[tuple[str, float]] = []
            total = 0.0
            for le, count in zip(_LE, counts, strict=False):
                total += count
                buckets.append((le, total))
            duration.add_metric((route,), buckets, counts[-1])
        yield duration
        yield CounterMetricFamily(*_CACHE_HITS, value=self.cache_hits.value)


class Metrics:
    """The gateway's metrics in their own registry (one per app, so tests can build many)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Refused())
        self._hot: _Hot | None = None
        self.cache_hits: Counter | Tally
        if _multiprocess():  # each process's counts go through prometheus-client's files
            self.requests = Counter(
                *_REQUESTS, ("route", "method", "status"), registry=self.registry
            )
            self.duration = Histogram(
                *_DURATION, ("route",), buckets=_BUCKETS, registry=self.registry
            )
            self.cache_hits = Counter(*_CACHE_HITS, registry=self.registry)
        else:
            self._hot = _Hot()
            self.registry.register(self._hot)
            self.cache_hits = self._hot.cache_hits
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
        if self._hot is not None:
            self._hot.observe(route, method, status, seconds)
            return
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
