"""``BerkasClient``: the partner SDK over a blocking ``httpx.Client``."""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import TypeVar, cast

import httpx

from berkas.client.calls import Calls
from berkas.client.flow import Flow, Lock, Outcome, Pump, Send, Sleep, Unlock
from berkas.client.listing import SyncListing
from berkas.client.models import (
    DryRunResult,
    FileEvents,
    FileInfo,
    Requirements,
    Token,
    UploadedFile,
)
from berkas.client.streams import FileInput, OnProgress, Sink
from berkas.core.catalogue import Category, DocumentCode

T = TypeVar("T")


class BerkasClient(Calls[httpx.Client, httpx.BaseTransport], SyncListing):
    """A partner's client for berkas (or DOKU's Partner file API).

    ``base_url`` is the server root (``https://berkas.example.com``); ``client_id`` and
    ``secret_key`` are the partner's DOKU credentials. ``transport`` replaces the
    network (tests pass an in-process app); ``token_minutes`` is the ``valid_time``
    asked for tokens (server default when None); ``clock`` is the time source for
    token freshness and request timestamps. ``token_cache`` is a file path: the token
    is kept there (0600) for the next process to reuse until shortly before it expires,
    as ``berkas partner`` does. Use as a context manager, or ``close()``.
    """

    _http_class = httpx.Client
    _token_lock: threading.Lock

    def _new_lock(self) -> threading.Lock:
        return threading.Lock()

    def token(self, valid_time: int | None = None) -> Token:
        """A bearer token (POST /token, DOKU-signed), reused until shortly before expiry.

        ``valid_time`` is in minutes; a different ``valid_time`` than the cached token's
        asks for a new one.
        """
        return self._run(self._session.token(valid_time))

    def requirements(
        self, business_type: str, legal_entity: str, brand_business_line: str, nationality: str
    ) -> Requirements:
        """Which documents a merchant of this kind must provide (GET /file, docs/design.md 2.3)."""
        return self._run(
            self._requirements.requirements(
                business_type, legal_entity, brand_business_line, nationality
            )
        )

    def upload(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None = None,
        filename: str | None = None,
        request_id: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> UploadedFile:
        """Upload a document (POST /file); ``code`` is required for DOCUMENT.

        ``file`` is a path (streamed from disk, never read whole into memory), the bytes,
        or a binary file object (sent from its start). With a ``request_id`` the upload
        is idempotent on the server and is retried after transient failures.
        """
        return self._run(
            self._uploads.upload(
                category,
                file,
                code=code,
                filename=filename,
                request_id=request_id,
                on_progress=on_progress,
            )
        )

    def upload_url(
        self,
        category: Category | str,
        url: str,
        *,
        code: DocumentCode | str | None = None,
        request_id: str | None = None,
    ) -> UploadedFile:
        """Have the server fetch ``url`` and store it as a document (``file_url``)."""
        return self._run(self._uploads.upload_url(category, url, code=code, request_id=request_id))

    def check(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None = None,
        filename: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> DryRunResult:
        """Dry-run an upload (berkas's ``Berkas-Dry-Run: true``): every check runs,
        nothing is stored.

        Takes what ``upload`` takes, less ``request_id`` (a dry run keeps nothing to
        repeat, so it is retried like a GET). Returns what would be stored: type, size,
        sha256, dimensions, the metadata that would be stripped, and ``duplicate_of``.
        A file ``upload`` would refuse raises the same error here.
        """
        return self._run(
            self._uploads.check(
                category, file, code=code, filename=filename, on_progress=on_progress
            )
        )

    def check_url(
        self, category: Category | str, url: str, *, code: DocumentCode | str | None = None
    ) -> DryRunResult:
        """Dry-run ``upload_url``: the server fetches and checks ``url``, stores nothing."""
        return self._run(self._uploads.check_url(category, url, code=code))

    def file(self, file_id: str) -> FileInfo:
        """Metadata of an uploaded file and a fresh 60-minute link (GET /file/{id})."""
        return self._run(self._files.file(file_id))

    def events(self, file_id: str) -> FileEvents:
        """The file's audit trail, oldest first (GET /file/{id}/events): uploads, links
        issued, opened and refused, revocations, deletion. Readable after deletion."""
        return self._run(self._files.events(file_id))

    def delete(self, file_id: str) -> None:
        """Delete the file, its bytes and its links (DELETE /file/{id}).

        Deleting it again is not an error; a file on legal hold raises ``ConflictError``
        (``file_on_hold``), someone else's ``NotFoundError``.
        """
        self._run(self._files.delete(file_id))

    def revoke_links(self, file_id: str) -> FileInfo:
        """Make every link issued so far stop working (POST /file/{id}/links/revoke);
        returns the metadata with a fresh link that works."""
        return self._run(self._files.revoke_links(file_id))

    def download(
        self, link: str, *, sha256: str | None = None, on_progress: OnProgress | None = None
    ) -> bytes:
        """The bytes behind a link (no token is sent: the link is the credential).

        With ``sha256`` (e.g. ``file(id).sha256``) the bytes must hash to it, else
        ``ChecksumMismatch``. ``on_progress(received, total_or_None)`` is called as the
        body arrives.
        """
        return self._run(self._files.download(link, sha256, on_progress))

    def download_to(
        self,
        link: str,
        path: str | os.PathLike[str] | Sink,
        *,
        sha256: str | None = None,
        overwrite: bool = True,
        on_progress: OnProgress | None = None,
    ) -> int:
        """Stream the bytes behind a link into ``path``; return the number written.

        ``path`` is a file path (written beside it and renamed when complete, so it
        never holds a partial or, with ``sha256``, an unverified download;
        ``overwrite=False`` refuses an existing file with ``FileExistsError``) or a
        binary stream such as ``sys.stdout.buffer`` (written as the body arrives, so not
        retried mid-body). ``sha256`` and ``on_progress`` are as for ``download``.
        """
        return self._run(self._files.download_to(link, path, sha256, overwrite, on_progress))

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> BerkasClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        held = False
        try:
            while True:
                action = flow.send(outcome)
                if isinstance(action, Lock):
                    self._token_lock.acquire()
                    held, outcome = True, None
                elif isinstance(action, Unlock):
                    held, outcome = False, None
                    self._token_lock.release()
                else:
                    outcome = self._perform(action)
        except StopIteration as done:
            return cast(T, done.value)
        finally:
            flow.close()
            if held:
                self._token_lock.release()

    def _perform(self, action: Send | Pump | Sleep) -> Outcome:
        if isinstance(action, Send):
            try:
                return self._http.send(action.request, stream=action.stream)
            except httpx.TransportError as exc:
                return exc
        if isinstance(action, Pump):
            try:
                for chunk in action.response.iter_bytes():
                    action.write(chunk)
            except httpx.TransportError as exc:
                return exc
            finally:
                action.response.close()
            return None
        time.sleep(action.seconds)
        return None
