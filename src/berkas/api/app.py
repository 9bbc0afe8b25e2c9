"""The ASGI application factory: partner routes, links, keys and health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from berkas import __version__
from berkas.api import docs, errors
from berkas.api.connections import BodyIdleTimeout
from berkas.api.metrics import METRICS_STATE, Metrics
from berkas.api.observe import RequestLog
from berkas.api.openapi import SECURITY_SCHEMES
from berkas.api.routes import files, public, signed, uploads
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from berkas.services.bundle import Services

log = logging.getLogger(__name__)

# How often a serving node re-reads the signing keys: a `berkas keys rotate` anywhere in
# the fleet signs new tokens on every node within this, and its JWKS shows the new key.
# (An unknown kid in a token triggers a re-read sooner, rate-limited in the key ring.)
KEY_SYNC_SECONDS = 5.0

DESCRIPTION = """\
berkas speaks DOKU's Partner file API: sign a request with your HMAC secret to get an
RS256 bearer token (POST /token), ask which documents a merchant needs (GET /file), and
upload each one (POST /file). Every error is `{"error": {"code", "message", "type"}}`
(a 5xx adds `request_id`, also sent as the `Request-Id` response header); each operation
lists the statuses and codes it answers. Any request may also be answered, before an
operation runs, with `malformed_http` (400), `not_found` (404), `method_not_allowed` (405),
`request_timeout` (408), `headers_too_large` (431) or `server_busy` (503).
"""

TAGS = [
    {
        "name": "partner",
        "description": "DOKU's Partner file API: HMAC-signed token and requirements, "
        "bearer-authenticated uploads and metadata.",
    },
    {"name": "links", "description": "Signed links to a stored file's exact bytes."},
    {"name": "keys", "description": "The public keys (JWKS) that verify berkas tokens."},
    {"name": "health", "description": "Liveness and readiness probes for load balancers."},
]


async def _every(seconds: float, chore: Callable[[], object], what: str) -> None:
    """Repeat a node's chore for as long as it serves; a failed round is retried."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(chore)
        except Unavailable as exc:
            # The database or store is down: /readyz and every request already say so;
            # one line per round, no traceback (the next round retries).
            log.warning("%s skipped: %s (%s)", what, exc.message, exc.code)
        except Exception:
            log.exception("%s failed; it runs again at the next interval", what)


# What the metrics listener answers: the metrics, and the probes a monitor also wants.
METRICS_LISTENER_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


class MetricsListener:
    """Keeps /metrics off the partner-facing port and partner routes off the metrics
    port: the request counts, client ids in refusals and process figures are for the
    monitoring network, not for whoever can reach the API."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server") or ("", 0)
            path = scope["path"]
            if server[1] == self.port:
                refused = path not in METRICS_LISTENER_PATHS
            else:
                refused = path == "/metrics"
            if refused:
                body = errors.envelope(Code.NOT_FOUND)
                await JSONResponse(body, status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    services: Services,
    *,
    body_idle_timeout: float | None = None,
    metrics_port: int | None = None,
) -> FastAPI:
    """Build the app around already-built services (see ``berkas.wiring.build``).

    ``body_idle_timeout``: the longest gap between a request body's chunks (``serve``
    passes ``BERKAS_BODY_IDLE_TIMEOUT_SECONDS``; in-process tests need none).
    ``metrics_port``: the local port of the metrics listener, which alone serves
    /metrics (with /healthz and /readyz); None serves /metrics with everything else.
    """

    metrics = Metrics()
    metrics.follow_write_lock(services.database.write_lock_waits)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Metrics]]:
        housekeeping, nodes = services.housekeeping, services.nodes
        # Renewed once before serving: start-up chores (first keys, bucket checks, orphan
        # sweeps) may have eaten into the lease since prepare claimed it.
        await run_in_threadpool(nodes.heartbeat)
        chores = [
            asyncio.create_task(
                _every(housekeeping.interval.total_seconds(), housekeeping.run_once, "housekeeping")
            ),
            # Request-Id answers live no longer than a replay can be accepted (README,
            # "Secrets at rest and the master key"), whatever the housekeeping interval.
            asyncio.create_task(
                _every(
                    housekeeping.purge_interval.total_seconds(),
                    housekeeping.purge_replays,
                    "Request-Id purge",
                )
            ),
            # The node-number lease (docs/design.md 5.6), renewed well before it lapses.
            asyncio.create_task(
                _every(nodes.interval.total_seconds(), nodes.heartbeat, "node lease renewal")
            ),
            asyncio.create_task(_every(KEY_SYNC_SECONDS, services.keys.reload, "signing key sync")),
        ]
        # Everything built so far (the app, routes, SQLAlchemy's compiled statements, the
        # catalogue) lives as long as the process: moved out of the collector's sight, a
        # full collection no longer walks it on every request's allocations.
        # https://docs.python.org/3/library/gc.html#gc.freeze
        gc.freeze()
        try:
            # The connection layer counts what it answers itself in the same registry.
            yield {METRICS_STATE: metrics}
        finally:
            for chore in chores:
                chore.cancel()
            for chore in chores:
                with contextlib.suppress(asyncio.CancelledError):
                    await chore
            # A clean stop frees the number at once; a crash frees it when the lease lapses.
            with contextlib.suppress(Exception):
                await run_in_threadpool(nodes.release)

    app = FastAPI(
        lifespan=lifespan,
        title="berkas",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        # Relative: the document is served by the server it describes, under whatever
        # name the partner reached it (BERKAS_PUBLIC_URL, a proxy, loopback).
        servers=[{"url": "/", "description": "this berkas server"}],
        # Served by api/docs.py from packaged assets, not FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    errors.install(app)
    docs.install(app)
    if body_idle_timeout is not None:
        app.add_middleware(BodyIdleTimeout, seconds=body_idle_timeout)
    if metrics_port is not None:
        app.add_middleware(MetricsListener, port=metrics_port)
    # Outermost: the request id, the access line and the metrics see every answer.
    app.add_middleware(RequestLog, crash_body=errors.crash_body, observe=metrics.observe)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    for module in (signed, uploads, files, public):
        app.include_router(module.router)
    # HEAD too (link previewers, load balancers' health checks); kept out of the schema,
    # where it would only repeat the GET.
    for path, endpoint in (
        ("/links/{key:path}", files.download),
        ("/healthz", public.healthz),
        ("/readyz", public.readyz),
    ):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
    _finish_openapi(app)
    return app


def _finish_openapi(app: FastAPI) -> None:
    """Two corrections to the document FastAPI generates.

    The partner routes name a ``bearer`` scheme in their ``security``; FastAPI lists
    schemes only for its own security dependencies, so the document declares it here.
    FastAPI also adds a 422 ``HTTPValidationError`` to every route with a parameter, but
    berkas answers a framework validation error 400 ``invalid_request`` in the envelope
    (api/errors.py), so that 422 is never sent and is removed: an operation lists only
    what it answers.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            components = spec.setdefault("components", {})
            components["securitySchemes"] = SECURITY_SCHEMES
            framework = "#/components/schemas/HTTPValidationError"
            for operations in spec["paths"].values():
                for operation in operations.values():
                    responses = operation["responses"]
                    if framework in json.dumps(responses.get("422", {})):
                        del responses["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]
