"""The soak (bench/soak.py): its verdict, and a short run against a real server."""

from __future__ import annotations

import httpx
import pytest

from bench import soak

OK = soak.Op("file_meta", 1, 200, lambda worker: (httpx.Response(200), None))
REFUSED = soak.Op("bad_token", 1, 401, lambda worker: (httpx.Response(401), None))
ENVELOPE = {"error": {"code": "token_invalid", "message": "Bad.", "type": "authentication_error"}}


def _verdict(*answers: tuple[soak.Op, httpx.Response], growth_mb: float = 0.0) -> list[str]:
    stats = soak.Stats()
    for op, answer in answers:
        stats.record(op, answer.status_code, 0.01, soak.judge(op, answer, None))
    return soak.verdict(stats, growth_mb * 1e6, 0, soak.Config())


def test_expected_answers_pass() -> None:
    assert _verdict((OK, httpx.Response(200)), (REFUSED, httpx.Response(401, json=ENVELOPE))) == []


@pytest.mark.parametrize(
    ("op", "answer", "reason"),
    [
        (OK, httpx.Response(503, json=ENVELOPE), "5xx"),
        (OK, httpx.Response(404, json=ENVELOPE), "unexpected status"),
        (REFUSED, httpx.Response(401, text="Unauthorized"), "broken error envelope"),
        (REFUSED, httpx.Response(401, json={"detail": "Unauthorized"}), "broken error envelope"),
    ],
)
def test_a_5xx_an_unexpected_status_or_a_bare_error_body_fails(
    op: soak.Op, answer: httpx.Response, reason: str
) -> None:
    reasons = _verdict((OK, httpx.Response(200)), (op, answer))
    assert len(reasons) == 1
    assert reason in reasons[0]


def test_rss_growth_past_the_bound_fails() -> None:
    bound = soak.Config().rss_growth_mb
    assert _verdict((OK, httpx.Response(200)), growth_mb=bound - 1) == []
    (reason,) = _verdict((OK, httpx.Response(200)), growth_mb=bound + 1)
    assert f"bound {bound:.0f} MB" in reason


@pytest.mark.e2e
@pytest.mark.slow
def test_a_short_soak_passes_and_reports_every_operation() -> None:
    lines: list[str] = []

    report = soak.run(soak.Config(seconds=15, report_every=5), out=lines.append)

    assert report.passed, "\n".join(lines)
    assert lines[-1] == "PASS"
    assert sum("rss" in line and line.startswith("[") for line in lines) >= 2, lines
    ops = soak.operations(soak.payloads())
    # The deck deals every operation once per 100 requests.
    assert report.stats.requests >= 100
    for op in ops:
        assert report.stats.statuses[op.name] == {op.expect: len(report.stats.latencies[op.name])}
    assert any(line.startswith("RSS MB: first") for line in lines)
