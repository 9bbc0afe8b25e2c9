"""Drive ``wrk`` with prebuilt raw requests (bench/lua/requests.lua) and parse its JSON.

Requests are built here, in Python, byte for byte (multipart bodies with a fixed
boundary, DOKU signatures with one Request-Id each), written to a file, and replayed by
the Lua script. wrk runs pinned to its own core, with ``--timeout 30s`` so slow
requests are counted in the latency figures instead of being dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

LUA = Path(__file__).parent / "lua" / "requests.lua"
BOUNDARY = "berkasbench7f3a9c1e5d"
WRK_CPU = os.environ.get("BENCH_WRK_CPU", "1")


def raw_request(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes | None = None
) -> bytes:
    """One HTTP/1.1 request as it goes on the wire (keep-alive, explicit length)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def multipart(fields: dict[str, str], filename: str, content: bytes, mime: str) -> bytes:
    """A multipart/form-data body (``BOUNDARY``): the text fields, then the file."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    head = "".join(parts) + (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'
    )
    return head.encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def write_requests(path: Path, requests: Iterable[bytes]) -> int:
    """Write entries for the Lua script; returns how many."""
    count = 0
    with path.open("wb") as f:
        for request in requests:
            f.write(f"{len(request)}\n".encode() + request)
            count += 1
    return count


def rss_bytes(process: psutil.Process) -> int:
    """The RSS of ``process`` and its children, in bytes (a child that just left counts 0)."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakRss:
    """Samples a process's RSS (with its children) every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        return rss_bytes(self._process)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    requests: int
    seconds: float
    response_bytes: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does)")
    return found


def run(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    seconds: float,
    server_pid: int,
) -> Result:
    """One wrk run against ``url`` replaying ``requests_file``, with the server's peak RSS."""
    command = [
        "taskset",
        "-c",
        WRK_CPU,
        ensure_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file)}
    with PeakRss(server_pid) as rss:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Result(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        response_bytes=int(data["bytes"]),
        non_2xx=int(data["status"]),
        socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        peak_rss_mb=rss.peak / 1e6,
    )


def pause(seconds: float = 0.5) -> None:
    """Let the server drain between runs (in-flight uploads wrk abandoned at the end)."""
    time.sleep(seconds)
