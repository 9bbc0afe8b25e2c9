"""berkas is on no package index, so no operator file tells anyone to install it from one:
every ``pip install`` of berkas in the README, docs/ and deploy/ names the wheel
``make dist`` builds or a checkout, never the bare name (which an index would resolve to
whatever package holds that name there)."""

from __future__ import annotations

import re
from pathlib import Path

from berkas import __version__

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "design.md", *sorted((ROOT / "deploy").iterdir())]
# `pip install berkas`, `pip install 'berkas[server]'`, with or without options between.
FROM_AN_INDEX = re.compile(
    r"pip install\s+(?:--?[\w-]+\s+)*['\"]?berkas(?:\[[\w,]+\])?['\"]?(?![\w./-])"
)
# The README's one warning against it.
WARNING = "never `pip install berkas` from one"


def test_no_document_installs_berkas_from_an_index() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in DOCUMENTS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FROM_AN_INDEX.search(line) and WARNING not in line
    ]
    assert found == []


def test_the_pattern_tells_an_index_install_from_a_wheel_or_checkout() -> None:
    assert FROM_AN_INDEX.search("pip install berkas")
    assert FROM_AN_INDEX.search("pip install --quiet 'berkas[server]'")
    assert not FROM_AN_INDEX.search("pip install './berkas-0.1.0-py3-none-any.whl[server]'")
    assert not FROM_AN_INDEX.search("pip install '/path/to/berkas[server]'")


def test_the_wheel_the_documents_name_is_this_version() -> None:
    named = set(
        re.findall(r"berkas-(\d[\w.]*)-py3-none-any\.whl", (ROOT / "README.md").read_text())
    )
    assert named == {__version__}
