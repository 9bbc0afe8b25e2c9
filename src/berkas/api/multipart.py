"""Streams a multipart/form-data upload into a spool with python-multipart's push parser.

Starlette's ``Request.form()`` spools every part with no size cap and copies twice; here
each file chunk goes straight to the spool, which counts, hashes and caps as it writes.
The parser (and so the spool's disk writes and hashing) runs on a worker thread, fed in
batches of about a MiB, so the event loop only moves bytes.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest, PayloadTooLarge
from berkas.services.spool import Spool

FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096  # file_url is at most 2048 characters; the rest are short codes
MAX_PARTS = 16
MAX_HEADER_BYTES = 8192
# Everything around the file: boundaries, part headers, the short text fields and any
# preamble. The spool counts the file's bytes against its requirement; this bounds the rest.
MAX_FRAMING_BYTES = 64 * 1024
# The body is parsed on a worker thread in batches of about this size: a thread hop per
# 256 KiB rather than per network chunk. Each upload in flight holds up to about twice a
# batch (the chunks gathered, then joined), so the batch bounds a node's memory under
# many concurrent large uploads (32 at 1 MiB each held ~100 MB in make bench's 15 MB PNG
# row); the hops it adds are ~60 for 15 MB.
_BATCH_BYTES = 256 * 1024
# A whole body up to this size is parsed on the event loop: less work than the hop to a
# worker thread and back (~0.1 ms of python-multipart for 64 KiB), and the spool holds it
# in memory (its file starts at 512 KiB), so nothing blocks.
_INLINE_BYTES = 64 * 1024


@dataclass
class UploadForm:
    """The text fields, and the spooled ``file`` part if there was one (its filename is
    not kept: the bytes alone decide a document's type, docs/design.md 2.4)."""

    fields: dict[str, str] = field(default_factory=dict)
    spool: Spool | None = None


class _Collector:
    def __init__(self, open_spool: Callable[[dict[str, str]], Spool]) -> None:
        self.form = UploadForm()
        self._open_spool = open_spool
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._is_file = False
        self._data = bytearray()
        self._parts = 0
        self.ended = False

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequest(
                f"multipart body has more than {MAX_PARTS} parts; send category, code and "
                "one of file or file_url.",
                code=Code.MULTIPART_TOO_MANY_PARTS,
            )
        self._disposition = b""
        self._name = None
        self._is_file = False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        if len(self._header_name) > MAX_HEADER_BYTES:
            raise InvalidRequest(
                "a multipart part header name is too long.", code=Code.MULTIPART_MALFORMED
            )

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_HEADER_BYTES:
            raise InvalidRequest(
                "a multipart part header is too long.", code=Code.MULTIPART_MALFORMED
            )

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidRequest(
                'every multipart part needs Content-Disposition: form-data; name="..."',
                code=Code.MULTIPART_MALFORMED,
            )
        # RFC 7578 section 5.1: names (and filenames) are UTF-8. One that is not is
        # refused, not decoded with replacement: "caf\ufffd" would pass as an unknown
        # field, silently dropped, and the upload stored without what was meant.
        name = _utf8(raw_name, "a multipart part's name")
        if b"filename" in options:
            _utf8(options[b"filename"], f"the filename of part {name!r}")
        self._name = name
        self._is_file = b"filename" in options or name == FILE_FIELD
        if not self._is_file:
            return
        if name != FILE_FIELD:
            raise InvalidRequest(
                f"file part {name!r} is not accepted; send the document in the field 'file'.",
                code=Code.UNKNOWN_FIELD,
            )
        if self.form.spool is not None:
            raise InvalidRequest(
                "send exactly one 'file' part per upload.", code=Code.MULTIPLE_FILES
            )
        self.form.spool = self._open_spool(self.form.fields)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self.form.spool is not None
            self.form.spool.write(data[start:end])
            return
        if len(self._data) + (end - start) > MAX_FIELD_BYTES:
            raise InvalidRequest(
                f"field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes.",
                code=Code.FIELD_TOO_LONG,
            )
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._is_file or self._name is None:
            return
        if self._name in self.form.fields:
            raise InvalidRequest(
                f"field {self._name!r} appears more than once.", code=Code.DUPLICATE_FIELD
            )
        try:
            self.form.fields[self._name] = codecs.decode(bytes(self._data), "utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"field {self._name!r} is not valid UTF-8.", code=Code.FIELD_INVALID
            ) from None

    def on_end(self) -> None:
        self.ended = True


def _utf8(raw: bytes, what: str) -> str:
    try:
        return codecs.decode(raw, "utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"{what} is not valid UTF-8 (RFC 7578 section 5.1).", code=Code.FIELD_INVALID
        ) from None


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary, or a 400 saying what the upload must look like."""
    if not content_type:
        raise InvalidRequest(
            "Content-Type must be multipart/form-data with fields category, code and file "
            "or file_url.",
            code=Code.MULTIPART_REQUIRED,
        )
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data":
        raise InvalidRequest(
            f"Content-Type {media.decode('latin-1')!r} is not accepted; send multipart/form-data.",
            code=Code.MULTIPART_REQUIRED,
        )
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise InvalidRequest(
            "Content-Type multipart/form-data needs a boundary parameter (RFC 7578).",
            code=Code.MULTIPART_MALFORMED,
        )
    return boundary


async def read_form(
    content_type: str | None,
    stream: AsyncIterator[bytes],
    open_spool: Callable[[dict[str, str]], Spool],
) -> UploadForm:
    """Parse the whole body; on any error the spool (if any) is discarded and we re-raise."""
    boundary = boundary_of(content_type)
    collector = _Collector(open_spool)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": collector.on_part_begin,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_end": collector.on_end,
        },
    )
    seen = 0
    batch: list[bytes] = []
    batched = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= _BATCH_BYTES:
                await run_in_threadpool(parser.write, b"".join(batch))
                batch, batched = [], 0
                _check_framing(seen, collector.form)
        if seen <= _INLINE_BYTES:
            # A small body whole: parsed here, its bytes appended to a spool in memory
            # (services/spool.py keeps far more than this), no file, no thread hop.
            _finish(parser, b"".join(batch))
        else:
            await run_in_threadpool(_finish, parser, b"".join(batch))
        _check_framing(seen, collector.form)
        if not collector.ended:
            raise InvalidRequest(
                "multipart body ended before its closing boundary.", code=Code.MULTIPART_MALFORMED
            )
    except FormParserError as exc:
        _discard(collector.form)
        raise InvalidRequest(
            "the multipart/form-data body does not parse: it must start with --<boundary> "
            "(no preamble), give each part a header block, and end lines with CRLF "
            "(RFC 7578, RFC 2046 section 5.1.1).",
            code=Code.MULTIPART_MALFORMED,
        ) from exc
    except BaseException:
        _discard(collector.form)
        raise
    return collector.form


def _finish(parser: MultipartParser, rest: bytes) -> None:
    if rest:
        parser.write(rest)
    parser.finalize()


def _check_framing(seen: int, form: UploadForm) -> None:
    framing = seen - (form.spool.size if form.spool is not None else 0)
    if framing > MAX_FRAMING_BYTES:
        raise PayloadTooLarge(
            f"the multipart framing around the file (preamble, part headers and fields) is "
            f"over {MAX_FRAMING_BYTES // 1024} KB; send category, code and file or file_url.",
            code=Code.BODY_TOO_LARGE,
        )


def _discard(form: UploadForm) -> None:
    if form.spool is not None:
        form.spool.discard()
