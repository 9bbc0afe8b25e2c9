"""The error-code catalogue: one member per wire code, used by every raise site and
listed by the README exactly (DESIGN 2.5)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from berkas.core import errors
from berkas.core.codes import FETCH_REFUSAL_STATUS, Code, ErrorType, main, markdown

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "berkas"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SNAKE_CASE = re.compile(r"[a-z]+(_[a-z0-9]+)*")
# A code as the README writes it in prose and tables: backticked snake_case.
TICKED = re.compile(r"`([a-z]+(?:_[a-z0-9]+)+)`")


def _families() -> dict[str, type[errors.BerkasError]]:
    found: dict[str, type[errors.BerkasError]] = {}
    todo: list[type[errors.BerkasError]] = [errors.BerkasError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


FAMILIES = _families()


def _raise_sites() -> Iterator[tuple[str, str, ast.expr]]:
    """(where, family, code expression) for every ``Family(..., code=...)`` in src."""
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id not in FAMILIES:
                continue
            for keyword in node.keywords:
                if keyword.arg == "code":
                    where = f"{path.relative_to(SRC)}:{node.lineno}"
                    yield where, node.func.id, keyword.value


def _member(expression: ast.expr) -> Code | None:
    if (
        isinstance(expression, ast.Attribute)
        and isinstance(expression.value, ast.Name)
        and expression.value.id == "Code"
    ):
        return Code[expression.attr]
    return None


def _section(heading: str, text: str = README) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher rank."""
    rank = len(heading.split(" ", maxsplit=1)[0])
    lines = text.splitlines(keepends=True)
    start = lines.index(f"{heading}\n") + 1
    fenced = False
    for end in range(start, len(lines)):
        line = lines[end]
        fenced ^= line.startswith("```")
        hashes = len(line) - len(line.lstrip("#"))
        if not fenced and 0 < hashes <= rank and line[hashes] == " ":
            return "".join(lines[start:end])
    return "".join(lines[start:])


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_every_member_has_a_unique_snake_case_value() -> None:
    # An enum silently makes a member with a repeated value an alias of the first one.
    assert len(Code.__members__) == len(Code)
    for code in Code:
        assert SNAKE_CASE.fullmatch(code.value), code
        assert code.name == code.value.upper()


@pytest.mark.parametrize("code", list(Code), ids=lambda code: code.value)
def test_a_member_knows_its_status_type_and_default_message(code: Code) -> None:
    assert 400 <= code.status <= 599
    assert isinstance(code.error_type, ErrorType)
    assert code.message
    assert code.message == code.message.strip()
    assert code.message[0].isalpha()
    assert code.message.endswith(".")
    assert code.message != code.value


def test_a_member_equals_its_wire_string_and_is_found_by_it() -> None:
    # As an error's ``.code`` is typed: a Code, which callers compare with wire strings.
    raised: Code = errors.PayloadTooLarge("file is too large.").code
    assert raised == "file_too_large"
    assert json.dumps({"code": raised}) == '{"code": "file_too_large"}'
    assert Code("token_expired") is Code.TOKEN_EXPIRED
    assert f"{Code.LINK_EXPIRED}" == "link_expired"


def test_fetch_refusals_answer_422_and_every_other_code_its_own_status() -> None:
    assert Code.FILE_TOO_LARGE.status == 413
    assert Code.FILE_TOO_LARGE.status_for(fetched=True) == FETCH_REFUSAL_STATUS == 422
    assert Code.FILE_TOO_LARGE.status_for(fetched=False) == 413
    for code in Code:
        if code.status == FETCH_REFUSAL_STATUS:
            assert code.fetch_refusal, code
        # A refused fetch keeps the cause's type: the 400/413/415 it borrows from are all
        # invalid_request_error, like 422 itself.
        if code.fetch_refusal:
            assert code.error_type is ErrorType.INVALID_REQUEST, code


