"""``berkas partner ...`` against a real ``berkas serve`` on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from berkas.cli.main import main
from tests.support import samples
from tests.support.fixture_server import FixtureServer, free_port, send
from tests.support.partner import Partner
from tests.support.server import Server

LOGO = samples.png(60, 40, seed=5)


@pytest.fixture(scope="module")
def origin() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as fixture:
        fixture.route("/logo.png", send(200, LOGO, content_type="image/png"))
        fixture.route("/missing", send(404, b"gone", content_type="text/plain"))
        yield fixture


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, origin: FixtureServer) -> Iterator[Server]:
    srv = Server(
        data_dir=tmp_path_factory.mktemp("cli") / "data",
        # The origin fixture is on loopback: trust exactly that network and port.
        env={
            "BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
            "BERKAS_FETCH_ALLOW_PORTS": str(origin.port),
        },
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def partner(server: Server) -> Partner:
    return server.new_partner()


@pytest.fixture
def env(server: Server, partner: Partner) -> dict[str, str]:
    return {
        "BERKAS_CLIENT_BASE_URL": server.url,
        "BERKAS_CLIENT_ID": partner.client_id,
        "BERKAS_CLIENT_SECRET": partner.secret_key,
    }


def run(env: dict[str, str], *args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["partner", *args], env=env, input=stdin)


def ok(env: dict[str, str], *args: str) -> Any:
    result = run(env, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_token_prints_the_token_and_its_expiry(env: dict[str, str]) -> None:
    printed = ok(env, "token", "--valid-time", "30")
    assert printed["token"].count(".") == 2
    assert printed["expires_at"].endswith("Z")
    assert set(printed) == {"token", "issued_at", "expires_at"}


def test_requirements(env: dict[str, str]) -> None:
    printed = ok(
        env,
        "requirements",
        "--business-type",
        "personal",
        "--legal-entity",
        "PERSEORANGAN",
        "--business-line",
        "RETAIL",
        "--nationality",
        "ID",
    )
    assert [d["code"] for d in printed["business"]["contact"]["documents"]] == ["KTP"]


def test_upload_a_file_then_look_it_up_and_download_it(env: dict[str, str], tmp_path: Path) -> None:
    content = samples.pdf()
    source = tmp_path / "ktp.pdf"
    source.write_bytes(content)

    uploaded = ok(env, "upload", "--category", "DOCUMENT", "--code", "KTP", str(source))
    assert uploaded["sha256"] == samples.sha256(content)
    assert (uploaded["category"], uploaded["code"]) == ("DOCUMENT", "KTP")

    info = ok(env, "file", uploaded["id"])
    assert info["id"] == uploaded["id"]
    assert info["content_type"] == "application/pdf"

    saved = ok(env, "download", uploaded["id"], "-o", str(tmp_path / "copy.pdf"))
    assert saved["size"] == len(content)
    assert (tmp_path / "copy.pdf").read_bytes() == content


def test_upload_from_a_pipe(server: Server, env: dict[str, str]) -> None:
    # A real pipe, not CliRunner's in-memory stdin: its size is unknown up front, so the
    # body goes chunked over the real connection.
    content = samples.jpeg(200, 150, seed=3)
    completed = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "partner", "upload", "--category", "LOGO", "-"],
        input=content,
        env={**os.environ, **env, "BERKAS_DATA_DIR": str(server.data_dir)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert json.loads(completed.stdout)["sha256"] == samples.sha256(content)


def test_upload_by_url(env: dict[str, str], origin: FixtureServer) -> None:
    url = f"http://127.0.0.1:{origin.port}/logo.png"
    uploaded = ok(env, "upload", "--category", "logo", "--url", url)
    assert uploaded["sha256"] == samples.sha256(LOGO)


def test_a_failed_fetch_prints_the_servers_code(env: dict[str, str], origin: FixtureServer) -> None:
    url = f"http://127.0.0.1:{origin.port}/missing"
    result = run(env, "upload", "--category", "LOGO", "--url", url)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.fullmatch(r"[a-z_]+: \S.*\n", result.stderr), result.stderr
    assert "404" in result.stderr


def test_upload_needs_exactly_one_source(env: dict[str, str], tmp_path: Path) -> None:
    neither = run(env, "upload", "--category", "LOGO")
    assert neither.exit_code == 2
    assert "exactly one of FILE and --url" in neither.stderr


def test_a_wrong_secret_prints_code_and_message(env: dict[str, str]) -> None:
    result = run({**env, "BERKAS_CLIENT_SECRET": "SK-wrong"}, "token")
    assert result.exit_code == 1
    assert result.stderr.startswith("signature_invalid: Client-Id is unknown or Signature")
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_an_unknown_file_is_not_found(env: dict[str, str]) -> None:
    result = run(env, "file", "DCM-0001-0000000000000")
    assert result.exit_code == 1
    assert result.stderr.startswith("file_not_found: ")


def test_flags_override_the_environment(env: dict[str, str], partner: Partner) -> None:
    printed = ok(
        {**env, "BERKAS_CLIENT_SECRET": "SK-wrong"}, "token", "--secret-key", partner.secret_key
    )
    assert printed["token"]


def test_an_unreachable_server_is_a_one_line_error(env: dict[str, str]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens
    result = run({**env, "BERKAS_CLIENT_BASE_URL": nobody}, "token", "--timeout", "2")
    assert result.exit_code == 1
    assert result.stderr.startswith("connection_failed: ")
    assert "Traceback" not in result.stderr


def test_missing_credentials_are_named(env: dict[str, str]) -> None:
    result = run({"BERKAS_CLIENT_BASE_URL": env["BERKAS_CLIENT_BASE_URL"]}, "token")
    assert result.exit_code == 2
    assert "--client-id" in result.stderr
