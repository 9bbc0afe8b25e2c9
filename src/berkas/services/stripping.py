"""The metadata policy as it is applied before bytes are stored: one code path for an
upload and for ``berkas files upgrade --strip`` (core/metadata.py does the stripping)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from berkas.core import content, metadata

# Listed in ``metadata_removed`` when an EXIF orientation was applied by re-encoding: the
# orientation tag went, and the stored bytes are a new encoding of the sent image.
REENCODED = "ORIENTATION"
# Writes a scratch file the caller owns (and removes) with the function it is given.
Derive = Callable[[Callable[[Path], metadata.Stripped]], tuple[Path, metadata.Stripped]]


@dataclass(frozen=True, slots=True)
class StrippedCopy:
    """The document as it will be stored and served: a copy without what ``removed``
    names, its size, hex SHA-256 and (re-inspected when it was turned upright) info."""

    path: Path
    size: int
    sha256: str
    removed: tuple[str, ...]
    info: content.ContentInfo


def strip_for_storage(
    src: Path,
    info: content.ContentInfo,
    *,
    category: str,
    keep_metadata: Collection[str],
    label: str,
    limits: content.ImageLimits,
    derive: Derive,
) -> StrippedCopy | None:
    """``src`` without EXIF, GPS, XMP, IPTC and comments, unless its category keeps them
    (privacy by default, docs/design.md 6.5); None when the stored bytes stay as they are (a PDF,
    a kept category, nothing to remove). ``src`` has passed ``content.inspect``.

    The size cap applies to what the partner sent; a re-encode that applies an EXIF
    orientation may come out a little larger, and is stored all the same.
    """
    if category in keep_metadata or info.kind is content.Kind.PDF:
        return None
    dst, stripped = derive(lambda path: metadata.strip_metadata(src, path, info.kind))
    if not stripped.changed:
        return None
    size, digest, head = digest_file(dst)
    if stripped.orientation_applied:
        # Re-encoded: its dimensions are the turned ones, and it is checked again as any
        # stored image is.
        info = content.inspect(
            dst,
            head=head,
            size=size,
            allowed=frozenset({info.kind}),
            label=label,
            limits=limits,
        )
    removed = stripped.removed
    if stripped.orientation_applied:
        # Said in the answer: the image was re-encoded upright, so its bytes and its
        # sha256 are not the ones the partner sent (README "Privacy by default").
        removed = (*removed, REENCODED)
    return StrippedCopy(dst, size, digest, removed, info)


def digest_file(path: Path) -> tuple[int, str, bytes]:
    """Size, hex SHA-256 and leading bytes of a file."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as reader:
        while piece := reader.read(1 << 16):
            if not head:
                head = piece[: content.SNIFF_BYTES]
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest(), head
