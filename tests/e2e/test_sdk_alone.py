"""berkas installed from the wheel ``make dist`` builds (berkas is on no package index),
each in a clean venv of its own: the wheel alone (the SDK and the partner CLI, none of the
server's libraries) against a real ``berkas serve`` from the dev venv, and a partner flow
between two wheel installs, the SDK alone and ``berkas[server]``, on loopback.

Cost: the wheel-alone venv installs from the package index through pip's cache, the
``[server]`` venv from a wheelhouse gathered as ``make wheelhouse`` does (``--no-index``:
the install that needs no index at all); with a warm cache (CI's machine keeps it)
nothing is downloaded and the module takes about 20 s here, a cold one adds the
downloads (about 40 wheels).
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from berkas.cli.server_extra import HINT
from tests.support import samples
from tests.support.partner import Partner
from tests.support.server import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

# Run by the wheel's venv: the SDK's calls, blocking and async, then what it imported.
SDK_SCRIPT = """
import asyncio, json, sys
import berkas
from berkas.client import AsyncBerkasClient, BerkasClient, Category, DocumentCode

url, client_id, secret, path = sys.argv[1:]
with BerkasClient(url, client_id, secret) as client:
    needed = client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    ktp = needed.find("DOCUMENT", "KTP")
    uploaded = client.upload(Category.DOCUMENT, path, code=DocumentCode.KTP)
    info = client.file(uploaded.id)
    body = client.download(info.link, sha256=info.sha256)

async def requirements_async():
    async with AsyncBerkasClient(url, client_id, secret) as client:
        return await client.requirements("CORPORATE", "PT", "MARKETPLACE", "ID")

corporate = asyncio.run(requirements_async())
print(json.dumps({
    "berkas_file": berkas.__file__,
    "ktp": {"extensions": list(ktp.extensions), "max_size": ktp.max_size},
    "id": uploaded.id,
    "sha256": info.sha256,
    "downloaded": len(body),
    "corporate_sections": sorted(corporate),
    "modules": sorted(sys.modules),
}))
"""


@dataclass(frozen=True)
class Wheel:
    path: Path
    names: frozenset[str]
    requires: tuple[Requirement, ...]

    def added_by(self, name: str) -> set[str]:
        """Distribution names the extra adds (those the base already has excluded)."""
        return {
            r.name.lower()
            for r in self.requires
            if r.marker is not None
            and r.marker.evaluate({"extra": name})
            and not r.marker.evaluate({"extra": ""})
        }


@dataclass(frozen=True)
class Venv:
    root: Path
    env: dict[str, str]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        program, *rest = args
        return subprocess.run(
            [str(self.root / "bin" / program), *rest],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def installed(self) -> set[str]:
        listing = self.run(
            "python",
            "-c",
            "import importlib.metadata as m; "
            "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))",
        )
        assert listing.returncode == 0, listing.stderr
        return {name.lower().replace("_", "-") for name in listing.stdout.split()}


def pip(*args: str) -> None:
    # The dev venv's pip (pip's own cache is reused, so a second run downloads nothing).
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The wheel of this tree, built once a session as ``make dist`` builds it: the
    standard frontend makes the sdist, then the wheel from the sdist (so a file the sdist
    leaves out is missing from the wheel too)."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert len(list(out.glob("berkas-*.tar.gz"))) == 1
    (path,) = out.glob("berkas-*.whl")
    with zipfile.ZipFile(path) as archive:
        names = frozenset(archive.namelist())
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        headers = email.parser.Parser().parsestr(archive.read(metadata).decode())
    requires = tuple(Requirement(line) for line in headers.get_all("Requires-Dist") or [])
    return Wheel(path, names, requires)


def install(wheel: Wheel, where: Path, extras: str = "", *, no_index: bool = False) -> Venv:
    """A clean venv (no system site-packages) with the wheel installed, ``extras`` too.

    ``no_index``: as on a host that reaches no package index (``make wheelhouse``, README
    "Installing"): every dependency's wheel is gathered first, then installed from that
    folder alone."""
    root = where / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)],
        check=True,
        timeout=120,
    )
    # pip --python installs into that venv: no pip of its own to set up, and nothing but
    # berkas and what its dependencies need ends up in it. The wheel's path with the
    # extras, as the README says to install it.
    target = f"{wheel.path}[{extras}]" if extras else str(wheel.path)
    sources: list[str] = []
    if no_index:
        wheelhouse = where / "wheelhouse"
        pip("wheel", "--quiet", "--wheel-dir", str(wheelhouse), target)
        sources = ["--no-index", "--find-links", str(wheelhouse)]
    pip("--python", str(root / "bin" / "python"), "install", "--quiet", *sources, target)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
        and not name.startswith("BERKAS_")
    }
    env["XDG_CONFIG_HOME"] = str(root.parent / "xdg")  # no real profile is read
    return Venv(root, env)


@pytest.fixture(scope="module")
def alone(wheel: Wheel, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel installed without extras, as a partner installs it."""
    return install(wheel, tmp_path_factory.mktemp("alone"))


