"""``AsyncBerkasClient``: the partner SDK over ``httpx.AsyncClient`` (asyncio or trio)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import TypeVar, cast

# anyio is httpx's own async layer (a hard dependency), so sleeping through it keeps the
# client usable under asyncio and trio alike, as httpx.AsyncClient is.
import anyio
import httpx

from berkas.client.calls import Calls
from berkas.client.flow import Flow, Lock, Outcome, Pump, Send, Sleep, Unlock
from berkas.client.listing import AsyncListing
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


class AsyncBerkasClient(Calls[httpx.AsyncClient, httpx.AsyncBaseTransport], AsyncListing):
    """``BerkasClient`` with ``await``: the same arguments, methods and behaviour.

    ``transport`` is an ``httpx.AsyncBaseTransport``, e.g. ``httpx.ASGITransport(app)``
    to drive an in-process app. Use ``async with``, or ``await aclose()``.
    """

    _http_class = httpx.AsyncClient
    _token_lock: anyio.Lock

    def _new_lock(self) -> anyio.Lock:
        # Made outside any event loop and bound on first use, so under asyncio or trio.
        return anyio.Lock()

    async def token(self, valid_time: int | None = None) -> Token:
        """See ``BerkasClient.token``."""
        return await self._run(self._session.token(valid_time))

    async def requirements(
        self, business_type: str, legal_entity: str, brand_business_line: str, nationality: str
    ) -> Requirements:
        """See ``BerkasClient.requirements``."""
        flow = self._requirements.requirements(
            business_type, legal_entity, brand_business_line, nationality
        )
        return await self._run(flow)

    async def upload(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None = None,
        filename: str | None = None,
        request_id: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> UploadedFile:
        """See ``BerkasClient.upload`` (a file object is read on the event loop)."""
        flow = self._uploads.upload(
            category,
            file,
            code=code,
            filename=filename,
            request_id=request_id,
            on_progress=on_progress,
        )
        return await self._run(flow)

    async def upload_url(
        self,
        category: Category | str,
        url: str,
        *,
        code: DocumentCode | str | None = None,
        request_id: str | None = None,
    ) -> UploadedFile:
        """See ``BerkasClient.upload_url``."""
        return await self._run(
            self._uploads.upload_url(category, url, code=code, request_id=request_id)
        )

    async def check(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None = None,
        filename: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> DryRunResult:
        """See ``BerkasClient.check``."""
        flow = self._uploads.check(
            category, file, code=code, filename=filename, on_progress=on_progress
        )
        return await self._run(flow)

    async def check_url(
        self, category: Category | str, url: str, *, code: DocumentCode | str | None = None
    ) -> DryRunResult:
        """See ``BerkasClient.check_url``."""
        return await self._run(self._uploads.check_url(category, url, code=code))

    async def file(self, file_id: str) -> FileInfo:
        """See ``BerkasClient.file``."""
        return await self._run(self._files.file(file_id))

    async def events(self, file_id: str) -> FileEvents:
        """See ``BerkasClient.events``."""
        return await self._run(self._files.events(file_id))

    async def delete(self, file_id: str) -> None:
        """See ``BerkasClient.delete``."""
        await self._run(self._files.delete(file_id))

    async def revoke_links(self, file_id: str) -> FileInfo:
        """See ``BerkasClient.revoke_links``."""
        return await self._run(self._files.revoke_links(file_id))

    async def download(
        self, link: str, *, sha256: str | None = None, on_progress: OnProgress | None = None
    ) -> bytes:
        """See ``BerkasClient.download``."""
        return await self._run(self._files.download(link, sha256, on_progress))

    async def download_to(
        self,
        link: str,
        path: str | os.PathLike[str] | Sink,
        *,
        sha256: str | None = None,
        overwrite: bool = True,
        on_progress: OnProgress | None = None,
    ) -> int:
        """See ``BerkasClient.download_to``."""
        return await self._run(self._files.download_to(link, path, sha256, overwrite, on_progress))

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncBerkasClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        held = False
        try:
            while True:
                action = flow.send(outcome)
                if isinstance(action, Lock):
                    await self._token_lock.acquire()
                    held, outcome = True, None
                elif isinstance(action, Unlock):
                    held, outcome = False, None
                    self._token_lock.release()
                else:
                    outcome = await self._perform(action)
        except StopIteration as done:
            return cast(T, done.value)
        finally:
            flow.close()
            if held:
                self._token_lock.release()

    async def _perform(self, action: Send | Pump | Sleep) -> Outcome:
        if isinstance(action, Send):
            try:
                return await self._http.send(action.request, stream=action.stream)
            except httpx.TransportError as exc:
                return exc
        if isinstance(action, Pump):
            try:
                async for chunk in action.response.aiter_bytes():
                    action.write(chunk)
            except httpx.TransportError as exc:
                return exc
            finally:
                await action.response.aclose()
            return None
        await anyio.sleep(action.seconds)
        return None
