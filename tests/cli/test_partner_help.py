"""``berkas partner`` help and choice errors speak the values people type: upper-case
codes (KTP, not ktp), and a short hint instead of a 36-code list."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from berkas.cli.main import main
from berkas.cli.partner import partner
from berkas.core.catalogue import DocumentCode


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["partner", *args], env={"COLUMNS": "100"})
    return result.exit_code, result.output


def option_line(help_text: str, option: str) -> str:
    """The option's help entry: its first line and the indented lines under it."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(option + " "))
    end = start + 1
    while end < len(lines) and lines[end].startswith(" " * 10):
        end += 1
    return " ".join(line.strip() for line in lines[start:end])


def test_upload_help_shows_categories_upper_case_and_codes_as_a_hint() -> None:
    code, text = run("upload", "--help")

    assert code == 0
    category = option_line(text, "--category")
    assert "[OWNER_LIVENESS|PHOTO_PROOF|LOGO|DOCUMENT|SERVICE_AGREEMENT|BANK_ACCOUNT]" in category
    codes = option_line(text, "--code")
    assert codes.startswith("--code CODE ")
    assert f"One of {len(DocumentCode)} codes, in any case;" in codes
    assert "'berkas partner requirements' lists which a merchant needs." in codes
    assert len(codes) < 250, codes  # not the 900-character list
    # No case-folded choice list anywhere (click 8.2 shows a case-insensitive one so).
    listed = re.findall(r"\[([^\]]*\|[^\]]*)\]", text)
    assert listed
    assert all(choices == choices.upper() for choices in listed), listed


def test_requirements_help_shows_the_values_as_typed() -> None:
    code, text = run("requirements", "--help")

    assert code == 0
    assert "[PERSONAL|CORPORATE]" in option_line(text, "--business-type")
    assert "|PERSEORANGAN|PP|PT|" in option_line(text, "--legal-entity")


def test_every_choice_of_every_partner_verb_is_shown_upper_case() -> None:
    assert isinstance(partner, click.Group)
    for name, command in partner.commands.items():
        for param in command.params:
            if isinstance(param.type, click.Choice):
                shown = param.type.get_metavar(param, click.Context(command)) or param.metavar
                assert shown is not None, (name, param.name)
                assert shown == shown.upper(), (name, param.name, shown)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("--code", "ktpx"),
            "'ktpx' is not one of the 36 codes. Did you mean KTP? 'berkas partner "
            "requirements' lists which a merchant needs.",
        ),
        (
            ("--code", "zzzz"),
            "'zzzz' is not one of the 36 codes. 'berkas partner requirements' lists",
        ),
    ],
)
def test_a_wrong_code_is_answered_briefly_with_a_guess(args: tuple[str, ...], said: str) -> None:
    code, text = run("upload", "--category", "DOCUMENT", *args, "ktp.jpg")

    assert code == 2
    assert said in " ".join(text.split()), text
    assert "AKTA_PENDIRIAN_PERUSAHAAN" not in text


def test_a_wrong_category_lists_the_six_as_typed() -> None:
    code, text = run("upload", "--category", "lgo", "logo.png")

    assert code == 2
    assert (
        "'lgo' is not one of OWNER_LIVENESS, PHOTO_PROOF, LOGO, DOCUMENT, SERVICE_AGREEMENT, "
        "BANK_ACCOUNT." in " ".join(text.split())
    )
