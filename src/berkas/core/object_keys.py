"""Object keys (docs/design.md 2.4 layout): which keys a blob store accepts, and the errors every
store raises about them. Shared by the stores, their in-memory twins and link signing."""

from __future__ import annotations

import re

from berkas.core.codes import Code
from berkas.core.errors import Conflict, InvalidRequest, NotFound

MAX_KEY_LENGTH = 1024  # S3's limit, and the width of files.key
_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")


def key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as an object key, or None when it is safe.

    Accepted: 1..1024 characters of ``A-Z a-z 0-9 . _ / -``, ``/``-separated segments that
    are non-empty and do not start with a dot. That rules out absolute paths, ``..``
    traversal (CWE-22), ``.`` and empty segments, and a local store's own ``.tmp`` area.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"must be 1 to {MAX_KEY_LENGTH} characters long"
    if not _KEY_CHARS.fullmatch(key):
        return "may only contain letters, digits, '.', '_', '-' and '/'"
    segments = key.split("/")
    if any(segment == "" for segment in segments):
        return "must not start or end with '/' nor contain '//'"
    if any(segment.startswith(".") for segment in segments):
        return "must not have a segment starting with '.' (such as '.' or '..')"
    return None


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``InvalidRequest``."""
    problem = key_problem(key)
    if problem is not None:
        raise InvalidRequest(f"storage key {key[:80]!r} {problem}.", code=Code.INVALID_KEY)
    return key


def duplicate_key(key: str) -> Conflict:
    """The error for a write to a key that already holds a file."""
    return Conflict(
        f"storage key {key!r} already holds a file; keys are unique per file.",
        code=Code.DUPLICATE_KEY,
    )


def file_not_found(key: str) -> NotFound:
    """The error for a read of a key that holds nothing."""
    return NotFound(f"No stored file under key {key!r}.", code=Code.FILE_NOT_FOUND)
