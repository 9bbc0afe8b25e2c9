"""Documents encrypted at rest: chunked AES-256-GCM that streams in flat memory
(docs/design.md 6.6).

Each document gets its own random 256-bit data key; the object store holds only this
envelope, the database only the data key sealed under the master key. Deleting the row
destroys the key, so the object left in a backup of the store is noise (crypto-shredding).

The format is the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), as age
and Tink's streaming AEAD use it, over AES-256-GCM (NIST SP 800-38D) from
``cryptography``::

    header  = b"BRKE" || version (1 byte) || chunk size (u32 BE) || nonce prefix (7 bytes)
    body    = chunk_0 || chunk_1 || ... || chunk_n        each = AES-GCM ciphertext || tag
    nonce_i = nonce prefix || i (u32 BE) || last flag (0x01 on chunk_n, else 0x00)
    aad     = header

- Every chunk but the last holds exactly ``chunk size`` plaintext bytes; the last holds
  0 to ``chunk size`` (an empty document is one empty last chunk).
- The counter in the nonce makes reordering or dropping a chunk fail its tag, and the
  last flag makes cutting the envelope short at a chunk boundary fail too (STREAM's
  point: a truncated stream is not a valid shorter one).
- The header is the associated data of every chunk: a changed version or chunk size
  fails authentication instead of changing how the rest is read.
- A data key encrypts one document, so nonces cannot repeat across documents; the random
  prefix is defence in depth should a key ever be reused. 2**32 chunks bound a document
  to 256 TiB at the default chunk size, far past any cap.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"BRKE"
VERSION = 1
KEY_BYTES = 32
CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
_PREFIX_BYTES = 7
_HEADER = struct.Struct(">4sBI7s")
HEADER_BYTES = _HEADER.size
_MAX_CHUNKS = 2**32
# A hostile header must not make the reader buffer gigabytes before the first tag check.
_MAX_CHUNK_BYTES = 16 * 1024 * 1024


class EnvelopeError(ValueError):
    """The bytes are not an intact envelope under this key: altered, truncated, extended
    or sealed under another key. The message names the cause, never key material."""


def new_data_key() -> bytes:
    """A fresh data key from the OS CSPRNG."""
    return os.urandom(KEY_BYTES)


def sealed_size(plain_size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The envelope's length for ``plain_size`` bytes of plaintext."""
    chunks = max(1, -(-plain_size // chunk_bytes))
    return HEADER_BYTES + plain_size + chunks * TAG_BYTES


def encrypt_file(src: Path, dst: Path, key: bytes, *, chunk_bytes: int = CHUNK_BYTES) -> None:
    """Write ``src`` sealed under ``key`` to ``dst`` (created, or truncated), one chunk of
    memory at a time. ``dst`` is left complete but not fsynced: durability is the blob
    store's job, as for the spool."""
    _check_key(key)
    _check_chunk_bytes(chunk_bytes)
    with src.open("rb") as reader, dst.open("wb") as writer:
        sealing = SealingWriter(writer, key, chunk_bytes=chunk_bytes)
        while piece := reader.read(chunk_bytes):
            sealing.write(piece)
        sealing.close()


class SealingWriter:
    """Seals what is written to it into ``out`` as it arrives: the streaming side of
    ``encrypt_file``, so a document can be stripped and sealed in one pass (no clear copy
    on disk in between). ``close`` writes the last chunk; ``out`` stays open.

    A full chunk is held back until one more byte arrives: only then is it known not to
    be the last (the last flag is in its nonce), as ``decrypt`` holds it back to read it.
    """

    def __init__(self, out: BinaryIO, key: bytes, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        _check_key(key)
        _check_chunk_bytes(chunk_bytes)
        self._header = _HEADER.pack(MAGIC, VERSION, chunk_bytes, os.urandom(_PREFIX_BYTES))
        self._prefix = self._header[-_PREFIX_BYTES:]
        self._aead = AESGCM(key)
        self._chunk_bytes = chunk_bytes
        self._out = out
        self._pending = bytearray()
        self._index = 0
        self._closed = False
        out.write(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("the envelope is already closed")
        self._pending += data
        size = self._chunk_bytes
        if len(self._pending) > size:
            view = memoryview(self._pending)
            done = 0
            while len(self._pending) - done > size:
                self._seal(view[done : done + size], last=False)
                done += size
            view.release()
            del self._pending[:done]
        return len(data)

    def close(self) -> None:
        """Seal what is pending as the last chunk (an empty document: one empty chunk)."""
        if not self._closed:
            self._seal(memoryview(self._pending), last=True)
            self._pending = bytearray()
            self._closed = True

    def _seal(self, piece: memoryview, *, last: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise ValueError("the document is too large for one envelope")
        nonce = _nonce(self._prefix, self._index, last)
        self._out.write(self._aead.encrypt(nonce, bytes(piece), self._header))
        self._index += 1


def decrypt(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    """The plaintext of the envelope arriving in ``chunks`` (of any sizes), chunk by chunk.

    Every plaintext chunk yielded has passed its tag; ``EnvelopeError`` is raised at the
    first chunk that does not, or when the stream ends before its last chunk. A reader
    streaming to a client therefore never sends unauthenticated bytes, but may have sent
    the authenticated ones before an error: it must then cut the connection rather than
    end the response normally (a short body, not a complete-looking one).

    Pieces of exactly ``HEADER_BYTES``, then ``sealed_chunk_bytes()`` each (how a reader
    should ask the store for them) are opened as they arrive, never copied into a
    buffer; pieces of other sizes are re-cut first, at a copy per byte.
    """
    _check_key(key)
    aead = AESGCM(key)
    pending = bytearray()
    source = iter(chunks)
    header = _read_header(source, pending)
    chunk_bytes = struct.unpack_from(">I", header, 5)[0]
    prefix = header[-_PREFIX_BYTES:]
    sealed_bytes = chunk_bytes + TAG_BYTES
    index = 0
    # A full sealed chunk is the last one only if nothing follows it: it is held back
    # until at least one more byte has arrived (the last flag is in its nonce).
    held: bytes | None = None
    # The header's read may have brought chunks along: they go first.
    leftover = bytes(pending)
    pending.clear()
    for piece in itertools.chain((leftover,), source):
        if not piece:
            continue
        if held is not None:
            yield _open(aead, prefix, held, header, index=index, last=False)
            held = None
            index += 1
            if index >= _MAX_CHUNKS:
                raise EnvelopeError("the envelope has more chunks than its format allows")
        if not pending and len(piece) == sealed_bytes:
            held = bytes(piece)  # aligned: one sealed chunk as read, not re-buffered
            continue
        pending += piece
        while len(pending) > sealed_bytes:
            yield _open(
                aead, prefix, bytes(pending[:sealed_bytes]), header, index=index, last=False
            )
            del pending[:sealed_bytes]
            index += 1
            if index >= _MAX_CHUNKS:
                raise EnvelopeError("the envelope has more chunks than its format allows")
        if len(pending) == sealed_bytes:
            held = bytes(pending)
            pending.clear()
    if held is not None:
        yield _open(aead, prefix, held, header, index=index, last=True)
        return
    if len(pending) < TAG_BYTES:
        raise EnvelopeError("the envelope ends before its last chunk (truncated)")
    yield _open(aead, prefix, bytes(pending), header, index=index, last=True)


def sealed_chunk_bytes(chunk_bytes: int = CHUNK_BYTES) -> int:
    """The stored length of one full chunk: its plaintext and its tag."""
    return chunk_bytes + TAG_BYTES


def _read_header(source: Iterator[bytes], pending: bytearray) -> bytes:
    while len(pending) < HEADER_BYTES:
        piece = next(source, None)
        if piece is None:
            raise EnvelopeError("the stored object is too short to be an envelope")
        pending += piece
    header = bytes(pending[:HEADER_BYTES])
    del pending[:HEADER_BYTES]
    magic, version, chunk_bytes, _prefix = _HEADER.unpack(header)
    if magic != MAGIC:
        raise EnvelopeError("the stored object is not an envelope (no BRKE header)")
    if version != VERSION:
        raise EnvelopeError(f"envelope version {version} is not one this berkas reads")
    if not 0 < chunk_bytes <= _MAX_CHUNK_BYTES:
        raise EnvelopeError(f"envelope chunk size {chunk_bytes} is out of range")
    return header


def _open(aead: AESGCM, prefix: bytes, box: bytes, aad: bytes, *, index: int, last: bool) -> bytes:
    try:
        return aead.decrypt(_nonce(prefix, index, last), box, aad)
    except InvalidTag:
        where = "its last chunk" if last else f"chunk {index}"
        raise EnvelopeError(
            f"the envelope fails authentication at {where}: altered, truncated, extended "
            "or sealed under another data key"
        ) from None


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _check_chunk_bytes(chunk_bytes: int) -> None:
    if not 0 < chunk_bytes <= _MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be in 1..{_MAX_CHUNK_BYTES}, got {chunk_bytes}")


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"a data key is {KEY_BYTES} bytes, got {len(key)}")
