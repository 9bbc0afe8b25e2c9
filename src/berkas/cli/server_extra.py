"""The line an operator verb prints when the ``server`` extra is not installed, and the
help that says which verbs need it.

berkas is on no package index: it installs from the wheel ``make dist`` builds (README
"Installing"). The wheel alone gives the SDK and the partner verbs; the service's
libraries come with its ``server`` extra. The operator verbs import them when they run
(never at import time, so ``berkas --help`` works either way), and :class:`BerkasGroup`
turns the import that fails into one line instead of a traceback.
"""

from __future__ import annotations

import importlib.util
from typing import IO, Any

import click

from berkas import install_hint

# The line can be pasted beside the wheel the SDK was installed from.
HINT = f"this command needs the server: {install_hint('server')}"

# The top-level modules of the `server` extra's distributions (pyproject.toml), as they
# are imported; tests/cli/test_server_extra.py checks that none is left out. Not httpcore:
# httpx brings it to every install (and imports it only when sending), so its absence is
# no sign of a missing server.
SERVER_MODULES = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "httptools",
        "uvloop",
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "dotenv",
        "multipart",
        "python_multipart",
        "jwt",
        "cryptography",
        "PIL",
        "pypdf",
        "sqlalchemy",
        "alembic",
        "prometheus_client",
        "fastapi_offline",
    }
)


# The verbs of the wheel without extras (the import contract "the SDK and the partner CLI
# install alone" in pyproject.toml holds their modules to it); every other verb is the
# operator's and needs the server.
PARTNER_COMMANDS = frozenset({"partner", "samples"})

# A few libraries only the `server` extra brings: their absence is an SDK-only install.
_SERVER_PROBES = ("fastapi", "uvicorn", "sqlalchemy", "pydantic_settings", "PIL")


def server_installed() -> bool:
    """Whether the ``server`` extra's libraries can be imported here (nothing imported)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in _SERVER_PROBES)
    except (ImportError, ValueError):
        return False


class ServerMissing(click.ClickException):
    """An operator verb run without the ``server`` extra (exit 2, like a usage error)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        # The hint alone: "Error: " before it would only make the line longer.
        click.echo(self.message, err=True, file=file)


class BerkasGroup(click.Group):
    """The top-level group: its help lists the partner verbs apart from the operator verbs
    (which need the server), and a server library missing while a verb runs is the hint."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                listed.append((name, command))
        if not listed:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in listed)
        partner = [(n, c.get_short_help_str(limit)) for n, c in listed if n in PARTNER_COMMANDS]
        operator = [
            (n, c.get_short_help_str(limit)) for n, c in listed if n not in PARTNER_COMMANDS
        ]
        if partner:
            with formatter.section("Partner commands (the SDK alone)"):
                formatter.write_dl(partner)
        if operator:
            where = "" if server_installed() else ", not installed here"
            heading = f"Operator commands (need the server extra, berkas[server]{where})"
            with formatter.section(heading):
                formatter.write_dl(operator)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            # Only the server's own libraries: any other missing module (psycopg, boto3
            # have their own extras and messages) is a different problem, shown as is.
            if (exc.name or "").partition(".")[0] not in SERVER_MODULES:
                raise
            raise ServerMissing(HINT) from None