def test_each_family_defaults_to_a_member_and_its_message() -> None:
    for cls in FAMILIES.values():
        error = errors.Replayed(b"{}") if cls is errors.Replayed else cls()
        assert error.code is cls.default_code, cls
        assert error.message == cls.default_code.message, cls
    error = errors.NotFound("No file with id 'x'.", code=Code.FILE_NOT_FOUND)
    assert error.code == "file_not_found"
    assert repr(error) == "NotFound(code='file_not_found', message=\"No file with id 'x'.\")"


def test_every_raise_site_passes_a_member_of_its_family() -> None:
    sites = list(_raise_sites())
    assert len(sites) > 50, "the scan no longer finds the raise sites"
    for where, family, expression in sites:
        code = _member(expression)
        if code is None:
            # Only a fetch refusal re-raises another error's code (the fetched body's
            # refusal, or a redirect hop's), and that code is a member already.
            assert family == "FetchRefused", f"{where}: code={ast.unparse(expression)}"
            continue
        cls = FAMILIES[family]
        if cls is errors.FetchRefused:
            assert code.fetch_refusal, f"{where}: {code} is not a fetch refusal"
        else:
            assert code.status == cls.default_code.status, f"{where}: {family}({code})"


def test_every_member_is_answered_somewhere() -> None:
    # A member nothing raises is a README row that promises what the server never says.
    used = "\n".join(
        path.read_text(encoding="utf-8")
        for path in SRC.rglob("*.py")
        if path != SRC / "core" / "codes.py"
    )
    unused = [code for code in Code if not re.search(rf"\bCode\.{code.name}\b", used)]
    assert unused == []


def test_the_readme_table_is_the_generated_one() -> None:
    section = _section("### Every error code")
    begin, end = section.index("<!-- codes:"), section.index("<!-- /codes -->")
    table = section[section.index("\n", begin) + 1 : end]
    assert table == markdown(), "run: python -m berkas.core.codes --markdown"
    listed = [row[0] for row in _table_rows(table)]
    assert listed == [f"`{code.value}`" for code in Code]


def test_main_prints_the_table_and_refuses_to_do_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--markdown"])
    assert capsys.readouterr().out == markdown()
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


def test_the_markdown_command_prints_the_table() -> None:
    command = [sys.executable, "-m", "berkas.core.codes"]
    done = subprocess.run([*command, "--markdown"], capture_output=True, text=True, check=True)
    assert done.stdout == markdown()
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert "--markdown" in refused.stderr


def test_the_fetch_table_lists_exactly_the_fetch_codes() -> None:
    rows = _table_rows(_section("### Error codes", _section("## Fetching by URL")))
    listed = {Code(row[0].strip("`")) for row in rows}
    for code in listed:
        assert code.fetch_refusal, code
    assert {code for code in Code if code.status == FETCH_REFUSAL_STATUS} <= listed


def test_codes_the_readme_names_in_its_error_prose_and_tables_are_members() -> None:
    api = _section("## The API")
    statuses = api[api.index("Every API error is") : api.index("What berkas decides")]
    sdk_table = "".join(
        line
        for line in _section("## Python SDK and partner CLI").splitlines(keepends=True)
        if line.startswith("|")
    )
    fetch = _section("### Error codes", _section("## Fetching by URL"))
    named = {name for text in (statuses, sdk_table, fetch) for name in TICKED.findall(text)}
    # Not codes: the envelope's types, the form field the fetch table is about, and the
    # partner CLI's own codes for what it refuses or meets before any server answers.
    cli_local = {"connection_failed", "credentials_missing", "checksum_mismatch", "output_exists"}
    others = {kind.value for kind in ErrorType} | {"file_url"} | cli_local
    assert {"rate_limited", "token_expired", "dns_failed", "pdf_encrypted"} <= named
    assert named - others <= {code.value for code in Code}


def test_the_readme_status_list_names_every_status() -> None:
    api = _section("## The API")
    paragraph = api[api.index("Every API error is") : api.index("What berkas decides")]
    named = {int(status) for status in re.findall(r"\b[45]\d\d\b", paragraph)}
    assert named == {code.status for code in Code}
