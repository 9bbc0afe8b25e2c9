"""``make profile``: where a loaded ``berkas serve`` spends its CPU (200 KB uploads, or
another of make bench's rows with PROFILE_WORKLOAD).

``berkas serve`` (the embedded default, pinned to one core as in ``make bench``) takes
200 KB JPEG uploads from wrk (c=32, the other core) while py-spy samples it with
``--nonblocking`` (a blocking py-spy pauses the server at every sample and distorts what
it measures) at 200 Hz, idle samples dropped. Each sampled stack is put in the first
bucket whose pattern it contains (checked in the order below), and the summary prints
each bucket's share of the busy samples. The raw collapsed stacks stay in
``bench/results/profile-<label>.txt`` for a flame graph.

    make profile                      # 200 KB, 20 s
    PROFILE_BYTES=5000000 make profile
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import psutil

from bench import compare, images, servers, wrk

SECONDS = int(os.environ.get("PROFILE_SECONDS", "20"))
BODY_BYTES = int(os.environ.get("PROFILE_BYTES", "200000"))
# PROFILE_WORKLOAD: upload (default), token (DOKU-signed POST /token), requirements, or
# metadata (GET /file/{id} with a bearer token) — the rows of make bench, one at a time.
WORKLOAD = os.environ.get("PROFILE_WORKLOAD", "upload")
CONNECTIONS = int(os.environ.get("PROFILE_CONNECTIONS", "32"))
# PROFILE_GIL=1: only samples of the thread holding the GIL (Python's CPU; code that
# releases the GIL, as decoding, hashing and the cipher do, is then undercounted).
GIL_ONLY = os.environ.get("PROFILE_GIL") == "1"
RESULTS = Path(__file__).parent / "results"

# (bucket, frame substrings): the first bucket with a substring in the stack wins, so the
# narrow ones come first (an fsync under SQLite's commit is SQL's, not the blob's).
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQL statements and commits", ("sqlalchemy", "sqlite3", "psycopg", "/writes.py:")),
    # A thread in fsync waits for the disk: I/O wait, counted apart from CPU below.
    ("fsync (blob and directory; I/O wait)", ("fsync",)),
    ("image decode check", ("ImageFile.py", "/content.py:", "JpegImagePlugin", "PngImagePlugin")),
    ("temp files (mkstemp, open, unlink)", ("mkstemp", "unlink", "Spool.", "scratch")),
    ("AES-GCM sealing", ("envelope.py", "aead")),
    ("metadata stripping", ("/metadata.py:", "/stripping.py:", "/images.py:")),
    ("hashing", ("hashlib", "sha256")),
    ("multipart parsing", ("multipart",)),
    ("token check and signing", ("jwt", "/tokens.py:", "/signing.py:", "/links.py:")),
    ("blob store", ("/local.py:", "/s3.py:", "/blobs.py:")),
    ("event loop, middleware, ASGI", ("uvicorn", "starlette", "fastapi", "asyncio", "anyio")),
)


# With --nonblocking py-spy cannot tell a thread blocked on a lock from one running, so
# stacks that end in a wait are idle: worker threads waiting for work, the group-commit
# writer waiting for callers, requests waiting for its commit.
IDLE_LEAVES = ("Condition.wait (threading.py", "wait (threading.py", "get (queue.py")


def is_idle(stack: str) -> bool:
    leaf = stack.rsplit(";", 1)[-1]
    return leaf.startswith(IDLE_LEAVES)


def bucket_of(stack: str) -> str:
    for name, patterns in BUCKETS:
        if any(pattern in stack for pattern in patterns):
            return name
    return "other"


def summarise(collapsed: Path) -> list[tuple[str, float]]:
    """(bucket, share of busy samples) from py-spy's raw (collapsed) output."""
    counts: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit() and not is_idle(stack):
            counts[bucket_of(stack)] += int(number)
    total = sum(counts.values()) or 1
    return [(name, count / total) for name, count in counts.most_common()]


def cpu_shares(shares: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``shares`` without the I/O wait bucket, renormalised: where the CPU goes."""
    kept = [(name, share) for name, share in shares if "I/O wait" not in name]
    total = sum(share for _, share in kept) or 1.0
    return [(name, share / total) for name, share in kept]


def _requests(side: compare.BerkasSide, content: bytes) -> list[bytes]:
    if WORKLOAD == "token":
        return side.tokens(compare.SIGNED_REQUESTS)
    if WORKLOAD == "requirements":
        return side.requirements(compare.SIGNED_REQUESTS)
    if WORKLOAD == "metadata":
        return side.metadata(content)
    if WORKLOAD != "upload":
        raise SystemExit(f"PROFILE_WORKLOAD={WORKLOAD!r}: upload, token, requirements or metadata")
    return side.upload(content, "p.jpg", "image/jpeg")


def main() -> int:
    label = os.environ.get("PROFILE_LABEL", "latest")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"profile-{label}.txt"
    content = images.jpeg_of_size(BODY_BYTES, seed=1)
    with tempfile.TemporaryDirectory(prefix="berkas-profile-") as scratch:
        server = servers.berkas(Path(scratch) / "berkas")
        try:
            side = compare.BerkasSide(server)
            requests = Path(scratch) / "upload.req"
            wrk.write_requests(requests, _requests(side, content))
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--nonblocking",
                    *(["--gil"] if GIL_ONLY else []),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--duration",
                    str(SECONDS),
                    "--pid",
                    str(server.pid),
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            process = psutil.Process(server.pid)
            results: list[wrk.Result] = []
            load = threading.Thread(
                target=lambda: results.append(
                    wrk.run(
                        server.url,
                        requests,
                        connections=CONNECTIONS,
                        seconds=SECONDS,
                        server_pid=server.pid,
                    )
                )
            )
            cpu_before = process.cpu_times()
            load.start()
            _, errors = spy.communicate(timeout=SECONDS + 120)
            load.join()
            cpu_after = process.cpu_times()
            if spy.returncode != 0:
                print(errors.decode(errors="replace"), file=sys.stderr)
                return 1
        finally:
            server.stop()
    done = results[0]
    user = (cpu_after.user - cpu_before.user) * 1e3 / max(done.requests, 1)
    system = (cpu_after.system - cpu_before.system) * 1e3 / max(done.requests, 1)
    print(
        f"{done.requests} requests ({WORKLOAD}) in {done.seconds:.1f} s ({done.rps:.1f}/s), p50 "
        f"{done.p50_ms:.0f} ms, p99 {done.p99_ms:.0f} ms, {done.non_2xx} non-2xx; server CPU "
        f"per request: {user:.2f} ms user + {system:.2f} ms system (py-spy's samples included)"
    )
    what = f"{BODY_BYTES / 1e3:.0f} KB JPEG" if WORKLOAD == "upload" else WORKLOAD
    print(f"\nbusy samples by bucket ({what}, c={CONNECTIONS}):")
    shares = summarise(out)
    for name, share in shares:
        print(f"  {share:6.1%}  {name}")
    print("\nthe same without I/O wait (CPU only):")
    for name, share in cpu_shares(shares):
        print(f"  {share:6.1%}  {name}")
    print(f"collapsed stacks: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
