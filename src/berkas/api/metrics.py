"""Prometheus metrics for /metrics: requests by route template and status, and latency.

A registry per app (not the process-global default), so tests and several apps in one
process never share counters.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

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

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (``api.observe.RequestLog`` calls this)."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    async def endpoint(self, _: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
