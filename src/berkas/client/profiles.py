"""Where a partner's connection settings come from: flags, ``BERKAS_CLIENT_*``
environment variables and named profiles in ``$XDG_CONFIG_HOME/berkas/config.toml``.

Shared by ``BerkasClient.from_env`` and the ``berkas partner`` CLI, so both read the same
variables and the same file. The file holds a secret: it is written 0600, atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berkas.client.errors import ConfigurationError

ENV_BASE_URL = "BERKAS_CLIENT_BASE_URL"
ENV_CLIENT_ID = "BERKAS_CLIENT_ID"
ENV_SECRET_KEY = "BERKAS_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
# Set to off (or 0, false, no) to keep ``berkas partner`` from caching its token.
ENV_TOKEN_CACHE = "BERKAS_CLIENT_TOKEN_CACHE"  # noqa: S105 - a variable name, not a secret
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"
KEYS = ("base_url", "client_id", "secret_key")
_ENV = {"base_url": ENV_BASE_URL, "client_id": ENV_CLIENT_ID, "secret_key": ENV_SECRET_KEY}
# Bare TOML keys (TOML 1.0 s"Keys"), so a profile name never needs quoting in the file.
PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Connection:
    """Resolved settings; ``client_id``/``secret_key`` are None when nothing gave them."""

    base_url: str
    client_id: str | None
    secret_key: str | None
    profile: str | None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/berkas/config.toml``, else ``~/.config/berkas/config.toml``.

    The XDG Base Directory spec says a relative ``XDG_CONFIG_HOME`` is to be ignored.
    """
    env = os.environ if env is None else env
    home = env.get("XDG_CONFIG_HOME", "")
    base = Path(home) if home and Path(home).is_absolute() else Path.home() / ".config"
    return base / "berkas" / "config.toml"


def token_cache_path(found: Connection, env: Mapping[str, str] | None = None) -> Path:
    """Where ``berkas partner`` keeps the token for ``found``: beside the config file,
    ``tokens/<profile>-<digest>.json``, the digest of server and Client-Id, so a token is
    only ever offered back to the server and client it was issued to."""
    key = f"{found.base_url.rstrip('/')}\n{found.client_id or ''}".encode()
    digest = hashlib.sha256(key).hexdigest()[:24]
    return config_path(env).parent / "tokens" / f"{found.profile or 'env'}-{digest}.json"


def token_cache_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``BERKAS_CLIENT_TOKEN_CACHE`` says off (off, 0, false, no)."""
    env = os.environ if env is None else env
    return env.get(ENV_TOKEN_CACHE, "").strip().lower() not in ("off", "0", "false", "no")


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """The ``[profiles.NAME]`` tables of the config file ({} when there is no file)."""
    profiles = _read(path).get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigurationError(f"{path}: [profiles.NAME] entries must be tables")
    return profiles


def resolve(
    *,
    flags: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    profile: str | None = None,
    path: Path | None = None,
) -> Connection:
    """Each setting from the first that has it: ``flags`` > environment > profile.

    ``profile`` names a profile that must exist; without it the ``default`` profile is
    used if there is one. ``base_url`` falls back to ``http://127.0.0.1:8000``.
    """
    env = os.environ if env is None else env
    flags = flags or {}
    path = config_path(env) if path is None else path
    profiles = read_profiles(path)
    chosen: dict[str, Any] = {}
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none yet"
            raise ConfigurationError(
                f"no profile {profile!r} in {path} (profiles: {known}); "
                f"create it with: berkas partner configure --profile {profile}"
            )
        chosen = profiles[profile]
    elif DEFAULT_PROFILE in profiles:
        profile, chosen = DEFAULT_PROFILE, profiles[DEFAULT_PROFILE]
    values: dict[str, str | None] = {}
    for key in KEYS:
        value = flags.get(key) or env.get(_ENV[key]) or chosen.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{path}: profiles.{profile}.{key} must be a string")
        values[key] = value or None
    return Connection(
        base_url=values["base_url"] or DEFAULT_BASE_URL,
        client_id=values["client_id"],
        secret_key=values["secret_key"],
        profile=profile,
    )


def save_profile(path: Path, name: str, values: Mapping[str, str]) -> None:
    """Set profile ``name`` to ``values`` in the config file, keeping the other profiles.

    Written to a 0600 temporary file beside it, fsynced and renamed over it, so the
    secret is never readable by others and a crash leaves the old file or the new one.
    Comments in the file are not kept (it is rewritten from its parsed contents).
    """
    if PROFILE_NAME.fullmatch(name) is None:
        raise ConfigurationError(f"profile name {name!r} must be 1-64 letters, digits, '-' or '_'")
    document = _read(path)
    profiles = document.setdefault("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigurationError(f"{path}: 'profiles' must be a table")
    profiles[name] = dict(values)
    text = dump_toml(document)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp: a fresh name, created 0600 (O_EXCL), before any byte is written.
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc}") from None
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


def dump_toml(document: Mapping[str, Any]) -> str:
    """TOML for nested tables of strings, integers, floats and booleans (all this file
    holds); anything else raises ``ConfigurationError`` rather than being lost."""
    lines: list[str] = []
    _dump_table(document, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.extend(["", f"[{'.'.join(_key(p) for p in path)}]"])
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value, (*path, key))}")
    for key, value in tables.items():
        _dump_table(value, (*path, key), lines)


def _key(key: str) -> str:
    return key if PROFILE_NAME.fullmatch(key) else _string(key)


def _value(value: Any, path: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    raise ConfigurationError(
        f"cannot rewrite {'.'.join(path)} ({type(value).__name__}); edit the file by hand"
    )


def _string(text: str) -> str:
    # A TOML basic string: escape the quote, the backslash and control characters
    # (TOML 1.0 s"String"); everything else is written as UTF-8.
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
