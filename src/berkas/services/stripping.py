"""The metadata policy as it is applied before bytes are stored: one policy for an upload
(``stored_body``, which also seals, in the same pass) and for ``berkas files upgrade
--strip`` (``strip_for_storage``); core/metadata.py does the stripping."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from berkas.core import content, envelope, metadata
from berkas.services.upload_types import Body

_T = TypeVar("_T")

# Listed in ``metadata_removed`` when an EXIF orientation was applied by re-encoding: the
# orientation tag went, and the stored bytes are a new encoding of the sent image.
REENCODED = "ORIENTATION"


class Deriver(Protocol):
    """Makes a scratch file the caller owns (and removes), filled by ``write``."""

    def __call__(self, write: Callable[[Path], _T]) -> tuple[Path, _T]: ...


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
    if stripped.orientation_applied:
        size, digest, info = _reinspected(dst, info.kind, label, limits)
    else:
        size, digest, _ = digest_file(dst)
    removed = stripped.removed
    if stripped.orientation_applied:
        # Said in the answer: the image was re-encoded upright, so its bytes and its
        # sha256 are not the ones the partner sent (README "Privacy by default").
        removed = (*removed, REENCODED)
    return StrippedCopy(dst, size, digest, removed, info)


def _reinspected(
    path: Path, kind: content.Kind, label: str, limits: content.ImageLimits
) -> tuple[int, str, content.ContentInfo]:
    """Size, hex SHA-256 and inspection of an image re-encoded upright: its dimensions are
    the turned ones, and it is checked again as any stored image is."""
    size, digest, head = digest_file(path)
    info = content.inspect(
        path, head=head, size=size, allowed=frozenset({kind}), label=label, limits=limits
    )
    return size, digest, info


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


def stored_body(
    src: content.Source,
    info: content.ContentInfo,
    *,
    size: int,
    sha256: str,
    category: str,
    keep_metadata: Collection[str],
    label: str,
    limits: content.ImageLimits,
    seal: bool,
    derive: Deriver,
) -> tuple[Body, content.ContentInfo]:
    """The document as the store will hold it, in one pass over ``src`` (the spool's file
    or bytes, ``size`` of them hashing to ``sha256``, which has passed ``content.inspect``):
    metadata stripped by the policy above and, with ``seal``, encrypted under a fresh data
    key, both streamed into one derived file. A spool file with nothing to strip and
    nothing to seal is stored as it is (the store moves it); bytes in memory are written
    once, into the derived file.

    The one exception is an orientation to apply: the pixels are decoded and re-encoded
    into a file of their own, which is inspected as any stored image is, then sealed.
    """
    planned = None
    if category not in keep_metadata and info.kind is not content.Kind.PDF:
        planned = metadata.plan_strip(src, info.kind)
    removed: tuple[str, ...] = ()
    if planned is not None and planned.stripped.changed:
        removed = planned.stripped.removed
        if planned.stripped.orientation_applied:
            turn = planned
            upright, _ = derive(
                lambda dst: _write(dst, lambda out: metadata.write_stripped(turn, out))
            )
            size, sha256, info = _reinspected(upright, info.kind, label, limits)
            # Said in the answer: re-encoded upright, so its bytes and sha256 are not the
            # ones the partner sent (README "Privacy by default").
            src, planned, removed = upright, None, (*removed, REENCODED)
    else:
        planned = None
    if planned is None and not seal and isinstance(src, Path):
        return Body(src, size, sha256, removed=removed), info
    key = envelope.new_data_key() if seal else None
    stripping = planned

    def write(out: BinaryIO) -> _Counted | None:
        sink: BinaryIO | envelope.SealingWriter = out
        if key is not None:
            sink = envelope.SealingWriter(out, key)
        counted = None
        if stripping is not None:
            counted = _Counted(sink)
            metadata.write_stripped(stripping, counted)  # type: ignore[arg-type]
        elif isinstance(src, bytes):
            sink.write(src)  # a small upload kept in memory: this is its one file
        else:
            with src.open("rb") as reader:
                while piece := reader.read(_PIECE):
                    sink.write(piece)
        if isinstance(sink, envelope.SealingWriter):
            sink.close()
        return counted

    path, counted = derive(lambda dst: _write(dst, write))
    if counted is not None:
        size, sha256 = counted.size, counted.hexdigest()
    return Body(path, size, sha256, key, removed), info


_PIECE = 1 << 16


class _Counted:
    """A writer that counts and hashes what passes through it to ``out``."""

    def __init__(self, out: BinaryIO | envelope.SealingWriter) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _write(dst: Path, fill: Callable[[BinaryIO], _T]) -> _T:
    with dst.open("wb") as out:
        return fill(out)
