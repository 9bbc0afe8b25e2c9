"""``make soak``: minutes of mixed partner traffic against a real ``berkas serve`` (issue 9).

Worker threads, each a partner integration with its own keep-alive connection, draw
operations from a shuffled deck weighted like a day of onboarding: tokens, requirements,
uploads of four sizes and kinds, ``GET /file/{id}``, link downloads checked byte for
byte, and bad requests that must be refused with their documented status and the error
envelope (DESIGN 2.5). The pace is fixed (``SOAK_RATE`` requests/s in all), so memory is
compared under a steady load and the machine stays usable for others.

Every ``SOAK_REPORT_SECONDS`` one line (elapsed, requests, server RSS, problems); at the
end the statuses, p50/p99 per operation, RSS first/peak/last and one verdict line. FAIL
on any 5xx, a transport error, a status other than the operation's, an error body that
is not the envelope, a download whose bytes differ, a traceback in the server log, or
RSS growth after warm-up beyond ``SOAK_RSS_GROWTH_MB``; else PASS (exit status 0).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench import images
from bench.wrk import rss_bytes
from tests.support import samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server

REQUIREMENTS = (
    "businessType=PERSONAL&businessLegalEntity=PERSEORANGAN&brandBusinessLine=RETAIL"
    "&businessContactNationality=ID"
)
UNKNOWN_ID = "DCM-0001-0000000000000"
_TOKEN_REFRESH_SECONDS = 30 * 60  # tokens are asked for 60 minutes; renew well before


@dataclass(frozen=True)
class Config:
    seconds: float = 600.0
    rate: float = 30.0  # requests per second, all workers together
    concurrency: int = 8
    report_every: float = 30.0
    # A leak grows with the requests served; allocator arenas, caches and the largest
    # decode buffers settle during warm-up. 48 MB is ~40% of the server's RSS under
    # this load, while 18 000 requests leaking 4 KB each would already exceed it.
    rss_growth_mb: float = 48.0
    seed: int = 9

    @property
    def warmup(self) -> float:
        """The first minute, or the first quarter of a shorter run."""
        return min(60.0, self.seconds / 4)

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(
            seconds=float(env.get("SOAK_SECONDS", cls.seconds)),
            rate=float(env.get("SOAK_RATE", cls.rate)),
            concurrency=int(env.get("SOAK_CONCURRENCY", cls.concurrency)),
            report_every=float(env.get("SOAK_REPORT_SECONDS", cls.report_every)),
            rss_growth_mb=float(env.get("SOAK_RSS_GROWTH_MB", cls.rss_growth_mb)),
        )


@dataclass(frozen=True)
class Upload:
    category: str
    code: str | None
    filename: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def payloads() -> dict[str, Upload]:
    """Photo-like images (bench/images.py) of three sizes and a one-page PDF."""
    return {
        "upload_jpeg_50k": Upload(
            "PHOTO_PROOF", None, "shop.jpg", images.jpeg_of_size(50_000, seed=1)
        ),
        "upload_jpeg_400k": Upload("DOCUMENT", "KTP", "ktp.jpg", images.jpeg_of_size(400_000)),
        "upload_png_3m": Upload("LOGO", None, "logo.png", images.png_of_size(3_000_000, seed=2)),
        "upload_pdf": Upload("DOCUMENT", "NPWP_BADAN", "npwp.pdf", samples.pdf(pages=2)),
    }


@dataclass(frozen=True)
class Stored:
    file_id: str
    link: str
    sha256: str


class Worker:
    """One partner integration: its keep-alive client, a token, a stranger for 404s."""

    def __init__(
        self, url: str, partner: Partner, stranger: Partner, uploaded: deque[Stored]
    ) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.partner = Partner(self.http, partner.client_id, partner.secret_key)
        self.stranger = Partner(self.http, stranger.client_id, stranger.secret_key)
        self.uploaded = uploaded
        self._tokens: dict[str, tuple[str, float]] = {}  # client id -> (token, when)

    def bearer(self, partner: Partner | None = None) -> str:
        """A token of ``partner`` (default: ours), renewed before it could expire."""
        partner = partner or self.partner
        token, when = self._tokens.get(partner.client_id, ("", -_TOKEN_REFRESH_SECONDS))
        if time.monotonic() - when >= _TOKEN_REFRESH_SECONDS:
            answer = partner.get_token()
            answer.raise_for_status()
            token = answer.json()["token"]
            self._tokens[partner.client_id] = (token, time.monotonic())
        return token

    def some_upload(self) -> Stored:
        # Indexing, not iterating: other workers append meanwhile (a bounded deque
        # never shrinks, so the index stays valid).
        return self.uploaded[random.randrange(len(self.uploaded))]  # noqa: S311 - load mix

    def get_file(self, file_id: str, token: str | None = None) -> httpx.Response:
        bearer = {"Authorization": f"Bearer {token or self.bearer()}"}
        return self.http.get(f"{FILE_PATH}/{file_id}", headers=bearer)


# An operation sends its request(s) and returns the answer to judge, plus a problem of
# its own (wrong bytes, say) or None.
Send = Callable[[Worker], tuple[httpx.Response, str | None]]


@dataclass(frozen=True)
class Op:
    name: str
    weight: int  # per 100 requests
    expect: int
    send: Send


def _plain(call: Callable[[Worker], httpx.Response]) -> Send:
    return lambda worker: (call(worker), None)


def _upload(payload: Upload) -> Send:
    def send(worker: Worker) -> tuple[httpx.Response, str | None]:
        answer = worker.partner.upload(
            payload.content,
            category=payload.category,
            code=payload.code,
            filename=payload.filename,
            token=worker.bearer(),
        )
        if answer.status_code != 200:
            return answer, None
        body = answer.json()
        if body.get("sha256") != payload.sha256:
            return answer, f"upload answered sha256 {body.get('sha256')!r}"
        worker.uploaded.append(Stored(body["id"], body["link"], payload.sha256))
        return answer, None

    return send


def _file_meta(worker: Worker) -> tuple[httpx.Response, str | None]:
    stored = worker.some_upload()
    answer = worker.get_file(stored.file_id)
    if answer.status_code == 200 and answer.json().get("sha256") != stored.sha256:
        return answer, f"GET /file/{stored.file_id} names another sha256"
    return answer, None


def _link_fetch(worker: Worker) -> tuple[httpx.Response, str | None]:
    stored = worker.some_upload()
    answer = worker.http.get(stored.link)
    if answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() != stored.sha256:
        return answer, f"the link of {stored.file_id} downloads other bytes"
    return answer, None


def _token_replay(worker: Worker) -> tuple[httpx.Response, str | None]:
    request_id = f"soak-{uuid.uuid4()}"
    first = worker.partner.token_request(
        {"grant_type": "client_credentials"}, request_id=request_id
    )
    again = worker.partner.token_request(
        {"grant_type": "client_credentials"}, request_id=request_id
    )
    if first.status_code != 200:
        return first, None
    if again.status_code == 409 and again.content != first.content:
        return again, "a replayed Request-Id answered another body"
    return again, None


def _tampered_link(worker: Worker) -> httpx.Response:
    link = worker.some_upload().link
    flipped = "A" if link[-1] != "A" else "B"
    return worker.http.get(link[:-1] + flipped)


def _not_an_image(worker: Worker) -> httpx.Response:
    text = b"this is a note, not a photo\n" * 200
    return worker.partner.upload(
        text, category="PHOTO_PROOF", code=None, filename="photo.jpg", token=worker.bearer()
    )


def operations(uploads: dict[str, Upload]) -> list[Op]:
    """The traffic mix: 100 weights, ~30% uploads, ~20% requests that must be refused."""
    small = uploads["upload_jpeg_50k"].content
    ops = [
        Op("token", 8, 200, _plain(lambda w: w.partner.get_token())),
        Op("token_replay", 2, 409, _token_replay),
        Op("requirements", 10, 200, _plain(lambda w: w.partner.signed(
            "GET", FILE_PATH, query=REQUIREMENTS))),
        Op("upload_jpeg_50k", 16, 200, _upload(uploads["upload_jpeg_50k"])),
        Op("upload_jpeg_400k", 8, 200, _upload(uploads["upload_jpeg_400k"])),
        Op("upload_png_3m", 2, 200, _upload(uploads["upload_png_3m"])),
        Op("upload_pdf", 4, 200, _upload(uploads["upload_pdf"])),
        Op("file_meta", 14, 200, _file_meta),
        Op("link_fetch", 14, 200, _link_fetch),
        Op("no_token", 3, 401, _plain(lambda w: w.http.post(
            FILE_PATH, files=[("category", (None, "PHOTO_PROOF", None)),
                              ("file", ("a.jpg", small, "image/jpeg"))]))),
        Op("bad_token", 3, 401, _plain(lambda w: w.partner.upload(
            small, category="PHOTO_PROOF", code=None, token="not-a-jwt"))),  # noqa: S106
        Op("not_an_image", 3, 415, _plain(_not_an_image)),
        Op("bad_category", 2, 400, _plain(lambda w: w.partner.upload(
            small, category="SELFIE", code=None, token=w.bearer()))),
        Op("missing_code", 2, 400, _plain(lambda w: w.partner.upload(
            small, category="DOCUMENT", code=None, token=w.bearer()))),
        Op("unknown_file", 2, 404, _plain(lambda w: w.get_file(UNKNOWN_ID))),
        Op("foreign_file", 2, 404, _plain(lambda w: w.get_file(
            w.some_upload().file_id, token=w.bearer(w.stranger)))),
        Op("bad_signature", 2, 401, _plain(lambda w: Partner(
            w.http, w.partner.client_id, "SK-not-the-secret-0000").get_token())),
        Op("bad_requirements", 2, 400, _plain(lambda w: w.partner.signed(
            "GET", FILE_PATH, query=REQUIREMENTS.replace("PERSONAL", "ALIEN")))),
        Op("tampered_link", 1, 403, _plain(_tampered_link)),
    ]  # fmt: skip
    assert sum(op.weight for op in ops) == 100
    return ops


def envelope_problem(answer: httpx.Response) -> str | None:
    """Why an error answer is not ``{"error": {"code", "message", "type"}}``, or None."""
    shown = answer.text[:160]
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return f"error body is not JSON: {shown!r}"
    try:
        body = answer.json()
    except ValueError:
        return f"error body does not parse: {shown!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if (
        not isinstance(error, dict)
        or set(body) != {"error"}
        or set(error) != {"code", "message", "type"}
        or not all(isinstance(value, str) and value for value in error.values())
    ):
        return f"error body is not the envelope: {shown!r}"
    if "Traceback" in answer.text:
        return "error body carries a traceback"
    return None


def judge(op: Op, answer: httpx.Response, own: str | None) -> str | None:
    """The problem with one answer to ``op``, or None."""
    status = answer.status_code
    if status >= 500:
        return f"{status} from {op.name}: {answer.text[:160]!r}"
    if status != op.expect:
        return f"{op.name} answered {status}, expected {op.expect}: {answer.text[:160]!r}"
    if status >= 400 and status != 409:  # a replay's 409 carries the first body (DESIGN 2.1)
        return envelope_problem(answer)
    return own


@dataclass
class Stats:
    """What the workers saw, shared under a lock."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    # Answers whose status was not the operation's (0: no answer at all), by status.
    unexpected: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: Op, status: int, seconds: float, problem: str | None) -> None:
        name = op.name
        with self.lock:
            if status != op.expect:
                self.unexpected[status] += 1
            self.requests += 1
            self.latencies.setdefault(name, []).append(seconds)
            self.statuses.setdefault(name, Counter())[status] += 1
            if problem is not None:
                self.problem_count += 1
                if len(self.problems) < 20:
                    self.problems.append(problem)

    def by_status(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for counts in self.statuses.values():
            total.update(counts)
        return total


class Deck:
    """Operations dealt from a shuffled deck of 100 weighted cards, reshuffled each round,
    so every run of 100 requests covers the whole mix."""

    def __init__(self, ops: list[Op], seed: int) -> None:
        self._cards = [op for op in ops for _ in range(op.weight)]
        self._rng = random.Random(seed)  # noqa: S311 - reproducible mix, not secrets
        self._next = len(self._cards)
        self._lock = threading.Lock()

    def deal(self) -> Op:
        with self._lock:
            if self._next == len(self._cards):
                self._rng.shuffle(self._cards)
                self._next = 0
            card = self._cards[self._next]
            self._next += 1
            return card


class Pacer:
    """Hands out send times ``1/rate`` apart; a slow server makes the soak closed-loop
    (no burst to catch up)."""

    def __init__(self, rate: float) -> None:
        self._gap = 1 / rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + self._gap
        time.sleep(max(0.0, slot - now))


class RssSeries:
    """The server's RSS (with children) every half second, against traffic time."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        rss = rss_bytes(self._process)
        self.samples.append((time.monotonic() - self.start, rss))
        return rss

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def begin(self) -> None:
        self.sample()
        self._thread.start()

    def end(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def median_between(self, start: float, end: float) -> float:
        window = [rss for t, rss in self.samples if start <= t <= end]
        return statistics.median(window) if window else float(self.samples[-1][1])


@dataclass
class Report:
    config: Config
    stats: Stats
    seconds: float
    rss_first: int
    rss_peak: int
    rss_last: int
    rss_growth: float  # bytes, median of the last stretch minus median at warm-up's end
    tracebacks: int
    reasons: list[str]

    @property
    def passed(self) -> bool:
        return not self.reasons


def verdict(stats: Stats, rss_growth: float, tracebacks: int, config: Config) -> list[str]:
    """Why the soak fails; empty when it passes."""
    reasons = []
    server_errors = sum(n for status, n in stats.by_status().items() if status >= 500)
    if server_errors:
        reasons.append(f"{server_errors} answer(s) with a 5xx status")
    if stats.problem_count - server_errors > 0:
        reasons.append(
            f"{stats.problem_count - server_errors} other problem(s): unexpected status, "
            "broken error envelope, wrong bytes or transport error"
        )
    if tracebacks:
        reasons.append(f"{tracebacks} traceback(s) in the server log")
    if rss_growth > config.rss_growth_mb * 1e6:
        reasons.append(
            f"RSS grew {rss_growth / 1e6:.1f} MB after warm-up "
            f"(bound {config.rss_growth_mb:.0f} MB)"
        )
    return reasons


def _work(worker: Worker, deck: Deck, pacer: Pacer, stats: Stats, deadline: float) -> None:
    try:
        while time.monotonic() < deadline:
            pacer.wait()
            op = deck.deal()
            started = time.perf_counter()
            try:
                answer, own = op.send(worker)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                # No answer, or one a partner could not read (a 200 that is not JSON).
                stats.record(op, 0, time.perf_counter() - started, f"{op.name}: {exc!r}")
                continue
            problem = judge(op, answer, own)
            stats.record(op, answer.status_code, time.perf_counter() - started, problem)
    finally:
        worker.http.close()


def run(config: Config, out: Callable[[str], None] = print) -> Report:
    """Start a server on a fresh data dir, soak it, print the reports, return the verdict."""
    uploads = payloads()
    ops = operations(uploads)
    with tempfile.TemporaryDirectory(prefix="berkas-soak-") as root:
        server = Server(data_dir=Path(root) / "data", env={"BERKAS_DEMO_CLIENT": "false"})
        server.start()
        try:
            return _soak(config, server, ops, uploads, out)
        finally:
            server.stop()


def _soak(
    config: Config,
    server: Server,
    ops: list[Op],
    uploads: dict[str, Upload],
    out: Callable[[str], None],
) -> Report:
    partner, stranger = server.new_partner(), server.new_partner()
    uploaded: deque[Stored] = deque(maxlen=500)
    workers = [Worker(server.url, partner, stranger, uploaded) for _ in range(config.concurrency)]
    # One of each upload first, so downloads and lookups have something to ask for.
    for name, payload in uploads.items():
        err = _upload(payload)(workers[0])[1]
        if err is not None or len(uploaded) == 0:
            raise SystemExit(f"soak: the first {name} failed: {err}")
    stats, deck, pacer = Stats(), Deck(ops, config.seed), Pacer(config.rate)
    out(
        f"soak: {config.seconds:.0f} s of mixed traffic at {config.rate:g} req/s, "
        f"{config.concurrency} workers, berkas serve pid {server.pid} on {server.url}"
    )
    rss = RssSeries(server.pid)
    rss.begin()
    deadline = rss.start + config.seconds
    threads = [
        threading.Thread(target=_work, args=(w, deck, pacer, stats, deadline), daemon=True)
        for w in workers
    ]
    for thread in threads:
        thread.start()
    next_report = rss.start + config.report_every
    while (now := time.monotonic()) < deadline:
        time.sleep(max(0.0, min(next_report, deadline) - now))
        if time.monotonic() >= next_report:
            elapsed = time.monotonic() - rss.start
            out(
                f"[{elapsed:5.0f} s] {stats.requests:6d} requests ({stats.requests / elapsed:5.1f}"
                f"/s)  rss {rss.sample() / 1e6:6.1f} MB  problems {stats.problem_count}"
            )
            next_report += config.report_every
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - rss.start
    rss.end()
    warm = config.warmup
    # Medians over a stretch, not single samples: one 3 MB PNG decode at the wrong
    # moment would otherwise decide the verdict.
    growth = rss.median_between(config.seconds - warm / 2, config.seconds) - rss.median_between(
        warm / 2, warm
    )
    tracebacks = server.output().count("Traceback")
    values = [value for _, value in rss.samples]
    report = Report(
        config=config,
        stats=stats,
        seconds=seconds,
        rss_first=values[0],
        rss_peak=max(values),
        rss_last=values[-1],
        rss_growth=growth,
        tracebacks=tracebacks,
        reasons=verdict(stats, growth, tracebacks, config),
    )
    for line in summary(report, ops):
        out(line)
    return report


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summary(report: Report, ops: list[Op]) -> list[str]:
    """The closing table and the verdict line."""
    stats, config = report.stats, report.config
    by_status = stats.by_status()
    errors = {s: n for s, n in sorted(by_status.items()) if not 200 <= s < 300}
    lines = [
        f"{stats.requests} requests in {report.seconds:.0f} s "
        f"({stats.requests / report.seconds:.1f}/s)",
        "by status: " + ", ".join(f"{s or 'no answer'} {n}" for s, n in sorted(by_status.items())),
        "errors by status: "
        + (", ".join(f"{s or 'no answer'} {n}" for s, n in errors.items()) or "none")
        + "; of them unexpected: "
        + (
            ", ".join(f"{s or 'no answer'} {n}" for s, n in sorted(stats.unexpected.items()))
            or "none"
        ),
        f"{'operation':<18} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}  statuses",
    ]
    for op in ops:
        times = stats.latencies.get(op.name, [])
        if not times:
            lines.append(f"{op.name:<18} {0:>6}")
            continue
        counts = ", ".join(f"{s} {n}" for s, n in sorted(stats.statuses[op.name].items()))
        lines.append(
            f"{op.name:<18} {len(times):>6} {_percentile(times, 0.5) * 1e3:>8.1f} "
            f"{_percentile(times, 0.99) * 1e3:>8.1f}  {counts}"
        )
    lines.append(
        f"RSS MB: first {report.rss_first / 1e6:.1f}, peak {report.rss_peak / 1e6:.1f}, "
        f"last {report.rss_last / 1e6:.1f}; growth after warm-up ({config.warmup:.0f} s) "
        f"{report.rss_growth / 1e6:+.1f} MB (bound {config.rss_growth_mb:.0f} MB)"
    )
    lines += [f"problem: {p}" for p in stats.problems]
    if stats.problem_count > len(stats.problems):
        lines.append(f"... and {stats.problem_count - len(stats.problems)} more problem(s)")
    lines.append("PASS" if report.passed else "FAIL: " + "; ".join(report.reasons))
    return lines


def main(argv: list[str] | None = None) -> int:
    defaults = Config.from_env()
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--report-every", type=float, default=defaults.report_every)
    parser.add_argument("--rss-growth-mb", type=float, default=defaults.rss_growth_mb)
    args = parser.parse_args(argv)
    config = Config(
        seconds=args.seconds,
        rate=args.rate,
        concurrency=args.concurrency,
        report_every=args.report_every,
        rss_growth_mb=args.rss_growth_mb,
    )
    report = run(config, out=lambda line: print(line, flush=True))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
