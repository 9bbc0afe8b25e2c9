"""``berkas serve --workers N``: the supervisor that holds a node's socket, data-dir lock
and start-up chores, and the N worker processes it runs on that socket (docs/design.md
5.6). Process plumbing only: what a worker serves is ``serve``'s."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import click

log = logging.getLogger("berkas.workers")

# A worker that served at least this long before dying is restarted at once; one dying
# sooner waits twice as long as last time (up to MAX_BACKOFF), so a worker that cannot
# start (the database down) does not spin.
STEADY_SECONDS = 10.0
MAX_BACKOFF = 30.0
_TICK = 0.1


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process is handed (``serve --worker-of``): its slot, the node number
    it wants (-1: the lowest free), and the descriptors it inherits."""

    worker: int
    wanted: int
    listen: int
    metrics: int  # -1: /metrics on the partner port (a single worker only)
    lock: int
    life: int
    ready: int

    def encode(self) -> str:
        return ",".join(
            str(value)
            for value in (
                self.worker,
                self.wanted,
                self.listen,
                self.metrics,
                self.lock,
                self.life,
                self.ready,
            )
        )

    @classmethod
    def decode(cls, text: str) -> WorkerSpec:
        try:
            worker, wanted, listen, metrics, lock, life, ready = (int(p) for p in text.split(","))
        except ValueError:
            raise click.BadParameter(
                "internal: --worker-of is passed by berkas serve --workers"
            ) from None
        return cls(worker, wanted, listen, metrics, lock, life, ready)


def watch_supervisor(life: int) -> None:
    """In a worker: stop gracefully (SIGTERM to itself) once the supervisor is gone, even
    killed with -9: the pipe's write end dies with it. A worker must never outlive the
    process that holds its node's lock."""

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(life, 1):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="supervisor-watch", daemon=True).start()


def tell_started(ready: int, node_id: int | None) -> None:
    """In a worker: tell the supervisor it serves, and as which node number."""
    with contextlib.suppress(OSError):
        os.write(ready, f"{-1 if node_id is None else node_id}\n".encode())
    with contextlib.suppress(OSError):
        os.close(ready)


@dataclass
class _Worker:
    worker: int
    process: subprocess.Popen[bytes]
    ready_fd: int
    started_at: float
    ready: bool = False
    node_id: int | None = None
    buffer: bytes = b""


