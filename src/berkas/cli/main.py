"""The ``berkas`` command: serve, clients, keys, secrets, files, audit, db, storage (the
``server`` extra), and the partner verbs (``berkas partner``, the SDK alone)."""

from __future__ import annotations

import sys

import click

from berkas import __version__
from berkas.cli.audit import audit
from berkas.cli.clients import clients
from berkas.cli.db import db, storage
from berkas.cli.files import files
from berkas.cli.keys import keys
from berkas.cli.partner import partner
from berkas.cli.samples import samples
from berkas.cli.secrets import secrets_group
from berkas.cli.serve import serve
from berkas.cli.server_extra import BerkasGroup

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group(cls=BerkasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="berkas")
def main() -> None:
    """berkas: KYC document intake speaking DOKU's Partner file API."""


main.add_command(serve)
for group in (clients, keys, secrets_group, files, audit, db, storage):
    main.add_command(group)
main.add_command(partner)
main.add_command(samples)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
