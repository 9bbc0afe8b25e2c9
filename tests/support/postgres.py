"""A throwaway PostgreSQL cluster for integration tests, or the one CI points us at.

``TEST_POSTGRES_URL`` wins when set (it must name a database the tests may wipe).
Otherwise ``initdb`` a cluster in a temporary directory, serve it on a free loopback port
and remove it afterwards. Without PostgreSQL installed the tests skip, except under
``CI=true``, where integration tests must run and so fail instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy

from tests.support.fixture_server import free_port

# Deliberately outside BERKAS_*: the environment is passed on to the `berkas serve`
# processes under test, which refuse any BERKAS_ name that is not one of their settings.
ENV_URL = "TEST_POSTGRES_URL"
_DATABASE = "berkas"
_USER = "postgres"
# Only the throwaway cluster: durability is pointless there and fsync is slow.
_SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: newest Debian cluster, else PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class Cluster:
    """A running throwaway cluster: its URL, and a way to stop and restart it (faults)."""

    url: str
    stop: Callable[[], None]
    start: Callable[[], None]


@contextmanager
def throwaway_cluster(bindir: Path) -> Iterator[str]:
    """Run a fresh cluster from ``bindir``; yield ``postgresql://postgres@127.0.0.1:<port>/berkas``."""
    with controlled_cluster(bindir) as cluster:
        yield cluster.url


@contextmanager
def controlled_cluster(bindir: Path) -> Iterator[Cluster]:
    """Like ``throwaway_cluster``, yielding a ``Cluster`` a test may stop and start."""
    root = Path(tempfile.mkdtemp(prefix="berkas-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    as_owner: list[str] = []
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root; hand the directory to postgres.
        owner = pwd.getpwnam(_USER)
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", _USER, "--"]
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_owner, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}{server_log}"
            )

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            _USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 {_SERVER_OPTIONS}"
        running = [False]

        def start() -> None:
            run(
                str(bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
            )
            running[0] = True

        def stop() -> None:
            if running[0]:
                run(str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data))
                running[0] = False

        start()
        try:
            run(
                str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", _USER, _DATABASE
            )
            yield Cluster(
                url=f"postgresql://{_USER}@127.0.0.1:{port}/{_DATABASE}", stop=stop, start=start
            )
        finally:
            stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(cluster_url: str, name: str) -> str:
    """Create database ``name`` on the cluster (dropping one of that name) and return its URL."""
    admin = sqlalchemy.create_engine(
        cluster_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return cluster_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL database the tests may wipe; skips (or fails in CI) if none."""
    configured = os.environ.get(ENV_URL)
    if configured:
        yield configured
        return
    with throwaway_cluster(required_bindir()) as url:
        yield url


def required_bindir() -> Path:
    """PostgreSQL's server binaries; skips without them, except under ``CI=true`` (fails)."""
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL not installed: apt-get install postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: integration tests must run)")
        pytest.skip(message)
    return bindir
