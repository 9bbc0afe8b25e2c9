"""README.md's walkthroughs, run as written against a fresh ``berkas serve``.

The marked shell and Python blocks (``tests/support/readme.py`` says how they are marked)
run in order in one bash session in an empty directory, with the export lines the
server's start-up banner printed, the virtual environment's bin first on PATH, and
``curl`` and ``openssl`` as a reader has them. A README command that breaks fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.readme import Block, Session, blocks, run_blocks
from tests.support.server import Server

README = Path(__file__).resolve().parents[2] / "README.md"
# The sections that walk a reader through: every code block in them is marked, to run
# or to skip with a reason, so none is left out by accident.
WALKTHROUGHS = ("Quickstart", "Walkthrough with curl", "Python SDK and partner CLI")
ID = r"[A-Z]{3}-\d{4}-\d{13}"
EXPORT = re.compile(r"^\s*export ((?:BERKAS_CLIENT_\w+=\S+ ?)+)$", re.MULTILINE)

ALL = blocks(README.read_text())
RUNNABLE = [b for b in ALL if b.runs]
SKIPPED = [b for b in ALL if b.marked and b.skip is not None]


def the_block(containing: str) -> int:
    """The index in RUNNABLE of the one block whose text contains ``containing``."""
    found = [n for n, b in enumerate(RUNNABLE) if containing in b.text]
    assert len(found) == 1, f"{len(found)} runnable README blocks contain {containing!r}"
    return found[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for tool, package in (("curl", "curl"), ("openssl", "openssl")):
        if shutil.which(tool) is None:
            pytest.fail(f"the README's walkthrough needs {tool} (Debian package {package})")
    srv = Server(data_dir=tmp_path_factory.mktemp("readme") / "berkas-data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def banner(server: Server) -> str:
    """The banner's ``export`` lines, verbatim: what a reader pastes."""
    exports = EXPORT.findall(server.output())
    names = {pair.split("=", 1)[0] for line in exports for pair in line.split()}
    assert names == {"BERKAS_CLIENT_BASE_URL", "BERKAS_CLIENT_ID", "BERKAS_CLIENT_SECRET"}, (
        server.output()
    )
    return "\n".join(f"export {line}" for line in exports)


def terminal(root: Path) -> tuple[Path, dict[str, str]]:
    """An empty working directory beside the checkout's virtual environment (as
    ``.venv`` sits beside a clone's README), and a reader's environment."""
    cwd = root / "work"
    cwd.mkdir()
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), f"tests run from a virtual environment, not {venv}"
    (cwd / ".venv").symlink_to(venv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERKAS_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        README_PYTHON=str(venv / "bin" / "python"),
        XDG_CONFIG_HOME=str(root / "config"),  # no profile of the real user's
        HOME=str(root),
    )
    return cwd, env


@pytest.fixture(scope="module")
def session(
    server: Server, banner: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Session, Path]:
    cwd, env = terminal(tmp_path_factory.mktemp("reader"))
    done = run_blocks(RUNNABLE, cwd=cwd, env=env, prelude=banner)
    return done, cwd / "try"  # where the walkthrough works, after its first block


def test_the_banner_the_readme_shows_exports_what_the_server_exports(banner: str) -> None:
    shown = [b.text for b in ALL if b.lang == "text" and "export BERKAS_CLIENT_" in b.text]
    assert len(shown) == 1, "the Quickstart shows the start-up banner once"

    def names(text: str) -> list[str]:
        return [pair.split("=", 1)[0] for line in EXPORT.findall(text) for pair in line.split()]

    assert names(shown[0]) == names(banner)


def test_every_walkthrough_block_is_marked() -> None:
    unmarked = [
        b.where()
        for b in ALL
        if b.section in WALKTHROUGHS and b.lang in {"sh", "bash", "python"} and not b.marked
    ]
    assert not unmarked, "mark each as <!-- readme-test --> or <!-- readme-test: skip (why) -->"
    assert {b.section for b in RUNNABLE} >= set(WALKTHROUGHS) - {"Quickstart"}
    assert any(b.lang == "python" for b in RUNNABLE)


@pytest.mark.parametrize("block", SKIPPED, ids=[b.where() for b in SKIPPED])
def test_skipped_blocks_say_why(block: Block) -> None:
    pytest.skip(f"{block.where()}: {block.skip}")


def test_the_walkthroughs_run_as_written(session: tuple[Session, Path]) -> None:
    done, _ = session
    assert done.returncode == 0, done.report()
    assert len(done.stdout) == len(RUNNABLE)
    for n, err in enumerate(done.stderr):
        assert "Traceback" not in err, f"{RUNNABLE[n].where()}:\n{err}"


def test_the_curl_upload_answers_an_id_and_its_link_gives_the_bytes_back(
    session: tuple[Session, Path],
) -> None:
    done, cwd = session
    assert done.returncode == 0, done.report()
    printed = done.stdout[the_block("-F category=DOCUMENT")]
    answers = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    answer = answers[0]
    assert re.fullmatch(r"DCM-\d{4}-\d{13}", answer["id"])
    assert (answer["category"], answer["code"]) == ("DOCUMENT", "KTP")
    assert "the link gave back the same bytes" in printed
    assert (cwd / "copy.jpg").read_bytes() == (cwd / "samples" / "ktp-sample.jpg").read_bytes()
    # The metadata call prints the same id, with a fresh link.
    metadata = answers[-1]
    assert (len(answers), metadata["id"]) == (2, answer["id"])
    assert metadata["link"] != answer["link"] or metadata["sha256"] == answer["sha256"]


