"""The names the configuration answers to, and the refusal of any other: a ``BERKAS_*``
name no setting reads, a setting an earlier release read, or an unknown category, each
named with the nearest known one; and a refused value said with its setting's name, where
it came from and what is expected."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from berkas.core.catalogue_types import Category
from berkas.core.wire import quoted

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


# What a few patterns of Settings mean, said as a person would (pydantic prints the regex).
_PATTERNS = {
    "^(text|json)$": "text or json",
    "^(critical|error|warning|info|debug)$": "critical, error, warning, info or debug",
    "^(|main|[0-9]{1,5})$": "a port number, or main",
    "^[a-z0-9-]{1,32}$": "1 to 32 lower-case letters, digits or '-'",
    "^[a-z0-9-]{1,64}$": "1 to 64 lower-case letters, digits or '-'",
}
_BOUNDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
# A value of these is a credential: named, never printed.
_SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN")


def explain_invalid(errors: Iterable[Mapping[str, Any]], origin: Callable[[str], str]) -> list[str]:
    """One line per setting pydantic refused: the setting's name, where its value came
    from (``origin(field)``: the environment, a config file, a flag), the value (masked
    for a credential) and what is expected, in place of pydantic's wording. A validator's
    own message, which names the setting already, is kept."""
    by_field: dict[str, list[Mapping[str, Any]]] = {}
    lines: list[str] = []
    for error in errors:
        loc = error.get("loc") or ()
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        if not loc or error.get("type") == "value_error":
            name = PREFIX + str(loc[0]).upper() if loc else ""
            lines.append(message if not name or message.startswith(name) else f"{name}: {message}")
            continue
        by_field.setdefault(str(loc[0]), []).append(error)
    for field, found in by_field.items():
        name = PREFIX + field.upper()
        expected = " or ".join(dict.fromkeys(_expected(error) for error in found))
        value = found[0].get("input")
        shown = "(not shown)" if any(w in name for w in _SECRET_WORDS) else _masked(value)
        lines.append(f"{name} ({origin(field)}) is {shown}: expected {expected}")
    return lines


def _expected(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    for bound, words in _BOUNDS.items():
        if bound in context:
            return f"a number {words} {context[bound]}"
    if kind.startswith("int_"):
        return "a whole number"
    if kind.startswith(("float_", "finite_")):
        return "a finite number"
    if kind.startswith("bool_"):
        return "true or false"
    if kind == "literal_error":
        return str(context.get("expected", "one of the listed values"))
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        return _PATTERNS.get(pattern, f"text matching {pattern}")
    if kind == "string_too_short":
        return f"at least {context.get('min_length')} characters"
    if kind == "string_too_long":
        return f"at most {context.get('max_length')} characters"
    message = str(error.get("msg", "a valid value"))
    return message[:1].lower() + message[1:]


def _masked(value: object) -> str:
    # A URL's user and password (a database URL's) never reach the message.
    text = re.sub(r"//[^/@\s]*@", "//***@", value) if isinstance(value, str) else value
    return quoted(text, limit=80)
