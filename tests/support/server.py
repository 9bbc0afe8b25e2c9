"""A real ``berkas serve`` process on loopback, and the transport partners reach it with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from berkas.config import load_settings
from berkas.wiring import open_existing
from tests.support.fixture_server import free_port
from tests.support.partner import Partner, Parts


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the real ``berkas`` CLI against ``data_dir`` and return its stdout."""
    completed = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", *args],
        env={**os.environ, "BERKAS_DATA_DIR": str(data_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"berkas {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout


class PortTaken(AssertionError):
    """The child could not bind its port: something else took it after ``free_port``."""


@dataclass
class Server:
    """One ``berkas serve`` child process; restartable on the same data dir."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    # The metrics listener's port (BERKAS_METRICS_PORT), unless env sets one.
    metrics_port: int = field(default_factory=free_port)
    # More arguments for ``berkas serve`` (after ``--port``), e.g. ``("--data-dir", ...)``.
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def __post_init__(self) -> None:
        self._distinct_ports()

    def _distinct_ports(self) -> None:
        # free_port releases what it found, so two calls can return the same number: the
        # server then refuses BERKAS_METRICS_PORT equal to BERKAS_PORT (a flake seen once).
        while self.metrics_port == self.port:
            self.metrics_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where this server's /metrics is: its metrics listener, or the partner port
        when ``env`` says ``BERKAS_METRICS_PORT=main``."""
        if self.env.get("BERKAS_METRICS_PORT") == "main":
            return self.url
        return f"http://127.0.0.1:{self.env.get('BERKAS_METRICS_PORT', self.metrics_port)}"

    @property
    def http(self) -> Loopback:
        """Requests to this server, over loopback (as ``InProcess.http`` is in-process)."""
        return Loopback(self.url)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        """Spawn the server and wait until /healthz answers.

        ``free_port`` releases its port before the child binds it, so another process can
        take it in between; when the child reports the address in use, a fresh port is
        tried (up to ``attempts`` times in all). Partners made before a retry keep the
        old URL, which only matters on a restart, and a restart reuses a port just freed.
        """
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return
            except PortTaken:
                if attempt == attempts:
                    raise
                self.port, self.metrics_port = free_port(), free_port()
                self._distinct_ports()

    def _start_once(self, timeout: float) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.process = self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                # What serve says when it cannot bind (adapters/listen.py), before it
                # touches the data dir: retrying elsewhere is safe.
                taken = (
                    f"cannot listen on 127.0.0.1:{port}: address already in use"
                    for port in (self.port, self.metrics_port)
                )
                if any(message in output for message in taken):
                    raise PortTaken(f"port {self.port} was taken:\n{output}")
                raise AssertionError(f"berkas serve exited early:\n{output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"berkas serve did not become healthy:\n{self.output()}")

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._command(),
            env={
                **self._base_env(),
                "BERKAS_DATA_DIR": str(self.data_dir),
                "BERKAS_LOG_LEVEL": "warning",
                "BERKAS_METRICS_PORT": str(self.metrics_port),
                **self.env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _command(self) -> list[str]:
        """What runs ``berkas serve`` on this server's port (a subclass may wrap it)."""
        return [
            sys.executable,
            "-m",
            "berkas.cli.main",
            "serve",
            "--port",
            str(self.port),
            *self.args,
        ]

    def _base_env(self) -> dict[str, str]:
        """The environment the server's own settings are laid over."""
        return dict(os.environ)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def cli(self, *args: str) -> str:
        return cli(self.data_dir, *args, env=self.env)

    def signing_key(self) -> RSAPrivateKey:
        """The private key this server signs tokens with, read as an operator's process
        on the same data dir and database would (to forge tokens in tests)."""
        environment = {"BERKAS_DATA_DIR": str(self.data_dir), **self.env}
        with mock.patch.dict(os.environ, environment):
            services = open_existing(load_settings())
        try:
            return services.keys.current().private_key
        finally:
            services.close()

    def new_partner(self, client_id: str | None = None) -> Partner:
        args = ["clients", "create", "--json"]
        if client_id:
            args += ["--client-id", client_id]
        created = json.loads(self.cli(*args))
        return Partner(self.http, created["client_id"], created["secret_key"])


class Loopback:
    """A ``Partner``'s ``Transport`` to a real server: one fresh connection per request.

    Nothing is pooled, so a server killed or restarted between requests never meets a
    stale socket, and threads sharing a partner share no connection.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        files: Parts | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> httpx.Response:
        return httpx.request(
            method,
            self.base_url + url,
            content=content,
            files=files,
            headers=headers,
            timeout=timeout,
        )
