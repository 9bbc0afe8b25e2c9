"""``make bench``'s budget lines (issues 22 and 23): which ratios are computed from which
rows, and how a ratio is judged against its bound."""

from __future__ import annotations

from bench.__main__ import lock_wait_summary, workers_ratio
from bench.compare import (
    BUDGET,
    BUDGET_23,
    FLOOR_RATIO,
    WORKERS_RATIO,
    Row,
    budget_lines,
    floor_lines,
    metric_value,
    ratios,
)


def _row(workload: str, side: str, c: int, size: int, rps: float, p99: float) -> Row:
    return Row(
        workload=workload,
        side=side,
        connections=c,
        body_bytes=size,
        requests=100,
        rps=rps,
        mb_per_s=rps * size / 1e6,
        p50_ms=p99 / 2,
        p99_ms=p99,
        non_2xx=0,
        socket_errors=0,
        peak_rss_mb=100.0,
    )


def test_the_50kb_and_9_5mb_rows_come_from_the_size_sweep() -> None:
    rows = [
        # Sizes as the encoder made them: near the 50 KB and 9.5 MB asked for.
        _row("size sweep jpeg", "berkas", 16, 50_713, 900.0, 30.0),
        _row("size sweep jpeg", "peer", 16, 50_713, 450.0, 60.0),
        _row("size sweep jpeg", "berkas", 16, 196_012, 200.0, 100.0),
        _row("size sweep jpeg", "peer", 16, 196_012, 100.0, 100.0),
        _row("size sweep jpeg", "berkas", 16, 9_496_131, 6.0, 3000.0),
        _row("size sweep jpeg", "peer", 16, 9_496_131, 4.0, 2000.0),
        _row("size sweep jpeg", "berkas", 16, 15_000_000, 3.0, 5000.0),  # berkas only
    ]

    got = ratios(rows)

    assert got["throughput 50KB berkas/peer"] == 2.0
    assert got["p99 50KB berkas/peer"] == 0.5
    assert got["throughput 9.5MB berkas/peer"] == 1.5
    assert got["p99 9.5MB berkas/peer"] == 1.5


def test_each_budget_line_says_met_or_missed_against_its_bound() -> None:
    lines = budget_lines(
        {
            "throughput 50KB berkas/peer": 2.0,  # exactly the bound: met
            "throughput 200KB berkas/peer": 1.99,
            "p99 5MB berkas/peer": 1.2,
            "peak RSS 15MB png c=32 berkas MB": 180.0,
        }
    )

    assert len(lines) == len(BUDGET)
    by_name = {line.split()[0] + " " + line.split()[1]: line for line in lines}
    assert by_name["throughput 50KB"].endswith("met")
    assert by_name["throughput 200KB"].endswith("MISSED")
    assert by_name["p99 5MB"].endswith("MISSED")
    assert by_name["peak RSS"].endswith("met")
    assert by_name["throughput 9.5MB"].endswith("not measured")


def test_the_signed_and_read_rows_give_throughput_and_p99_ratios() -> None:
    rows = [
        _row("token", "berkas", 32, 0, 600.0, 40.0),
        _row("token", "peer", 32, 0, 300.0, 80.0),
        _row("healthz", "berkas", 32, 0, 3000.0, 10.0),
        _row("metadata read", "berkas", 32, 0, 900.0, 50.0),
        _row("metadata read", "peer", 32, 0, 1000.0, 40.0),
    ]

    got = ratios(rows)

    assert got["token berkas/peer"] == 2.0
    assert got["p99 token berkas/peer"] == 0.5
    assert got["token/healthz berkas"] == 0.2
    assert got["metadata read berkas/peer"] == 0.9
    assert got["p99 metadata read berkas/peer"] == 1.25
    assert "requirements berkas/peer" not in got


def test_issue_23_lines_say_met_missed_or_not_measured() -> None:
    lines = budget_lines(
        {
            "token berkas/peer": 1.5,  # exactly the bound: met
            "token/healthz berkas": 0.2,
            "metadata read berkas/peer": 1.1,
            "p99 metadata read berkas/peer": 1.25,
            "uploads 200KB workers 2/1": 1.7,
        },
        BUDGET_23,
    )

    assert len(lines) == len(BUDGET_23)
    by_name = {name: line for (name, _, _), line in zip(BUDGET_23, lines, strict=True)}
    assert all(name in line for name, line in by_name.items())
    assert by_name["token berkas/peer"].endswith(" met")
    assert by_name["token/healthz berkas"].endswith("MISSED")
    assert by_name["metadata read berkas/peer"].endswith(" met")
    assert by_name["p99 metadata read berkas/peer"].endswith("MISSED")
    assert by_name["uploads 200KB workers 2/1"].endswith(" met")
    assert by_name["requirements berkas/peer"].endswith("not measured")
    assert by_name["p99 download 5MB berkas/peer"].endswith("not measured")


def test_the_workers_ratio_needs_both_worker_rows() -> None:
    one = _row("upload 200KB workers 1", "berkas", 32, 200_000, 100.0, 400.0)
    two = _row("upload 200KB workers 2", "berkas", 32, 200_000, 170.0, 300.0)

    assert workers_ratio([one, two]) == {WORKERS_RATIO: 1.7}
    assert workers_ratio([one]) == {}
    assert workers_ratio([]) == {}


def test_the_write_lock_cost_comes_from_the_scraped_histograms() -> None:
    exposition = (
        "# TYPE berkas_db_write_lock_wait_seconds histogram\n"
        'berkas_db_write_lock_wait_seconds_bucket{le="+Inf"} 40.0\n'
        "berkas_db_write_lock_wait_seconds_count 40.0\n"
        "berkas_db_write_lock_wait_seconds_sum 0.5\n"
    )
    assert metric_value(exposition, "berkas_db_write_lock_wait_seconds_count") == 40.0
    assert metric_value(exposition, "berkas_db_write_lock_wait_seconds_sum") == 0.5
    assert metric_value(exposition, "berkas_uploads_total") == 0.0

    # Two workers, 100 uploads in 1 s (100/s), 50 transactions that waited 0.4 s in all.
    two = _row("upload 200KB workers 2", "berkas", 32, 200_000, 100.0, 300.0)
    summary = lock_wait_summary((10.0, 0.1), (60.0, 0.5), two)
    assert summary["transactions"] == 50
    assert summary["transactions_per_upload"] == 0.5
    assert abs(summary["mean_wait_ms"] - 8.0) < 1e-9
    assert abs(summary["waited_share"] - 0.2) < 1e-9  # 0.4 s of 2 worker-seconds


def test_the_floor_rows_give_the_ceiling_printed_beside_the_token_budget() -> None:
    rows = [
        _row("token", "peer", 32, 0, 1000.0, 80.0),
        _row("token", "floor", 32, 0, 1600.0, 20.0),
        _row("healthz", "floor", 32, 0, 8000.0, 5.0),
    ]

    got = ratios(rows)

    assert got[FLOOR_RATIO] == 1.6
    assert got["token/healthz floor"] == 0.2
    assert "token berkas/peer" not in got  # the floor is never taken for berkas
    lines = floor_lines(got)
    assert lines[0].split()[:4] == ["token", "floor/peer", "1.600", "(budget"]
    assert lines[0].endswith(">= 1.5)")
    assert "0.200" in lines[1]
    assert lines[1].endswith(">= 0.3)")
    assert floor_lines({})[0].split()[2] == "-"
