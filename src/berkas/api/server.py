"""The app on uvicorn, on sockets ``serve`` already bound: berkas's connection guard
(api/connections.py) as the HTTP protocol, its log handler, no uvicorn access log."""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from berkas.api.app import create_app
from berkas.api.connections import ConnectionLimits, guarded_protocol
from berkas.services.bundle import Services


def run(
    services: Services,
    sockets: list[socket.socket],
    *,
    limits: ConnectionLimits,
    host: str,
    port: int,
    log_level: str,
    log_config: dict[str, Any],
    metrics_port: int | None,
    on_started: Callable[[], None] | None = None,
) -> bool:
    """Serve until a shutdown signal; False when the app's lifespan start-up failed.

    ``on_started`` runs once the app has started and the sockets accept (a worker tells
    its supervisor so)."""
    # As uvicorn.run does, but on the socket already bound and locked for.
    server = _Server(
        on_started,
        uvicorn.Config(
            create_app(
                services,
                body_idle_timeout=limits.body_idle_timeout,
                metrics_port=metrics_port,
            ),
            host=host,  # for uvicorn's log lines only
            port=port,
            log_level=log_level,
            # berkas's own handler for uvicorn's loggers, and no uvicorn access log: it
            # prints raw paths with a link's signature.
            log_config=log_config,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            # httptools with deadlines, a head cap and a connection cap, and framing
            # errors in the envelope (docs/design.md 7.3).
            http=guarded_protocol(limits),
            # uvicorn's own keep-alive timer; the protocol's is the one that holds when
            # stray bytes arrive.
            timeout_keep_alive=max(1, math.ceil(limits.keepalive_timeout)),
        ),
    )
    server.run(sockets=sockets)
    return bool(server.started)


class _Server(uvicorn.Server):
    def __init__(self, on_started: Callable[[], None] | None, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn (0.29 and later) raises the SIGTERM or SIGINT it stopped on again once
        # it has shut down, so the process dies "killed by signal 15" before the code
        # after run() (closing the database, the data dir's lock, the exit status) runs.
        # A stop signal that was handled by a graceful shutdown is done with: forgotten.
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._on_started is not None and self.started and not self.should_exit:
            self._on_started()
