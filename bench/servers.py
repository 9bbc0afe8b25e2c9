"""The two servers under load, each pinned to the server core with ``taskset``.

berkas is ``berkas serve`` with the embedded default's settings (SQLite + local disk, no
demo client) through the tests' ``Server`` helper; the peer is ``python -m bench.peer``
(or, with more than one worker, the same app under ``uvicorn --workers``). The workers
row runs ``berkas serve --workers N`` unpinned (``berkas(..., pinned=False)``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.peer.app import create_app
from tests.support.fixture_server import free_port
from tests.support.server import Server

SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))


class PinnedServer(Server):
    """``berkas serve`` under ``taskset -c SERVER_CPU`` (taskset execs: same pid)."""

    def _command(self) -> list[str]:
        return ["taskset", "-c", SERVER_CPU, *super()._command()]


def serve_has_workers() -> bool:
    """Whether this ``berkas serve`` takes ``--workers`` (asked at run time, from --help)."""
    done = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0 and "--workers" in done.stdout


def berkas(data_dir: Path, *, pinned: bool = True, args: tuple[str, ...] = ()) -> Server:
    """``berkas serve`` with the bench's settings, started; pinned to SERVER_CPU unless
    ``pinned`` is False (then the plain tests' ``Server``), with ``args`` after --port."""
    env = {
        "BERKAS_DEMO_CLIENT": "false",
        # One bench client sends what a whole fleet of partners would: the per-client
        # rate limits (services/limits.py) would measure themselves, not the work. The
        # per-node cap on concurrent uploads (256) stays on; the bench sends at most 128.
        "BERKAS_RATE_LIMIT_PER_SECOND": "0",
        "BERKAS_UPLOAD_RATE_PER_SECOND": "0",
    }
    if WORKERS > 1:
        # Like with like: the peer's uvicorn workers against berkas serve --workers.
        env["BERKAS_WORKERS"] = str(WORKERS)
    server = (PinnedServer if pinned else Server)(data_dir=data_dir, env=env, args=args)
    server.start()
    return server


class _Pinned:
    """A server process on loopback pinned to SERVER_CPU, its output in ``log``."""

    name = "server"

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = log_dir / f"{self.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _launch(self, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``command`` under taskset and wait until its /healthz answers."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Floor(_Pinned):
    """bench/floor_app.py on uvicorn (httptools, uvloop), pinned like berkas."""

    name = "floor"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", "bench.floor_app:app",
            "--port", str(self.port), "--http", "httptools", "--loop", "uvloop",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self._launch(command)


class Peer(_Pinned):
    """The careful peer on loopback, pinned like berkas."""

    name = "peer"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir.parent)
        self.data_dir = data_dir

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if WORKERS > 1:
            create_app(self.data_dir)  # makes the RSA key once, before workers race for it
            command = [
                sys.executable, "-m", "uvicorn", "--factory", "bench.peer_workers:app",
                "--port", str(self.port), "--workers", str(WORKERS),
                "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "bench.peer",
                "--port", str(self.port), "--data-dir", str(self.data_dir),
            ]  # fmt: skip
        self._launch(command, env={**os.environ, "BENCH_PEER_DATA_DIR": str(self.data_dir)})
