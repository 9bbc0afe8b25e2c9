"""``berkas partner ...`` against a real ``berkas serve`` on loopback."""

from __future__ import annotations

import io
import json
import os
import re
import select
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from PIL import Image

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
def env(server: Server, partner: Partner, tmp_path: Path) -> dict[str, str]:
    return {
        "BERKAS_CLIENT_BASE_URL": server.url,
        "BERKAS_CLIENT_ID": partner.client_id,
        "BERKAS_CLIENT_SECRET": partner.secret_key,
        # Profiles of the test's own: never the real ~/.config.
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }


Env = Mapping[str, str | None]


def run(env: Env, *args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(main, ["partner", *args], env=env, input=stdin)


def ok(env: Env, *args: str) -> Any:
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


def test_dry_run_stores_nothing_and_says_what_the_upload_would(
    env: dict[str, str], tmp_path: Path
) -> None:
    photo = tmp_path / "shop.jpg"
    photo.write_bytes(samples.gps_jpeg(seed=77))  # bytes no other test here uploads

    checked = run(env, "upload", "--category", "PHOTO_PROOF", "--dry-run", str(photo))
    assert checked.exit_code == 0, checked.stderr
    answer = json.loads(checked.stdout)
    assert answer["dry_run"] is True
    assert "id" not in answer
    assert (answer["width"], answer["height"]) == (96, 64)
    assert answer["metadata_removed"] == ["COMMENT", "EXIF", "GPS"]

    stored = run(env, "upload", "--category", "PHOTO_PROOF", str(photo))
    assert stored.exit_code == 0, stored.stderr
    uploaded = json.loads(stored.stdout)
    assert (uploaded["sha256"], uploaded["size"]) == (answer["sha256"], answer["size"])
    assert uploaded["metadata_removed"] == answer["metadata_removed"]
    # Nothing was stored by the dry run, so the real upload is no duplicate of it.
    assert uploaded["duplicate_of"] is None
    assert checked.stderr == stored.stderr == ""  # notes are for a terminal only


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


# -- output conventions, profiles, progress, downloads, pre-flight ---------------------


def no_credentials(env: dict[str, str]) -> dict[str, str | None]:
    return {**env, "BERKAS_CLIENT_ID": None, "BERKAS_CLIENT_SECRET": None}


def test_token_raw_prints_only_the_token(env: dict[str, str]) -> None:
    result = run(env, "token", "--raw")
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", result.stdout)


def test_errors_are_json_on_stdout_with_json(env: dict[str, str]) -> None:
    result = run({**env, "BERKAS_CLIENT_SECRET": "SK-wrong"}, "token", "--json")
    assert result.exit_code == 1
    assert result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert list(error) == ["code", "message", "type", "status", "hint"]
    assert (error["code"], error["type"], error["status"]) == (
        "signature_invalid",
        "authentication_error",
        401,
    )
    assert "check BERKAS_CLIENT_SECRET (or the profile)" in error["hint"]


def test_a_wrong_secret_hints_at_the_secret_and_the_data_dir(env: dict[str, str]) -> None:
    result = run({**env, "BERKAS_CLIENT_SECRET": "SK-wrong"}, "token")
    assert result.stderr.splitlines()[1] == (
        "hint: check BERKAS_CLIENT_SECRET (or the profile) and that the server's data dir "
        "is the one the client was created in"
    )


def test_a_base_url_with_a_path_hints_at_the_server_root(env: dict[str, str]) -> None:
    api = f"{env['BERKAS_CLIENT_BASE_URL']}/adv-core-api/partner/v1.0"
    result = run({**env, "BERKAS_CLIENT_BASE_URL": api}, "token")
    assert result.exit_code == 1
    assert "use the server root, e.g. http://host:8000" in result.stderr


def test_choices_take_any_case_and_h_is_help(env: dict[str, str]) -> None:
    printed = ok(
        env,
        "requirements",
        "--business-type",
        "Personal",
        "--legal-entity",
        "perseorangan",
        "--business-line",
        "retail",
        "--nationality",
        "id",
    )
    assert "documents" in printed["business"]["contact"]
    helped = run(env, "upload", "-h")
    assert helped.exit_code == 0
    assert "--max-size" in helped.stdout


def test_configure_then_use_the_profile(
    env: dict[str, str], partner: Partner, tmp_path: Path
) -> None:
    bare = no_credentials(env)
    answers = f"{env['BERKAS_CLIENT_BASE_URL']}\n{partner.client_id}\n{partner.secret_key}\n"
    configured = run(
        {**bare, "BERKAS_CLIENT_BASE_URL": None}, "configure", "--profile", "work", stdin=answers
    )
    assert configured.exit_code == 0, configured.output
    assert partner.secret_key not in configured.output  # typed without echo, never printed
    saved = json.loads(configured.stdout)
    path = tmp_path / "xdg" / "berkas" / "config.toml"
    assert saved == {
        "profile": "work",
        "path": str(path),
        "base_url": env["BERKAS_CLIENT_BASE_URL"],
        "client_id": partner.client_id,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    assert ok(bare, "token", "--profile", "work")["token"]
    # The environment wins over the profile, a flag over both.
    wrong = {**bare, "BERKAS_CLIENT_SECRET": "SK-wrong"}
    assert run(wrong, "token", "--profile", "work").exit_code == 1
    assert ok(wrong, "token", "--profile", "work", "--secret-key", partner.secret_key)["token"]

    unknown = run(bare, "token", "--profile", "nope")
    assert unknown.exit_code == 2
    assert "no profile 'nope'" in unknown.stderr
    assert "berkas partner configure --profile nope" in unknown.stderr


def test_configure_with_flags_keeps_other_profiles(env: dict[str, str], tmp_path: Path) -> None:
    for name in ("one", "two"):
        done = run(
            env,
            "configure",
            "--profile",
            name,
            "--base-url",
            "http://h:8000",
            "--client-id",
            f"BRN-{name}",
            "--secret-key",
            "SK-x",
        )
        assert done.exit_code == 0, done.output
    with (tmp_path / "xdg" / "berkas" / "config.toml").open("rb") as handle:
        assert set(tomllib.load(handle)["profiles"]) == {"one", "two"}


def test_download_to_stdout(env: dict[str, str]) -> None:
    content = samples.png(80, 60, seed=9)
    uploaded = upload_bytes(env, content)
    result = CliRunner().invoke(main, ["partner", "download", uploaded["id"], "-o", "-"], env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == content
    summary = json.loads(result.stderr)
    assert summary == {
        "path": "-",
        "size": len(content),
        "sha256": samples.sha256(content),
        "verified": True,
    }


def test_download_by_id_prints_the_verified_sha256_and_by_link_needs_no_credentials(
    env: dict[str, str], tmp_path: Path
) -> None:
    content = samples.png(70, 50, seed=10)
    uploaded = upload_bytes(env, content)
    by_id = ok(env, "download", uploaded["id"], "-o", str(tmp_path / "a.png"))
    assert (by_id["sha256"], by_id["verified"]) == (samples.sha256(content), True)

    by_link = ok(no_credentials(env), "download", uploaded["link"], "-o", str(tmp_path / "b.png"))
    assert (tmp_path / "b.png").read_bytes() == content
    assert (by_link["sha256"], by_link["verified"]) == (samples.sha256(content), False)
    needs = run(no_credentials(env), "download", uploaded["id"], "-o", str(tmp_path / "c.png"))
    assert needs.exit_code == 2
    assert "--client-id" in needs.stderr


def test_download_never_overwrites_without_force(env: dict[str, str], tmp_path: Path) -> None:
    content = samples.png(50, 50, seed=11)
    uploaded = upload_bytes(env, content)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"precious")

    refused = run(env, "download", uploaded["id"], "-o", str(mine))
    assert refused.exit_code == 3
    assert refused.stderr == f"output_exists: {mine} exists; pass --force to replace it\n"
    assert mine.read_bytes() == b"precious"

    ok(env, "download", uploaded["id"], "-o", str(mine), "--force")
    assert mine.read_bytes() == content


def post_requests(server: Server) -> float:
    """POSTs the server has answered, by its own /metrics."""
    text = httpx.get(f"{server.metrics_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("berkas_http_requests_total{") and 'method="POST"' in line
    )


def test_a_file_over_its_cap_is_refused_before_sending(
    server: Server, env: dict[str, str], tmp_path: Path
) -> None:
    big = tmp_path / "ktp.pdf"
    with big.open("wb") as handle:
        handle.truncate(15 * 1024 * 1024 + 1)  # sparse: one byte over DOCUMENT/KTP's 15 MB
    before = post_requests(server)

    result = run(env, "upload", "--category", "DOCUMENT", "--code", "KTP", str(big))
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "file_too_large: ktp.pdf is 15,728,641 bytes (15.0 MB); DOCUMENT/KTP accepts at "
        "most 15 MB (15,728,640 bytes). Nothing was sent"
    )
    as_json = run(env, "upload", "--category", "LOGO", "--max-size", "1", "--json", str(big))
    assert json.loads(as_json.stdout)["error"]["code"] == "file_too_large"
    assert "LOGO accepts at most 1 MB" in as_json.stdout
    assert post_requests(server) == before


def upload_bytes(env: dict[str, str], content: bytes) -> Any:
    result = run(env, "upload", "--category", "LOGO", "-", stdin=content)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# -- the progress bar, on a real pseudo-terminal ---------------------------------------


def berkas_on(env: dict[str, str], *args: str, tty: bool) -> tuple[int, bytes, bytes]:
    """Run ``berkas partner ARGS`` as a subprocess; stderr a pty (``tty``) or a pipe.

    Returns (exit code, stdout, stderr as the terminal or pipe received it).
    """
    command = [sys.executable, "-m", "berkas.cli.main", "partner", *args]
    full_env = {**os.environ, **env}
    if not tty:
        done = subprocess.run(command, env=full_env, capture_output=True, timeout=60, check=False)
        return done.returncode, done.stdout, done.stderr
    leader, follower = os.openpty()
    child = subprocess.Popen(
        command,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    received = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            if child.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal (it exited)
            break
        if not data:
            break
        received.extend(data)
    out, _ = child.communicate(timeout=30)
    os.close(leader)
    return child.returncode, out, bytes(received)


@pytest.fixture(scope="module")
def photo() -> bytes:
    # Noise does not compress: several 64 KiB chunks, so the bar moves.
    buffer = io.BytesIO()
    Image.effect_noise((700, 700), 90).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_a_progress_bar_on_a_terminal_only(
    env: dict[str, str], tmp_path: Path, photo: bytes
) -> None:
    source = tmp_path / "shop.jpg"
    source.write_bytes(photo)
    upload = ("upload", "--category", "PHOTO_PROOF", str(source))

    code, out, terminal = berkas_on(env, *upload, tty=True)
    assert code == 0, terminal
    uploaded = json.loads(out)
    assert b"upload shop.jpg [" in terminal
    assert b"100%" in terminal
    assert terminal.count(b"\r") >= 2  # redrawn in place, not one line per step

    code, out, piped = berkas_on(env, *upload, tty=False)
    assert code == 0
    assert piped == b""
    assert json.loads(out)["sha256"] == uploaded["sha256"]

    code, _, quiet = berkas_on(env, *upload, "--quiet", tty=True)
    assert code == 0
    assert quiet == b""

    target = tmp_path / "copy.jpg"
    code, out, terminal = berkas_on(env, "download", uploaded["id"], "-o", str(target), tty=True)
    assert code == 0, terminal
    assert b"download copy.jpg [" in terminal
    assert b"100%" in terminal
    assert target.read_bytes() == photo


def test_configure_without_input_names_the_flags(env: dict[str, str]) -> None:
    result = run(env, "configure", "--client-id", "BRN-1", "--json", stdin="")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "configuration_invalid"
    assert "--base-url" in error["message"]


def test_download_to_stdout_keeps_errors_off_stdout(env: dict[str, str]) -> None:
    result = run(env, "download", "DCM-0001-0000000000000", "-o", "-", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(result.stderr)["error"]["code"] == "file_not_found"
