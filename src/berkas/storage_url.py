"""``BERKAS_STORAGE_URL``: which blob store a node uses, parsed once at start
(``Settings.storage``); every choice of store dispatches on the result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from berkas.core.object_keys import key_problem

# S3 bucket names (AWS naming rules): 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Storage:
    """``BERKAS_STORAGE_URL`` parsed once: a local directory (``root``), an S3 bucket and
    key prefix, or memory (tests). Every choice of blob store dispatches on ``scheme``."""

    url: str
    scheme: Literal["file", "s3", "memory"]
    root: Path | None = None
    bucket: str = ""
    prefix: str = ""


def parse_storage(url: str) -> Storage:
    """``url`` as a ``Storage``; ``ValueError`` naming BERKAS_STORAGE_URL and the accepted
    forms for a relative ``file://`` path, a malformed bucket or another scheme."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        # file:///abs/path only: a host part (file://relative/path) would silently drop
        # the first segment and store documents somewhere else entirely.
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ValueError(
                f"BERKAS_STORAGE_URL {url!r} must name an absolute path: file:///abs/path"
            )
        return Storage(url, "file", root=Path(parsed.path))
    if parsed.scheme == "s3":
        bucket, prefix = s3_bucket_and_prefix(url)
        return Storage(url, "s3", bucket=bucket, prefix=prefix)
    if parsed.scheme == "memory":
        return Storage(url, "memory")
    raise ValueError(
        f"BERKAS_STORAGE_URL scheme {parsed.scheme!r} is not supported; "
        "use file:///abs/path or s3://bucket/prefix"
    )


def s3_bucket_and_prefix(url: str) -> tuple[str, str]:
    """The bucket and key prefix of ``s3://bucket/prefix`` (prefix may be empty); raises
    ``ValueError`` naming BERKAS_STORAGE_URL and what is accepted."""
    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if parsed.scheme != "s3" or not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"BERKAS_STORAGE_URL {url!r}: expected s3://bucket/prefix with a bucket name of "
            "3 to 63 lower-case letters, digits, '.' and '-'"
        )
    if parsed.query or parsed.fragment or parsed.params:
        raise ValueError(f"BERKAS_STORAGE_URL {url!r}: no query or fragment is accepted")
    if prefix:
        problem = key_problem(prefix)
        if problem is not None:
            raise ValueError(f"BERKAS_STORAGE_URL {url!r}: the key prefix {problem}")
    return bucket, prefix
