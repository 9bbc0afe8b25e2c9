"""``make bench``: berkas against the careful peer under wrk, and ratios to baselines.

- vs peer (bench/compare.py): the issue 8 workloads and sweeps under wrk, berkas and
  bench/peer pinned to one core, wrk to the other; a table, the budget ratios and
  bench/results/bench.png (throughput and p99 against concurrency and file size).

- upload: median time of a multipart upload to berkas vs the same body POSTed to a bare
  ASGI app that only streams it to a temp file and fsyncs (bench/baseline_app.py), both
  served by uvicorn on loopback in this run.
- memory: berkas' RSS growth across many near-cap uploads, as a ratio to the body size
  (flat memory means the ratio stays far below 1).
- inspection: content.inspect() time vs sha256 over the same bytes (in-process).
- throughput at scale: concurrent uploads per second on a node using a throwaway
  PostgreSQL cluster and Ceph RGW ÷ the same on the embedded default, in this run.

Results print as a table and go to bench/results/latest.json. Nothing here asserts a
time: numbers on a shared machine are for comparison within one run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from bench import compare, images, servers, wrk
from berkas.core import content
from tests.support import samples
from tests.support.fixture_server import free_port
from tests.support.partner import PREFIX
from tests.support.postgres import postgres_url
from tests.support.rgw import throwaway_rgw
from tests.support.server import Server

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))


def _median_seconds(action: object, rounds: int = ROUNDS) -> float:
    assert callable(action)
    action()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _start_baseline() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.post(url, content=b"x", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("baseline server did not start")


def bench_upload(server: Server, body: bytes) -> dict[str, float]:
    partner = server.new_partner()
    token = partner.token
    baseline, baseline_url = _start_baseline()
    try:
        with httpx.Client(timeout=60) as http:
            files: dict[str, tuple[str | None, str | bytes] | tuple[str, bytes, str]] = {
                "category": (None, "PHOTO_PROOF"),
                "file": ("p.jpg", body, "image/jpeg"),
            }
            headers = {"Authorization": f"Bearer {token}"}

            def to_berkas() -> None:
                r = http.post(f"{server.url}{PREFIX}/file", files=files, headers=headers)
                assert r.status_code == 200, r.text

            def to_baseline() -> None:
                r = http.post(baseline_url, files=files)
                assert r.status_code == 200

            berkas_s = _median_seconds(to_berkas)
            baseline_s = _median_seconds(to_baseline)
    finally:
        baseline.terminate()
        baseline.wait()
    return {
        "body_mb": len(body) / 1e6,
        "berkas_median_s": berkas_s,
        "baseline_median_s": baseline_s,
        "ratio": berkas_s / baseline_s,
    }


def bench_memory(server: Server, body: bytes, uploads: int = 10) -> dict[str, float]:
    partner = server.new_partner()
    process = psutil.Process(server.pid)
    partner.upload(samples.jpeg(), category="LOGO", code=None)
    before = process.memory_info().rss
    peak = before
    for _ in range(uploads):
        r = partner.upload(body, category="PHOTO_PROOF", code=None, filename="p.jpg")
        assert r.status_code == 200, r.text
        peak = max(peak, process.memory_info().rss)
    growth = peak - before
    return {
        "body_mb": len(body) / 1e6,
        "uploads": uploads,
        "rss_growth_mb": growth / 1e6,
        "growth_to_body_ratio": growth / len(body),
    }


def bench_inspect(body: bytes) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".jpg") as handle:
        handle.write(body)
        handle.flush()
        path = Path(handle.name)

        def inspect() -> None:
            content.inspect(
                path,
                head=body[: content.SNIFF_BYTES],
                size=len(body),
                allowed={content.Kind.JPEG},
                label="PHOTO_PROOF",
                limits=content.ImageLimits(),
            )

        def digest() -> None:
            hashlib.sha256(path.read_bytes()).hexdigest()

        inspect_s = _median_seconds(inspect)
        sha_s = _median_seconds(digest)
    return {"inspect_median_s": inspect_s, "sha256_median_s": sha_s, "ratio": inspect_s / sha_s}


def _big_jpeg(target_bytes: int) -> bytes:
    """A photo-like JPEG of about ``target_bytes``, all of it image data: berkas refuses
    bytes trailing after the end of the image (polyglots), so no padding."""
    return images.jpeg_of_size(target_bytes, seed=5)


def _uploads_per_second(server: Server, body: bytes, count: int, concurrency: int) -> float:
    token = server.new_partner().token
    headers = {"Authorization": f"Bearer {token}"}
    files: dict[str, tuple[str | None, str | bytes] | tuple[str, bytes, str]] = {
        "category": (None, "PHOTO_PROOF"),
        "file": ("p.jpg", body, "image/jpeg"),
    }
    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(timeout=60, limits=limits) as http:

        def one(_: int) -> None:
            r = http.post(f"{server.url}{PREFIX}/file", files=files, headers=headers)
            assert r.status_code == 200, r.text

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(concurrency)))  # warm-up: connections, pools
            start = time.perf_counter()
            list(pool.map(one, range(count)))
            return count / (time.perf_counter() - start)


def bench_scaled_throughput(embedded: Server, scaled: Server) -> dict[str, float]:
    """Concurrent 200 KB uploads per second on PostgreSQL + Ceph RGW ÷ on the embedded
    default, the two measured in turn, twice, so a passing load hits both alike."""
    body = _big_jpeg(200 * 1024)
    rates: dict[str, list[float]] = {"embedded": [], "scaled": []}
    for _ in range(2):
        for name, server in (("embedded", embedded), ("scaled", scaled)):
            rates[name].append(_uploads_per_second(server, body, count=8 * ROUNDS, concurrency=8))
    embedded_rps, scaled_rps = max(rates["embedded"]), max(rates["scaled"])
    return {
        "embedded_per_s": embedded_rps,
        "postgresql_rgw_per_s": scaled_rps,
        "ratio": scaled_rps / embedded_rps,
    }


def _vs_peer(tmp: Path) -> dict[str, object]:
    wrk.ensure_wrk()
    berkas = servers.berkas(tmp / "berkas-vs-peer")
    peer = servers.Peer(tmp / "peer")
    try:
        peer.start()
        return compare.compare(tmp, berkas, peer)
    finally:
        berkas.stop()
        peer.stop()


def _workers(tmp: Path) -> tuple[list[compare.Row], list[str], dict[str, dict[str, float]]]:
    """200 KB uploads at c=32 against ``berkas serve --workers 1``, then ``--workers 2``,
    neither pinned (wrk stays on its core, so it shares a core with the server): the
    rows, any failures, and each run's SQLite write-lock waits (``lock_waits``). Nothing
    when this berkas has no ``--workers``."""
    if not servers.serve_has_workers():
        print("workers: berkas serve has no --workers; row skipped", flush=True)
        return [], [], {}
    waits: dict[str, dict[str, float]] = {}
    jpeg_200k = images.jpeg_of_size(200_000, seed=1)
    rows: list[compare.Row] = []
    failures: list[str] = []
    print("workers (200 KB JPEG, c=32, unpinned):", flush=True)
    for workers in (1, 2):
        server = servers.berkas(
            tmp / f"berkas-workers-{workers}", pinned=False, args=("--workers", str(workers))
        )
        try:
            side = compare.BerkasSide(server)
            bench = compare.Bench([side], tmp)
            before = _scrape_lock_waits(server, workers)
            row = bench.measure(
                side,
                f"upload 200KB workers {workers}",
                side.upload(jpeg_200k, "p.jpg", "image/jpeg"),
                connections=32,
                body_bytes=len(jpeg_200k),
            )
            rows.append(row)
            failures += bench.failures
            after = _scrape_lock_waits(server, workers)
            waits[str(workers)] = lock_wait_summary(before, after, row)
        finally:
            server.stop()
    return rows, failures, waits


def _scrape_lock_waits(server: Server, workers: int) -> tuple[float, float]:
    """(write transactions, seconds waited for SQLite's write lock) summed over every
    worker's /metrics (worker k on BERKAS_METRICS_PORT + k)."""
    count = seconds = 0.0
    for k in range(workers):
        text = httpx.get(f"http://127.0.0.1:{server.metrics_port + k}/metrics", timeout=10).text
        count += compare.metric_value(text, "berkas_db_write_lock_wait_seconds_count")
        seconds += compare.metric_value(text, "berkas_db_write_lock_wait_seconds_sum")
    return count, seconds


def lock_wait_summary(
    before: tuple[float, float], after: tuple[float, float], row: compare.Row
) -> dict[str, float]:
    """What the write lock cost during one workers run: write transactions (the group
    commits' batches) per upload, the mean wait per transaction, and the waits' sum as a
    share of the run's wall time per worker-second (0.5 with two workers: each worker
    queued half of the run)."""
    transactions, waited = after[0] - before[0], after[1] - before[1]
    seconds = row.requests / row.rps if row.rps else 0.0
    workers = int(row.workload.rsplit(" ", 1)[1])
    return {
        "transactions": transactions,
        "transactions_per_upload": transactions / row.requests if row.requests else 0.0,
        "mean_wait_ms": 1000 * waited / transactions if transactions else 0.0,
        "waited_share": waited / (seconds * workers) if seconds else 0.0,
    }


def workers_ratio(rows: list[compare.Row]) -> dict[str, float]:
    """``uploads 200KB workers 2/1`` from the workers rows, if both are there."""
    by_name = {r.workload: r for r in rows}
    one, two = by_name.get("upload 200KB workers 1"), by_name.get("upload 200KB workers 2")
    if one is None or two is None or not one.rps:
        return {}
    return {compare.WORKERS_RATIO: two.rps / one.rps}


def _add_workers(vs_peer: dict[str, object], tmp: Path) -> None:
    """The workers rows, failures and ratio, added to the vs-peer results."""
    rows, failures, waits = _workers(tmp)
    vs_peer["write_lock"] = waits
    all_rows, all_failures, ratios = vs_peer["rows"], vs_peer["failures"], vs_peer["ratios"]
    assert isinstance(all_rows, list)
    assert isinstance(all_failures, list)
    assert isinstance(ratios, dict)
    all_rows += [dataclasses.asdict(r) for r in rows]
    all_failures += failures
    ratios.update(workers_ratio(rows))


def _print_table(vs_peer: dict[str, object]) -> None:
    rows = compare.rows_from(vs_peer)
    print()
    print(
        f"{'workload':22} {'c':>4} {'side':6} {'KB':>7} {'req/s':>8} {'MB/s':>7}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>6} {'RSS MB':>7} {'ratio':>6}"
    )
    for row in rows:
        ratio = ""
        if row.side == "berkas":
            peer = next(
                (
                    r
                    for r in rows
                    if r.side == "peer"
                    and r.workload == row.workload
                    and r.connections == row.connections
                    and (r.workload != "size sweep jpeg" or r.body_bytes == row.body_bytes)
                ),
                None,
            )
            if peer is not None and peer.rps:
                ratio = f"{row.rps / peer.rps:.2f}"
        print(
            f"{row.workload:22} {row.connections:>4} {row.side:6} {row.body_bytes / 1e3:>7.0f}"
            f" {row.rps:>8.1f} {row.mb_per_s:>7.1f} {row.p50_ms:>8.1f} {row.p99_ms:>8.1f}"
            f" {row.non_2xx + row.socket_errors:>6} {row.peak_rss_mb:>7.0f} {ratio:>6}"
        )
    print("\nratio = berkas req/s / peer req/s at the same workload and concurrency")
    ratios = vs_peer["ratios"]
    assert isinstance(ratios, dict)
    print("\nbudget ratios (reported, not asserted):")
    for name, value in ratios.items():
        print(f"  {name:52} {value:8.3f}")
    waits = vs_peer.get("write_lock")
    if isinstance(waits, dict) and waits:
        print("\nSQLite write lock during the workers rows (berkas_db_write_lock_wait_seconds):")
        for workers, summary in waits.items():
            print(
                f"  workers {workers}: {summary['transactions']:.0f} write transactions "
                f"({summary['transactions_per_upload']:.2f} per upload), "
                f"{summary['mean_wait_ms']:.2f} ms mean wait, "
                f"{100 * summary['waited_share']:.1f}% of each worker's time queued"
            )


def _print_budgets(ratios: dict[str, float]) -> None:
    print("\nbudget (issue 22):")
    print("\n".join(compare.budget_lines(ratios)))
    print("\nbudget (issue 23):")
    print("\n".join(compare.budget_lines(ratios, compare.BUDGET_23)))
    print("the floor (bench/floor_app.py: RS256 signing alone, bare ASGI, same core):")
    print("\n".join(compare.floor_lines(ratios)))


def main() -> None:
    started = time.perf_counter()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        vs_peer = _vs_peer(Path(tmp))
        _add_workers(vs_peer, Path(tmp))
        results["vs_peer"] = vs_peer
        compare.plot(compare.rows_from(vs_peer), out / "bench.png")
        server = Server(data_dir=Path(tmp) / "data", env={"BERKAS_DEMO_CLIENT": "false"})
        server.start()
        try:
            results["upload_5mb"] = bench_upload(server, _big_jpeg(5 * 1024 * 1024))
            results["memory_14mb"] = bench_memory(server, _big_jpeg(14 * 1024 * 1024))
            with postgres_url() as database_url, throwaway_rgw() as rgw, rgw.bucket() as bucket:
                scaled = Server(
                    data_dir=Path(tmp) / "scaled-node",
                    env={
                        "BERKAS_DEMO_CLIENT": "false",
                        "BERKAS_DATABASE_URL": database_url,
                        "BERKAS_STORAGE_URL": f"s3://{bucket}/bench",
                        **rgw.env,
                    },
                )
                scaled.start()
                try:
                    results["throughput_postgresql_rgw"] = bench_scaled_throughput(server, scaled)
                finally:
                    scaled.stop()
        finally:
            server.stop()
    results["inspect_3000x2000_jpeg"] = bench_inspect(samples.jpeg(3000, 2000))
    results["wall_seconds"] = time.perf_counter() - started
    ratios = vs_peer["ratios"]
    scaled_ratio = results.get("throughput_postgresql_rgw")
    assert isinstance(ratios, dict)
    if isinstance(scaled_ratio, dict) and "ratio" in scaled_ratio:
        ratios["postgresql+rgw/embedded"] = scaled_ratio["ratio"]
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    _print_table(vs_peer)
    _print_budgets(ratios)
    print()
    for name, values in results.items():
        if name == "vs_peer" or not isinstance(values, dict):
            continue
        cells = ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
        )
        print(f"{name:28} {cells}")
    print(f"\nwall time {results['wall_seconds']:.0f} s; results in {out}/latest.json, bench.png")
    failures = vs_peer["failures"]
    assert isinstance(failures, list)
    if failures:
        print("\nFAILED (non-2xx or errors):\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
