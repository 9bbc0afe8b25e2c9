"""Every citation in the code resolves inside the repository (STYLE: "The repository explains
itself"): a ``docs/design.md`` section that exists, and no tracker ticket numbers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "berkas"
CITATION = re.compile(r"docs/design\.md\s+(\d+(?:\.\d+)?)")


def _sources() -> list[Path]:
    return [p for p in SRC.rglob("*") if p.suffix in {".py", ".json"} and p.is_file()]


def _sections() -> set[str]:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.?\s", text, flags=re.MULTILINE))


def test_every_design_citation_names_a_section_that_exists() -> None:
    sections = _sections()
    assert {"2.1", "2.4", "5.7", "6.3"} <= sections, sorted(sections)
    cited = {
        (path.relative_to(ROOT).as_posix(), number)
        for path in _sources()
        for number in CITATION.findall(path.read_text(encoding="utf-8"))
    }
    assert len(cited) > 50, "the scan no longer finds the citations"
    missing = sorted((where, number) for where, number in cited if number not in sections)
    assert missing == []


def test_no_code_cites_the_original_contract_or_a_ticket() -> None:
    stale = re.compile(r"\bDESIGN \d|\bissue \d+")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if stale.search(line)
    ]
    assert found == []
