"""The line an operator verb prints when the ``server`` extra is not installed.

``pip install berkas`` gives the SDK and the partner verbs; the service's libraries come
with ``pip install 'berkas[server]'``. The operator verbs import them when they run (never
at import time, so ``berkas --help`` works either way), and :class:`BerkasGroup` turns the
import that fails into one line instead of a traceback.
"""

from __future__ import annotations

from typing import IO, Any

import click

HINT = "this command needs the server: pip install 'berkas[server]'"

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


class ServerMissing(click.ClickException):
    """An operator verb run without the ``server`` extra (exit 2, like a usage error)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        # The hint alone: "Error: " before it would only make the line longer.
        click.echo(self.message, err=True, file=file)


class BerkasGroup(click.Group):
    """The top-level group: a server library missing while a verb runs is the hint."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            # Only the server's own libraries: any other missing module (psycopg, boto3
            # have their own extras and messages) is a different problem, shown as is.
            if (exc.name or "").partition(".")[0] not in SERVER_MODULES:
                raise
            raise ServerMissing(HINT) from None
