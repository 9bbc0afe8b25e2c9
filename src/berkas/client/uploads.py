"""The uploads resource: POST /file with a file or a ``file_url``, stored or dry-run
(docs/design.md 2.4, 3.2, 6.7)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, TypeVar

import httpx

from berkas.client import models
from berkas.client.errors import InvalidRequestError
from berkas.client.flow import Flow
from berkas.client.models import DryRunResult, UploadedFile
from berkas.client.session import PREFIX, Part, Session, response_json
from berkas.client.streams import Counted, FileInput, OnProgress, file_part
from berkas.core.catalogue import Category, DocumentCode, did_you_mean
from berkas.core.codes import Code, ErrorType

# berkas's dry-run switch on POST /file; DOKU does not know it.
DRY_RUN_HEADER = "Berkas-Dry-Run"

E = TypeVar("E", Category, DocumentCode)


class UploadCalls:
    """The upload and dry-run flows, over a ``Session``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def upload(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None,
        filename: str | None,
        request_id: str | None,
        on_progress: OnProgress | None = None,
    ) -> Flow[UploadedFile]:
        body = yield from self._post_file(
            category,
            file,
            code=code,
            filename=filename,
            request_id=request_id,
            on_progress=on_progress,
            dry_run=False,
        )
        return models.parse_uploaded(body)

    def check(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None,
        filename: str | None,
        on_progress: OnProgress | None = None,
    ) -> Flow[DryRunResult]:
        body = yield from self._post_file(
            category,
            file,
            code=code,
            filename=filename,
            request_id=None,
            on_progress=on_progress,
            dry_run=True,
        )
        return models.parse_dry_run(body)

    def upload_url(
        self,
        category: Category | str,
        url: str,
        *,
        code: DocumentCode | str | None,
        request_id: str | None,
    ) -> Flow[UploadedFile]:
        body = yield from self._post_url(
            category, url, code=code, request_id=request_id, dry_run=False
        )
        return models.parse_uploaded(body)

    def check_url(
        self, category: Category | str, url: str, *, code: DocumentCode | str | None
    ) -> Flow[DryRunResult]:
        body = yield from self._post_url(category, url, code=code, request_id=None, dry_run=True)
        return models.parse_dry_run(body)

    def _post_file(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None,
        filename: str | None,
        request_id: str | None,
        on_progress: OnProgress | None,
        dry_run: bool,
    ) -> Flow[Any]:
        """POST /file with a ``file`` part: an upload, or its dry run; the answer's JSON."""
        with ExitStack() as stack:
            name, content, rewindable = file_part(file, filename, stack)
            if on_progress is not None:
                content = Counted.around(content, on_progress)
            parts = [*_fields(category, code), ("file", (name, content, None))]
            response = yield from self._post_parts(
                parts, request_id, rewindable=rewindable, dry_run=dry_run
            )
        return response_json(response)

    def _post_url(
        self,
        category: Category | str,
        url: str,
        *,
        code: DocumentCode | str | None,
        request_id: str | None,
        dry_run: bool,
    ) -> Flow[Any]:
        """POST /file with ``file_url``: the server fetches (upload or dry run)."""
        parts = [*_fields(category, code), ("file_url", (None, url, None))]
        response = yield from self._post_parts(parts, request_id, rewindable=True, dry_run=dry_run)
        return response_json(response)

    def _post_parts(
        self,
        parts: list[tuple[str, Part]],
        request_id: str | None,
        *,
        rewindable: bool,
        dry_run: bool,
    ) -> Flow[httpx.Response]:
        def build(auth: str) -> httpx.Request:
            headers = {"Authorization": auth}
            if request_id is not None:
                # docs/design.md 3.2: an upload with a Request-Id is idempotent on the server.
                headers["Request-Id"] = request_id
            if dry_run:
                # berkas only: every check runs; nothing is stored, no Request-Id kept.
                headers[DRY_RUN_HEADER] = "true"
            return self._session.build("POST", f"{PREFIX}/file", headers=headers, files=parts)

        # Without a Request-Id a repeat could store the file twice, so only failures
        # before any byte was sent are retried (see ``flow.attempt``); a dry run stores
        # nothing, so sending it again is as harmless as a GET.
        safe = request_id is not None or dry_run
        return (
            yield from self._session.bearer(
                build, idempotent=safe and rewindable, rewindable=rewindable
            )
        )


def _fields(category: Category | str, code: DocumentCode | str | None) -> list[tuple[str, Part]]:
    kind = choice("category", category, Category)
    # (None, value) parts: the body stays multipart/form-data even without a file, as
    # DOKU's upload requires; text parts before the file let the server apply the
    # category's size cap while streaming.
    fields: list[tuple[str, Part]] = [("category", (None, kind.value, None))]
    if code is not None:
        # Only DOCUMENT reads a code; any other category ignores it, as DOKU does
        # (docs/design.md 2.4), so it is sent as given.
        value = choice("code", code, DocumentCode).value if kind is Category.DOCUMENT else code
        fields.append(("code", (None, str(value), None)))
    return fields


def choice(field: str, value: E | str, kind: type[E]) -> E:
    """``value`` as a member of ``kind``, case ignored (``"document"`` is DOCUMENT, as
    the CLI's ``--category document`` is); else ``InvalidRequestError`` with the code
    the server would answer (``category_invalid``, ``code_invalid``), raised before
    anything is sent, naming the nearest members ("did you mean KTP?").
    """
    if isinstance(value, kind):
        return value
    text = str(value)
    try:
        return kind(text.strip().upper())
    except ValueError:
        pass
    names = [member.value for member in kind]
    hint = did_you_mean(text, names)
    if hint is None:
        hint = (
            f"one of {', '.join(names)}"
            if kind is Category
            else f"DocumentCode lists the {len(names)} codes; requirements() names those "
            "a merchant needs"
        )
    code = Code.CATEGORY_INVALID if kind is Category else Code.CODE_INVALID
    noun = "a category" if kind is Category else "a document code"
    raise InvalidRequestError(
        code.status,
        code.value,
        f"{field} {text!r} is not {noun}; {hint}",
        ErrorType.INVALID_REQUEST.value,
    )