@dataclass
class Supervisor:
    """Runs ``workers`` processes of ``command`` + ``--worker-of``, restarts a dead one,
    and stops them all on SIGTERM or SIGINT (each finishing its requests in flight)."""

    workers: int
    command: list[str]
    listen: socket.socket
    metrics: list[socket.socket | None]
    lock_fd: int
    # BERKAS_NODE_ID + worker, or None per worker for auto.
    wanted: Callable[[int], int | None]
    _running: dict[int, _Worker] = field(default_factory=dict)
    _numbers: dict[int, int | None] = field(default_factory=dict)
    _stopping: int = 0
    _life: tuple[int, int] = (-1, -1)

    def run(self, on_all_ready: Callable[[list[tuple[int, int, int | None]]], None]) -> int:
        """Serve until a stop signal; returns the exit status."""
        self._life = os.pipe()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            return self._loop(on_all_ready)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in self._life:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _loop(self, on_all_ready: Callable[[list[tuple[int, int, int | None]]], None]) -> int:
        for slot in range(self.workers):
            self._spawn(slot)
        announced = False
        restart_at: dict[int, float] = {}
        backoff: dict[int, float] = {}
        while not self._stopping:
            for worker in list(self._running.values()):
                self._read_ready(worker)
                code = worker.process.poll()
                if code is None:
                    continue
                del self._running[worker.worker]
                os.close(worker.ready_fd)
                if not announced:
                    click.echo(
                        f"cannot start: worker {worker.worker} exited with status {code} "
                        "before serving (its output is above)",
                        err=True,
                    )
                    return 1
                served = time.monotonic() - worker.started_at
                wait = 0.0 if served >= STEADY_SECONDS else backoff.get(worker.worker, 0.5)
                backoff[worker.worker] = min(MAX_BACKOFF, max(1.0, wait * 2))
                log.error(
                    "worker %d (pid %d, node %s) exited with status %s after %.0f s; "
                    "restarting it in %.1f s",
                    worker.worker,
                    worker.process.pid,
                    worker.node_id,
                    code,
                    served,
                    wait,
                )
                restart_at[worker.worker] = time.monotonic() + wait
            for worker_slot, when in list(restart_at.items()):
                if time.monotonic() >= when:
                    del restart_at[worker_slot]
                    self._spawn(worker_slot)
            if (
                not announced
                and len(self._running) == self.workers
                and all(w.ready for w in self._running.values())
            ):
                announced = True
                on_all_ready(
                    [
                        (w.worker, w.process.pid, w.node_id)
                        for w in sorted(self._running.values(), key=lambda w: w.worker)
                    ]
                )
            time.sleep(_TICK)
        return 0

    def _spawn(self, worker: int) -> None:
        ready_r, ready_w = os.pipe()
        os.set_blocking(ready_r, False)
        metrics = self.metrics[worker]
        # A restarted worker takes back the number its predecessor held (its pending
        # blobs and staged files carry it); the supervisor reaped that process, so the
        # number has no live holder.
        wanted = self.wanted(worker)
        if wanted is None:
            wanted = self._numbers.get(worker)
        spec = WorkerSpec(
            worker=worker,
            wanted=-1 if wanted is None else wanted,
            listen=self.listen.fileno(),
            metrics=-1 if metrics is None else metrics.fileno(),
            lock=self.lock_fd,
            life=self._life[0],
            ready=ready_w,
        )
        fds = [spec.listen, spec.lock, spec.life, spec.ready]
        if metrics is not None:
            fds.append(metrics.fileno())
        try:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, berkas's own CLI
                [*self.command, "--worker-of", spec.encode()],
                pass_fds=fds,
                # Its own process group: a terminal's Ctrl-C reaches the supervisor only,
                # which stops the workers once (a second signal would force them).
                process_group=0,
            )
        finally:
            os.close(ready_w)
        self._running[worker] = _Worker(worker, process, ready_r, time.monotonic())

    def _read_ready(self, worker: _Worker) -> None:
        if worker.ready:
            return
        try:
            chunk = os.read(worker.ready_fd, 64)
        except BlockingIOError:
            return
        worker.buffer += chunk
        if b"\n" in worker.buffer:
            number = int(worker.buffer.split(b"\n", 1)[0])
            worker.ready = True
            worker.node_id = None if number < 0 else number
            self._numbers[worker.worker] = worker.node_id
            log.info(
                "worker %d (pid %d) serving as node %s",
                worker.worker,
                worker.process.pid,
                worker.node_id,
            )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping += 1
        if self._stopping == 1:
            return  # the loop ends and _stop_all sends each worker one SIGTERM
        # A second signal is passed on: uvicorn takes it as "stop now".
        for worker in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signum)

    def _stop_all(self) -> None:
        for worker in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGTERM)
        # No new worker will need the socket; with it closed here, the last worker to
        # stop closes the port.
        self.listen.close()
        for each in self.metrics:
            if each is not None:
                each.close()
        for worker in self._running.values():
            status = worker.process.wait()
            if status != 0:
                # A worker's own cleanup (its node number, its database pool) did not
                # finish: the operator hears of it, though the node as a whole stopped.
                log.warning(
                    "worker %d (pid %d, node %s) exited with status %s while stopping",
                    worker.worker,
                    worker.process.pid,
                    worker.node_id,
                    status,
                )
            with contextlib.suppress(OSError):
                os.close(worker.ready_fd)
        self._running.clear()


def worker_command(host: str, port: int, data_dir: str) -> list[str]:
    """How a worker is started: this interpreter, this berkas, ``serve`` on the same
    settings (the environment and any BERKAS_CONFIG_FILE are inherited)."""
    return [
        sys.executable,
        "-m",
        "berkas.cli.main",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--data-dir",
        data_dir,
    ]
