"""The files resource: a stored file's metadata and fresh link (GET /file/{id}), its
lifecycle (delete, link revocation, audit trail: docs/design.md 6.1-6.3), and the bytes
behind a link, streamed and checked against their sha256 (docs/design.md 3.1)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

from berkas.client import models
from berkas.client.errors import ChecksumMismatch, ConnectionFailed
from berkas.client.flow import Flow, Sleep, attempt, pump
from berkas.client.models import FileEvents, FileInfo
from berkas.client.session import PREFIX, Session, response_json
from berkas.client.streams import Meter, OnProgress, Sink, content_length, put


class FileCalls:
    """The file metadata and download flows, over a ``Session``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def file(self, file_id: str) -> Flow[FileInfo]:
        response = yield from self._call("GET", file_id)
        return models.parse_file_info(response_json(response))

    def events(self, file_id: str) -> Flow[FileEvents]:
        response = yield from self._call("GET", file_id, "/events")
        return models.parse_file_events(response_json(response))

    def delete(self, file_id: str) -> Flow[None]:
        # Retried as a GET is: a repeat by the owner answers 204 again (docs/design.md
        # 6.1), so a delete whose answer was lost is safe to send twice.
        yield from self._call("DELETE", file_id)

    def revoke_links(self, file_id: str) -> Flow[FileInfo]:
        # Safe to repeat: a second revocation only retires the link the first one
        # answered with (docs/design.md 6.2), and its answer carries a working link.
        response = yield from self._call("POST", file_id, "/links/revoke")
        return models.parse_file_info(response_json(response))

    def _call(self, method: str, file_id: str, tail: str = "") -> Flow[httpx.Response]:
        """A bearer call on /file/{id}{tail} without a body."""
        # Quoted whole: an id is never allowed to add path segments ("../token").
        path = f"{PREFIX}/file/{quote(file_id, safe='')}{tail}"
        return (
            yield from self._session.bearer(
                lambda auth: self._session.build(method, path, headers={"Authorization": auth}),
                idempotent=True,
                rewindable=True,
            )
        )

    def download(
        self, link: str, sha256: str | None, on_progress: OnProgress | None
    ) -> Flow[bytes]:
        body = bytearray()
        yield from self._receive(link, body.extend, body.clear, sha256, on_progress)
        return bytes(body)

    def download_to(
        self,
        link: str,
        target: str | os.PathLike[str] | Sink,
        sha256: str | None,
        overwrite: bool,
        on_progress: OnProgress | None,
    ) -> Flow[int]:
        if not isinstance(target, str | os.PathLike):
            # A stream (stdout, a socket): bytes already written cannot be taken back,
            # so a body that breaks off is not retried, and a bad checksum is reported
            # after the fact.
            size, _ = yield from self._receive(link, target.write, None, sha256, on_progress)
            return size
        path = Path(target)
        # Written beside the target and renamed when complete (and verified), so
        # ``path`` never holds a partial or corrupted download.
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with partial.open("wb") as sink:

                def rewind() -> None:
                    sink.seek(0)
                    sink.truncate()

                size, _ = yield from self._receive(link, sink.write, rewind, sha256, on_progress)
                sink.flush()
                os.fsync(sink.fileno())
            put(partial, path, overwrite=overwrite)
            return size
        finally:
            partial.unlink(missing_ok=True)

    def _receive(
        self,
        link: str,
        write: Callable[[bytes], object],
        rewind: Callable[[], None] | None,
        sha256: str | None,
        on_progress: OnProgress | None,
    ) -> Flow[tuple[int, str]]:
        """Stream a link's body into ``write``; return (size, sha256 hex).

        No Authorization header: a link is its own credential, and it may point at
        another host (a CDN, a proxy) that must never see the partner's bearer token. A
        body that breaks off is fetched again from the start after ``rewind`` (none: not
        retried). With ``sha256`` the digest must match or ``ChecksumMismatch`` raises.
        """
        tries = 0
        while True:
            response = yield from attempt(
                lambda: self._session.build("GET", link),
                self._session.retry,
                idempotent=True,
                stream=True,
            )
            meter = Meter(write, content_length(response), on_progress)
            failure = yield from pump(response, meter)
            if failure is None:
                actual = meter.digest.hexdigest()
                if sha256 is not None and actual != sha256.lower():
                    raise ChecksumMismatch(sha256.lower(), actual, meter.received)
                return meter.received, actual
            delay = None if rewind is None else self._session.retry.delay(tries)
            if delay is None:
                raise ConnectionFailed(
                    f"download broke off after {meter.received} bytes: {failure!r}"
                ) from failure
            assert rewind is not None
            rewind()
            tries += 1
            yield Sleep(delay)