@pytest.fixture(scope="module")
def with_server(wheel: Wheel, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel with its ``server`` extra, as an operator installs a node on a host with
    no package index: from a wheelhouse."""
    return install(wheel, tmp_path_factory.mktemp("with-server"), "server", no_index=True)


@dataclass
class WheelServer(Server):
    """``berkas serve`` (and the admin CLI) run by a wheel install's ``berkas`` script."""

    venv: Venv | None = None

    def _command(self) -> list[str]:
        assert self.venv is not None
        return [str(self.venv.root / "bin" / "berkas"), "serve", "--port", str(self.port)]

    def _base_env(self) -> dict[str, str]:
        assert self.venv is not None
        return dict(self.venv.env)

    def cli(self, *args: str) -> str:
        assert self.venv is not None
        completed = self.venv.run("berkas", *args, env={"BERKAS_DATA_DIR": str(self.data_dir)})
        assert completed.returncode == 0, completed.stderr
        return completed.stdout


@pytest.fixture(scope="module")
def wheel_server(with_server: Venv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = WheelServer(data_dir=tmp_path_factory.mktemp("wheel-server") / "data", venv=with_server)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(data_dir=tmp_path_factory.mktemp("sdk-alone") / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def partner(server: Server) -> Partner:
    return server.new_partner()


def test_the_wheel_asks_for_httpx_and_click_only_and_ships_py_typed(wheel: Wheel) -> None:
    base = {r.name.lower() for r in wheel.requires if r.marker is None}

    assert base == {"httpx", "anyio", "click"}  # anyio: httpx's own, used by the async SDK
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic", "pydantic"} <= wheel.added_by("server")
    # The backend extras are a server with a driver.
    assert wheel.added_by("server") | {"psycopg"} <= wheel.added_by("postgres")
    assert wheel.added_by("server") | {"boto3"} <= wheel.added_by("s3")
    assert "berkas/py.typed" in wheel.names
    # `berkas samples` copies these: they ship inside the package, no Pillow needed.
    for name in ("ktp-sample.jpg", "ktp-sample.pdf", "selfie-sample.jpg", "shop-sample.jpg"):
        assert f"berkas/cli/sample_documents/{name}" in wheel.names


def test_the_installed_sdk_has_no_server_library(wheel: Wheel, alone: Venv) -> None:
    installed = alone.installed()

    assert {"berkas", "httpx", "click"} <= installed
    assert "fastapi" not in installed
    assert "sqlalchemy" not in installed
    # httpcore is httpx's own dependency, and the server's fetcher asks for it too.
    assert installed & wheel.added_by("server") <= {"httpcore"}
    located = alone.run("python", "-c", "import berkas; print(berkas.__file__)")
    package = Path(located.stdout.strip()).parent
    assert package.is_relative_to(alone.root)
    assert (package / "py.typed").is_file()


@pytest.mark.parametrize(
    "args",
    [("--help",), ("-h",), ("partner", "--help"), ("partner", "upload", "--help")],
    ids=" ".join,
)
def test_help_works_without_the_server(alone: Venv, args: tuple[str, ...]) -> None:
    completed = alone.run("berkas", *args)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Usage: berkas")
    assert completed.stderr == ""


@pytest.mark.parametrize("args", [("serve",), ("clients", "list"), ("db", "migrate")], ids=" ".join)
def test_an_operator_verb_names_the_server_extra(
    alone: Venv, tmp_path: Path, args: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "data"
    completed = alone.run("berkas", *args, "--data-dir", str(data_dir))

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [HINT]
    assert completed.stdout == ""
    assert not data_dir.exists()


def test_the_sdk_alone_talks_to_a_real_server(
    alone: Venv, server: Server, partner: Partner, tmp_path: Path
) -> None:
    document = samples.jpeg(120, 80, seed=3)
    path = tmp_path / "ktp.jpg"
    path.write_bytes(document)
    script = tmp_path / "sdk.py"
    script.write_text(SDK_SCRIPT)

    completed = alone.run(
        "python", str(script), server.url, partner.client_id, partner.secret_key, str(path)
    )

    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert Path(answer["berkas_file"]).is_relative_to(alone.root)
    assert answer["ktp"] == {"extensions": ["PDF", "JPG", "JPEG", "PNG"], "max_size": 15}
    assert answer["id"].startswith("DCM-")
    assert answer["sha256"] == hashlib.sha256(document).hexdigest()
    assert answer["downloaded"] == len(document)
    assert "business" in answer["corporate_sections"]
    server_side = ("berkas.services", "berkas.api", "berkas.adapters", "berkas.config")
    assert [m for m in answer["modules"] if m.startswith(server_side)] == []


def test_the_partner_cli_alone_uploads_to_a_real_server(
    alone: Venv, server: Server, partner: Partner, tmp_path: Path
) -> None:
    logo = samples.png(64, 64, seed=9)
    path = tmp_path / "logo.png"
    path.write_bytes(logo)
    env = {
        "BERKAS_CLIENT_BASE_URL": server.url,
        "BERKAS_CLIENT_ID": partner.client_id,
        "BERKAS_CLIENT_SECRET": partner.secret_key,
    }

    uploaded = alone.run("berkas", "partner", "upload", "--category", "LOGO", str(path), env=env)
    assert uploaded.returncode == 0, uploaded.stderr
    shown = alone.run("berkas", "partner", "file", json.loads(uploaded.stdout)["id"], env=env)

    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["category"] == "LOGO"
    assert info["sha256"] == hashlib.sha256(logo).hexdigest()


def test_help_alone_names_the_commands_that_need_the_server(alone: Venv) -> None:
    completed = alone.run("berkas", "--help")

    assert completed.returncode == 0, completed.stderr
    text = completed.stdout
    partner_part = text.split("Partner commands (the SDK alone):")[1].split("\n\n")[0]
    operator_part = text.split(
        "Operator commands (need the server extra, berkas[server], not installed here):"
    )[1]
    assert [line.split()[0] for line in partner_part.strip().splitlines()] == [
        "partner",
        "samples",
    ]
    assert {"serve", "clients", "keys", "db"} <= {
        line.split()[0] for line in operator_part.strip().splitlines()
    }


def test_a_partner_flow_between_two_wheel_installs(
    alone: Venv, with_server: Venv, wheel_server: Server, tmp_path: Path
) -> None:
    """The operator's node from ``berkas[server]``, the partner's tools from the wheel
    alone: samples written without Pillow, uploaded, read back byte for byte."""
    assert "pillow" not in alone.installed()
    assert {"pillow", "fastapi", "uvicorn"} <= with_server.installed()
    help_there = with_server.run("berkas", "--help")
    assert "Operator commands (need the server extra, berkas[server]):" in help_there.stdout
    # The operator makes the partner's client with the wheel's own admin CLI.
    created = json.loads(wheel_server.cli("clients", "create", "--json"))
    env = {
        "BERKAS_CLIENT_BASE_URL": wheel_server.url,
        "BERKAS_CLIENT_ID": created["client_id"],
        "BERKAS_CLIENT_SECRET": created["secret_key"],
    }

    written = alone.run("berkas", "samples", str(tmp_path / "samples"))
    assert written.returncode == 0, written.stderr
    pdf = tmp_path / "samples" / "ktp-sample.pdf"
    uploaded = alone.run(
        "berkas", "partner", "upload", "--category", "DOCUMENT", "--code", "KTP", str(pdf), env=env
    )
    assert uploaded.returncode == 0, uploaded.stderr
    answer = json.loads(uploaded.stdout)
    copy = tmp_path / "copy.pdf"
    downloaded = alone.run("berkas", "partner", "download", answer["id"], "-o", str(copy), env=env)

    assert downloaded.returncode == 0, downloaded.stderr
    assert answer["content_type"] == "application/pdf"
    assert copy.read_bytes() == pdf.read_bytes()
    # The link the server gave works without credentials, as a reviewer opens it.
    assert httpx.get(answer["link"], timeout=10).content == pdf.read_bytes()