def test_each_requirement_was_uploaded_with_the_fields_the_readme_maps_it_to(
    session: tuple[Session, Path],
) -> None:
    done, _ = session
    assert done.returncode == 0, done.report()
    requirements = json.loads(done.stdout[the_block("businessType=PERSONAL")])
    assert [d["code"] for d in requirements["business"]["contact"]["documents"]] == ["KTP"]
    others = [
        json.loads(line)
        for line in done.stdout[the_block("-F category=OWNER_LIVENESS")].splitlines()
    ]
    assert [(o["category"], o["id"][:3]) for o in others] == [
        ("OWNER_LIVENESS", "CNT"),
        ("PHOTO_PROOF", "DCM"),
    ]


def test_the_samples_command_lists_its_files(session: tuple[Session, Path]) -> None:
    done, cwd = session
    assert done.returncode == 0, done.report()
    printed = done.stdout[the_block("berkas samples samples")]
    for name in ("ktp-sample.jpg", "ktp-sample.pdf", "selfie-sample.jpg", "shop-sample.jpg"):
        assert f"samples/{name}" in printed
        assert (cwd / "samples" / name).stat().st_size > 1000


def test_the_sdk_snippet_uploads_every_requirement(session: tuple[Session, Path]) -> None:
    done, cwd = session
    assert done.returncode == 0, done.report()
    printed = done.stdout[the_block("BerkasClient.from_env()")].splitlines()
    uploads = [line.split() for line in printed if re.search(f"{ID}$", line)]
    assert {(u[1], u[2]) for u in uploads} == {
        ("PHOTO_PROOF", "None"),
        ("DOCUMENT", "KTP"),
        ("OWNER_LIVENESS", "None"),
    }
    assert printed[-1].startswith("400 category_invalid ")
    copies = list(cwd.glob("copy-*.jpg"))
    assert len(copies) == 1
    assert copies[0].name == f"copy-{uploads[-1][-1]}.jpg"


def test_the_partner_cli_block(session: tuple[Session, Path]) -> None:
    done, cwd = session
    assert done.returncode == 0, done.report()
    printed = done.stdout[the_block("berkas partner file")]
    assert (cwd / "ktp.pdf").read_bytes() == (cwd / "samples" / "ktp-sample.pdf").read_bytes()
    assert (cwd / "ktp-again.pdf").read_bytes() == (cwd / "ktp.pdf").read_bytes()
    assert re.search(f'"id": "{ID}"', printed)
    assert printed.strip().splitlines()[-1].count(".") == 2  # token --raw: a JWT alone


def test_a_wrong_secret_shows_the_servers_answer(
    server: Server, banner: str, tmp_path: Path
) -> None:
    # As typed into a terminal (no set -e): the helper and token blocks, a wrong secret.
    cwd, env = terminal(tmp_path)
    start = [RUNNABLE[the_block('BASE="$BERKAS_CLIENT_BASE_URL')]]
    start.append(RUNNABLE[the_block("$BASE/token")])
    prelude = f"{banner}\nexport BERKAS_CLIENT_SECRET=SK-not-the-secret"
    done = run_blocks(start, cwd=cwd, env=env, prelude=prelude, strict=False)
    shown = done.stderr[-1]
    envelope = json.loads(shown.strip().splitlines()[-1])
    assert envelope["error"]["code"] == "signature_invalid", shown
    assert envelope["error"]["type"] == "authentication_error"
    assert "Traceback" not in shown


# -- the runner itself can fail ------------------------------------------------------


def test_a_failing_block_fails_the_session_and_is_named(tmp_path: Path) -> None:
    markdown = (
        "## Steps\n\n<!-- readme-test -->\n```sh\nGREETING=hello\necho one\n```\n\n"
        "<!-- readme-test -->\n```python\nprint('two')\n```\n\n"
        '<!-- readme-test -->\n```sh\necho "$GREETING"\ncurl -sS --fail-with-body '
        "http://127.0.0.1:9/nothing-listens-here\necho never\n```\n\n"
        "<!-- readme-test -->\n```sh\necho not reached\n```\n"
    )
    run = [b for b in blocks(markdown) if b.runs]
    env = {**os.environ, "README_PYTHON": sys.executable}
    done = run_blocks(run, cwd=tmp_path, env=env)
    assert done.returncode != 0
    assert done.failed is run[2]
    assert done.stdout == ["one\n", "two\n", "hello\n"]  # the variable carried over
    assert done.report().startswith("README.md:15 (Steps) failed (exit 7)")


def test_a_failing_python_block_fails_the_session(tmp_path: Path) -> None:
    markdown = "<!-- readme-test -->\n```python\nraise SystemExit('broken')\n```\n"
    env = {**os.environ, "README_PYTHON": sys.executable}
    done = run_blocks(blocks(markdown), cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "broken" in done.stderr[0]


def test_markers() -> None:
    found = blocks(
        "<!-- readme-test: skip (serves forever) -->\n```sh\nmake serve\n```\n"
        "```sh\nunmarked\n```\n<!-- readme-test -->\n```text\noutput\n```\n"
    )
    assert [(b.marked, b.skip, b.runs) for b in found] == [
        (True, "serves forever", False),
        (False, None, False),
        (True, None, False),  # not code
    ]
