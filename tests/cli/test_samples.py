"""``berkas samples DIR``: the files it writes pass berkas's own content checks, uploaded
with exactly the category and code it prints for each."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from pypdf import PdfReader

from berkas.cli import samples as samples_module
from berkas.cli.main import main
from tests.support.inprocess import InProcess

ID = re.compile(r"^[A-Z]{3}-\d{4}-\d{13}$")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[InProcess]:
    served = InProcess(tmp_path / "data")
    yield served
    served.close()


def printed_uploads(output: str) -> list[list[str]]:
    """The ``berkas partner upload ...`` commands the output suggests, split as a shell would."""
    return [shlex.split(line)[1:] for line in output.splitlines() if " partner upload " in line]


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_every_sample_is_accepted_as_the_upload_it_is_printed_for(
    app: InProcess, tmp_path: Path
) -> None:
    target = tmp_path / "samples"
    result = CliRunner().invoke(main, ["samples", str(target)])
    assert result.exit_code == 0, result.output

    uploads = printed_uploads(result.output)
    written = sorted(p.name for p in target.iterdir())
    assert written == ["ktp-sample.jpg", "ktp-sample.pdf", "selfie-sample.jpg", "shop-sample.jpg"]
    # Each file is listed with its size, and has one upload command naming its path.
    for name in written:
        assert re.search(rf"{re.escape(str(target / name))}\s+\d+\.\d KB", result.output)
    assert sorted(Path(argv[-1]).name for argv in uploads) == written

    partner = app.partner()
    seen = {}
    for argv in uploads:
        assert argv[:2] == ["partner", "upload"]
        category, code, path = option(argv, "--category"), option(argv, "--code"), argv[-1]
        assert category is not None
        answer = partner.upload(
            Path(path).read_bytes(), category=category, code=code, filename=Path(path).name
        )
        assert answer.status_code == 200, (path, answer.text)
        assert ID.match(answer.json()["id"])
        seen[(category, code)] = answer.json()["content_type"]
    # Together they are what a personal retail merchant provides (DOKU's example).
    assert seen == {
        ("DOCUMENT", "KTP"): "application/pdf",  # the PDF came after the JPEG
        ("OWNER_LIVENESS", None): "image/jpeg",
        ("PHOTO_PROOF", None): "image/jpeg",
    }


def test_the_id_card_is_a_card_marked_sample(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["samples", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "ktp-sample.jpg") as card:
        assert card.format == "JPEG"
        assert card.size == (856, 540)  # ID-1 proportions, as a KTP
    pdf = PdfReader(tmp_path / "ktp-sample.pdf")
    assert len(pdf.pages) == 1
    assert "SAMPLE" in str(pdf.metadata.title if pdf.metadata else None)
    assert "no real person" in result.output


def test_run_again_it_replaces_its_own_files(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["samples", str(tmp_path)]).exit_code == 0
    again = runner.invoke(main, ["samples", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert len(list(tmp_path.iterdir())) == 4


def test_a_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["samples", str(blocker / "samples")])
    assert result.exit_code == 1
    assert "cannot write to" in result.output
    assert "Traceback" not in result.output


def test_without_pillow_it_writes_the_shipped_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes ``import PIL`` raise ImportError, as on an SDK-only install
    # (tests/e2e/test_sdk_alone.py runs the command from the installed wheel too).
    monkeypatch.setitem(sys.modules, "PIL", None)
    result = CliRunner().invoke(main, ["samples", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    shipped = Path(samples_module.__file__).parent / samples_module.FOLDER
    for name in ("ktp-sample.jpg", "ktp-sample.pdf", "selfie-sample.jpg", "shop-sample.jpg"):
        assert (tmp_path / "out" / name).read_bytes() == (shipped / name).read_bytes()
