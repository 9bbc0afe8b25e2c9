"""The names the configuration answers to, and the refusal of any other: a ``BERKAS_*``
name no setting reads, a setting an earlier release read, or an unknown category, each
named with the nearest known one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from berkas.core.catalogue_types import Category

PREFIX = "BERKAS_"
CONFIG_FILE_VARIABLE = "BERKAS_CONFIG_FILE"
# Settings an earlier release read, and what replaced them: named, not just "unknown".
_REPLACED = {
    "BERKAS_REPLAY_RETENTION_HOURS": (
        "replaced: signed Request-Ids are kept as long as a replay can be accepted "
        "(BERKAS_REPLAY_RETENTION_SECONDS, default twice the timestamp window plus a "
        "minute), upload Idempotency-Keys for BERKAS_IDEMPOTENCY_RETENTION_HOURS"
    ),
}
# Read from the environment although they are not settings of the server: the name of the
# config file itself, and what the partner CLI (``berkas partner``, cli/partner.py) takes
# its connection from. The one list of such names; tests/test_config.py checks it against
# every envvar the berkas CLI declares. They are read with exactly this spelling
# (os.environ, click), so only this spelling is allowed.
ENVIRONMENT_ONLY = frozenset(
    {CONFIG_FILE_VARIABLE, "BERKAS_CLIENT_BASE_URL", "BERKAS_CLIENT_ID", "BERKAS_CLIENT_SECRET"}
)


def known_categories(names: Iterable[str], variable: str) -> None:
    """Refuse a category name the catalogue does not have, naming the nearest one: a typo
    (DOCUMENTS=30) must not leave the default in force without a word."""
    known = sorted(category.value for category in Category)
    problems = []
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"{name} is no category ({hint}categories are {', '.join(known)})")
    if problems:
        raise ValueError(f"{variable}: " + "; ".join(problems))


def unknown_names(
    names: Iterable[str], settings: Iterable[str], *, config_file: str | None = None
) -> list[str]:
    """One message for each of ``names`` that nothing reads, naming the closest known name
    (``settings``: the field names of ``Settings``).

    ``names`` come from the environment, where only ``BERKAS_*`` names are ours, or (with
    ``config_file``) are the keys of that file, where every key is ours and only settings
    count: the environment-only names have no effect there.
    """
    fields = {PREFIX + name.upper() for name in settings}
    in_file = config_file is not None
    # Compared without the shared prefix, which would make every name look alike
    # (BERKAS_FOO is not a near miss of BERKAS_PORT).
    known = fields if in_file else fields | ENVIRONMENT_ONLY
    stems = sorted(known_name.removeprefix(PREFIX) for known_name in known)
    problems = []
    for name in sorted(names):
        # pydantic-settings matches setting names case-insensitively (berkas_port sets the
        # port), so the BERKAS_ namespace is case-insensitive here too: a lower-case
        # misspelling is refused like an upper-case one. The environment-only names are
        # read by os.environ and click with exact case, so only that spelling passes.
        upper = name.upper()
        if upper in fields or (not in_file and name in ENVIRONMENT_ONLY):
            continue
        if not in_file and not upper.startswith(PREFIX):
            continue  # someone else's variable
        where = f"{name} (in {config_file})" if in_file else name
        replaced = _REPLACED.get(upper if upper.startswith(PREFIX) else PREFIX + upper)
        if replaced is not None:
            problems.append(f"{where}: {replaced}")
            continue
        if in_file and upper in ENVIRONMENT_ONLY:
            problems.append(f"{where}: read from the environment only, never from this file")
            continue
        # A file key without the prefix ("LINK_SECRET") is matched as if it had it.
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), stems, n=1)
        if not close:
            problems.append(
                f"{where}: unknown setting; see the table in README.md, section Configuration"
            )
            continue
        nearest = PREFIX + close[0]
        if nearest == upper:  # an environment-only name in the wrong case
            problems.append(f"{where}: unknown; did you mean {nearest} (upper case)?")
        else:
            problems.append(f"{where}: unknown; did you mean {nearest}?")
    return problems
