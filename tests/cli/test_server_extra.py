"""``berkas`` without the ``server`` extra, simulated in the dev venv by hiding its libraries.

The partner verbs and every ``--help`` work; an operator verb says, in one line, which
extra to install. tests/e2e/test_sdk_alone.py checks the same on a real wheel install.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from berkas.cli.main import main
from berkas.cli.partner import partner
from berkas.cli.server_extra import HINT, SERVER_MODULES

# Runs the CLI with the server's libraries unimportable, as after `pip install berkas`,
# then writes down which berkas modules it loaded.
HIDDEN = """
import importlib.abc, os, sys

HIDDEN = set(os.environ["HIDE_MODULES"].split(","))

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
try:
    from berkas.cli.main import main
    sys.argv[0] = "berkas"
    main()
finally:
    with open(os.environ["LOADED_TO"], "w") as loaded:
        loaded.write("\\n".join(sorted(sys.modules)))
"""

SERVER_PACKAGES = (
    "berkas.services",
    "berkas.adapters",
    "berkas.api",
    "berkas.wiring",
    "berkas.config",
)


def without_server(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    loaded_to = tmp_path / "loaded.txt"
    env = {
        **os.environ,
        "HIDE_MODULES": ",".join(sorted(SERVER_MODULES)),
        "LOADED_TO": str(loaded_to),
        "BERKAS_DATA_DIR": str(tmp_path / "data"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", HIDDEN, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return completed, set(loaded_to.read_text().split())


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("-h",),
        ("--version",),
        ("serve", "--help"),
        ("partner", "--help"),
        *(("partner", verb, "--help") for verb in sorted(partner.commands)),
    ],
    ids=" ".join,
)
def test_help_and_partner_verbs_need_no_server(tmp_path: Path, args: tuple[str, ...]) -> None:
    completed, loaded = without_server(tmp_path, *args)

    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout.strip()
    assert {name for name in loaded if name.startswith(SERVER_PACKAGES)} == set()


def help_sections(text: str) -> dict[str, list[str]]:
    """``berkas --help``'s command sections: heading -> the command names under it."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            sections[current] = []
        elif current is not None and line.startswith("  ") and line.strip():
            sections[current].append(line.split()[0])
    return sections


def test_help_without_the_server_says_which_commands_need_it(tmp_path: Path) -> None:
    completed, _ = without_server(tmp_path, "--help")
    sections = help_sections(completed.stdout)

    assert sections["Partner commands (the SDK alone)"] == ["partner", "samples"]
    operator = sections[
        "Operator commands (need the server extra, berkas[server], not installed here)"
    ]
    assert {"serve", "clients", "keys", "db", "files"} <= set(operator)
    # Every command is listed once, in one of the two sections.
    assert sorted(sections["Partner commands (the SDK alone)"] + operator) == sorted(main.commands)


def test_help_with_the_server_lists_the_same_sections(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    sections = help_sections(completed.stdout)

    assert sections["Partner commands (the SDK alone)"] == ["partner", "samples"]
    assert "serve" in sections["Operator commands (need the server extra, berkas[server])"]


def test_a_partner_verb_sends_without_the_server(tmp_path: Path) -> None:
    # Nothing listens on port 9: the request went out through httpx (and its httpcore),
    # and failed as a partner's network failure does, not as a missing server.
    completed, loaded = without_server(
        tmp_path,
        "partner",
        "token",
        "--base-url",
        "http://127.0.0.1:9",
        "--client-id",
        "BRN-0001-10791114622547",
        "--secret-key",
        "SK-selftest-0000",
    )

    assert completed.returncode == 1, completed.stderr
    assert completed.stderr.startswith("connection_failed: ")
    assert "Traceback" not in completed.stderr
    assert "httpcore" in loaded
    assert {name for name in loaded if name.startswith(SERVER_PACKAGES)} == set()


@pytest.mark.parametrize(
    "args",
    [
        ("serve",),
        ("clients", "create"),
        ("clients", "list", "--json"),
        ("keys", "rotate"),
        ("keys", "list"),
        ("secrets", "status"),
        ("db", "migrate"),
        ("storage", "init"),
    ],
    ids=" ".join,
)
def test_an_operator_verb_without_the_server_says_which_extra(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    completed, _ = without_server(tmp_path, *args)

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [HINT]
    assert completed.stdout == ""
    assert not (tmp_path / "data").exists()


def test_the_hint_covers_every_library_of_the_server_extra() -> None:
    """SERVER_MODULES names what each `server` requirement installs for import."""
    requirements = [Requirement(line) for line in importlib.metadata.requires("berkas") or []]
    server = {
        normal(r.name)
        for r in requirements
        if r.marker is not None
        and r.marker.evaluate({"extra": "server"})
        and not r.marker.evaluate({"extra": ""})
    }
    assert {"fastapi", "sqlalchemy", "uvicorn"} <= server
    # What the base install brings anyway (httpx's httpcore) is not the server's to hint at.
    server -= installed_with({r.name for r in requirements if r.marker is None})
    provides: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            provides.setdefault(normal(distribution), set()).add(module)
    for name in server:
        modules = {
            module
            for module in provides[normal(name)]
            if not module.startswith("_") and module.isidentifier()
        }
        assert modules, name
        assert modules <= SERVER_MODULES, (name, modules - SERVER_MODULES)


def installed_with(names: set[str]) -> set[str]:
    """``names`` and everything they require, as installed here."""
    seen: set[str] = set()
    todo = [normal(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normal(requirement.name))
    return seen


def normal(name: str) -> str:
    return name.lower().replace("_", "-")


def test_the_sdk_alone_declares_only_httpx_and_click() -> None:
    requirements = [Requirement(line) for line in importlib.metadata.requires("berkas") or []]
    base = {r.name for r in requirements if r.marker is None}

    assert base == {"httpx", "click", "anyio"}
