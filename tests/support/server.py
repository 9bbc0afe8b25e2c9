"""A real ``berkas serve`` process on loopback, and a partner that talks to it over HTTP."""

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

import httpx

from berkas.core import signing
from tests.support.fixture_server import free_port

PREFIX = "/adv-core-api/partner/v1.0"


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
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
                self.port = free_port()

    def _start_once(self, timeout: float) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.process = self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                if "address already in use" in output.lower():
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
            [sys.executable, "-m", "berkas.cli.main", "serve", "--port", str(self.port)],
            env={
                **os.environ,
                "BERKAS_DATA_DIR": str(self.data_dir),
                "BERKAS_LOG_LEVEL": "warning",
                **self.env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )

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

    def new_partner(self, client_id: str | None = None) -> Partner:
        args = ["clients", "create", "--json"]
        if client_id:
            args += ["--client-id", client_id]
        created = json.loads(self.cli(*args))
        return Partner(self.url, created["client_id"], created["secret_key"])


@dataclass
class Partner:
    """A partner integration speaking DOKU's wire protocol with nothing but HTTP."""

    base_url: str
    client_id: str
    secret_key: str
    _token: str | None = None

    def signed(self, method: str, path: str, body: bytes | None, **extra: Any) -> httpx.Response:
        headers = signing.signed_headers(
            client_id=self.client_id,
            secret_key=self.secret_key,
            target=path,
            body=body,
            request_id=extra.pop("request_id", None),
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        return httpx.request(
            method, self.base_url + path, content=body, headers=headers, timeout=30, **extra
        )

    def get_token(self, valid_time: str = "60") -> httpx.Response:
        body = json.dumps({"grant_type": "client_credentials", "valid_time": valid_time}).encode()
        return self.signed("POST", f"{PREFIX}/token", body)

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.get_token()
            assert response.status_code == 200, response.text
            self._token = response.json()["token"]
        return self._token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def upload(
        self,
        content: bytes | None,
        *,
        category: str = "DOCUMENT",
        code: str | None = "KTP",
        filename: str = "document.jpg",
        file_url: str | None = None,
        token: str | None = None,
        timeout: float = 60,
    ) -> httpx.Response:
        # Text fields go as (None, value) parts so the body is multipart even without a file.
        parts: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = [
            ("category", (None, category, None))
        ]
        if code is not None:
            parts.append(("code", (None, code, None)))
        if file_url is not None:
            parts.append(("file_url", (None, file_url, None)))
        if content is not None:
            parts.append(("file", (filename, content, "application/octet-stream")))
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.post(
            f"{self.base_url}{PREFIX}/file",
            files=parts,
            headers=headers,
            timeout=timeout,
        )
