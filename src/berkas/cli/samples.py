"""``berkas samples DIR``: synthetic documents to try uploads with, one per document a
personal retail merchant provides; each is marked SAMPLE and shows no real person.

The files ship inside the package (``sample_documents/``, drawn by
scripts/draw_samples.py), so the command needs no Pillow and works in an SDK-only
install (the wheel without extras).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click

# The package data directory the files ship in (the wheel carries every file under
# src/berkas: tests/e2e/test_sdk_alone.py installs it and runs this command).
FOLDER = "sample_documents"


@dataclass(frozen=True, slots=True)
class Sample:
    """One file the command writes, and the upload fields it is meant for."""

    name: str
    category: str
    code: str | None
    what: str

    def read(self) -> bytes:
        return resources.files("berkas.cli").joinpath(FOLDER, self.name).read_bytes()

    def upload_command(self, program: str, path: str) -> str:
        code = f" --code {self.code}" if self.code else ""
        return f"{program} partner upload --category {self.category}{code} {shlex.quote(path)}"


def _samples() -> tuple[Sample, ...]:
    return (
        Sample("ktp-sample.jpg", "DOCUMENT", "KTP", "ID card (KTP-like), JPEG"),
        Sample("ktp-sample.pdf", "DOCUMENT", "KTP", "the same card scanned, PDF"),
        Sample("selfie-sample.jpg", "OWNER_LIVENESS", None, "owner's photo, JPEG"),
        Sample("shop-sample.jpg", "PHOTO_PROOF", None, "shop front photo, JPEG"),
    )


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def samples(directory: Path) -> None:
    """Write sample documents to DIRECTORY (created if missing) to try uploads with.

    An ID card like Indonesia's KTP (JPEG and PDF), an owner's photo and a shop front:
    synthetic, marked SAMPLE, of no real person. Prints each file and the
    'berkas partner upload' command for it. Files of the same name are replaced.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for sample in _samples():
            data = sample.read()
            (directory / sample.name).write_bytes(data)
            written.append((sample, os.path.join(directory, sample.name), len(data)))
    except OSError as exc:
        raise click.ClickException(f"cannot write to {directory}: {exc.strerror or exc}") from None
    click.echo(
        f"wrote {len(written)} sample documents to {directory} "
        "(synthetic, marked SAMPLE, no real person):"
    )
    width = max(len(path) for _, path, _ in written)
    for sample, path, size in written:
        fields = sample.category + (f"/{sample.code}" if sample.code else "")
        click.echo(f"  {path:<{width}}  {size / 1024:5.1f} KB  {fields:<14}  {sample.what}")
    click.echo(
        "\nupload each (with BERKAS_CLIENT_BASE_URL, BERKAS_CLIENT_ID and "
        "BERKAS_CLIENT_SECRET exported, as berkas serve printed them):"
    )
    program = _program()
    for sample, path, _ in written:
        click.echo(f"  {sample.upload_command(program, path)}")


def _program() -> str:
    # As the serve banner names it: the path it was run by (.venv/bin/berkas), unless
    # that is not the berkas script (python -m berkas.cli.main).
    called = sys.argv[0]
    return called if os.path.basename(called) == "berkas" and "/" in called else "berkas"
