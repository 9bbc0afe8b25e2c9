"""Prometheus metrics for /metrics: requests by route template and status, latency, what
the service did (uploads, bytes stored, refusals by code, fetches), the build and the
process.

A registry per app (not the process-global default), so tests and several apps in one
process never share counters.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from berkas import __version__
from berkas.api.observe import RequestContext
from berkas.core.catalogue_types import Category
from berkas.core.ports import WriteLockWaits

_CATEGORIES = frozenset(category.value for category in Category)

# The lifespan state key under which the app hands its Metrics to the connection layer
# (uvicorn gives every connection the lifespan's state).
METRICS_STATE = "berkas.metrics"


class Metrics:
    """The instruments; ``observe`` feeds them, ``endpoint`` exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "berkas_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "berkas_http_request_duration_seconds",
            "Time to the end of the response, by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        # Answered (or cut) by the connection layer before any route ran
        # (api/connections.py): framing errors, deadlines, the connection cap.
        self.connection_answers = Counter(
            "berkas_http_connection_answers",
            "Answers of the connection layer before any route, by status and code "
            '(status "none": closed unanswered).',
            ["status", "code"],
            registry=self.registry,
        )

        self.uploads = Counter(
            "berkas_uploads",
            "Uploads by category and outcome: stored, replayed (an Idempotency-Key's "
            "earlier file) or refused.",
            ["category", "outcome"],
            registry=self.registry,
        )
        self.stored_bytes = Counter(
            "berkas_stored_bytes",
            "Bytes of documents stored, by category.",
            ["category"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "berkas_refusals",
            "Error answers by code (signature and token failures among them).",
            ["code"],
            registry=self.registry,
        )
        self.fetches = Counter(
            "berkas_fetches",
            "file_url uploads by outcome: stored, or the code that refused them.",
            ["outcome"],
            registry=self.registry,
        )
        Info("berkas_build", "The running berkas.", registry=self.registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        # CPU, memory, open files and start time of this process; the Python runtime.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def follow_write_lock(self, waits: Callable[[], WriteLockWaits | None]) -> None:
        """Expose ``berkas_db_write_lock_wait_seconds`` from ``waits`` (the database's
        ``write_lock_waits``), read at each scrape; nothing where it answers None."""
        self.registry.register(_WriteLockCollector(waits))

    def observe(
        self, method: str, route: str, status: int, seconds: float, context: RequestContext
    ) -> None:
        """Count one answered request (``api.observe.RequestLog`` calls this)."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if context.error_code is not None:
            self.refusals.labels(context.error_code).inc()
        if context.upload_category is None:
            return
        # A label only ever holds a catalogue category: whatever else a caller sent
        # must not become a time series of its own.
        category = context.upload_category
        category = category if category in _CATEGORIES else "invalid"
        if context.stored_bytes is not None and 200 <= status < 300:
            outcome = "replayed" if context.replayed else "stored"
            if not context.replayed:
                self.stored_bytes.labels(category).inc(context.stored_bytes)
        else:
            outcome = "refused"
        self.uploads.labels(category, outcome).inc()
        if context.fetched:
            fetch = outcome if outcome != "refused" else context.error_code or "refused"
            self.fetches.labels(fetch).inc()

    async def endpoint(self, _: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _WriteLockCollector(Collector):
    """SQLite's write-lock waits of this process as a Prometheus histogram: how long each
    write transaction queued for the file's one writer (workers of a node, the CLI and
    housekeeping included)."""

    def __init__(self, waits: Callable[[], WriteLockWaits | None]) -> None:
        self._waits = waits

    def collect(self) -> Iterator[HistogramMetricFamily]:
        waits = self._waits()
        if waits is None:
            return
        family = HistogramMetricFamily(
            "berkas_db_write_lock_wait_seconds",
            "Time each write transaction of this process took to begin (BEGIN IMMEDIATE): "
            "its wait for SQLite's write lock, plus re-taking the GIL under load.",
            buckets=[
                *((repr(bound), count) for bound, count in waits.buckets),
                ("+Inf", waits.count),
            ],
            sum_value=waits.seconds,
        )
        yield family
