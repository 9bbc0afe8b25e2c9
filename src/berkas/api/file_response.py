"""A download served from a local file: bytes stored as sent, on local disk (5.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from berkas.core.codes import Code
from berkas.core.errors import NotFound

# Read on a worker thread a piece at a time (anyio.open_file), sent as one body message:
# larger than Starlette FileResponse's 64 KiB, so a 5 MB file is 5 thread hops, not 80.
READ_BYTES = 1024 * 1024


class LocalFileResponse(StreamingResponse):
    """The file at ``path`` with exactly the headers given (no ETag, Last-Modified or
    Range handling that Starlette's ``FileResponse`` adds: a link answers the whole
    document, as the streamed answer does).

    A server that offers the ASGI ``http.response.pathsend`` extension (ASGI spec,
    "HTTP" extensions) is handed the path and sends the file itself (sendfile(2) in
    those that implement it); uvicorn does not offer it, so under ``berkas serve`` the
    file is read here in ``READ_BYTES`` pieces. The file is opened before the headers
    go out: a file removed since the row was read is a 404, not a cut body.
    """

    def __init__(self, path: Path, *, media_type: str, headers: Mapping[str, str]) -> None:
        self.path = path
        self._file: anyio.AsyncFile[bytes] | None = None
        super().__init__(self._pieces(), media_type=media_type, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "http.response.pathsend" in scope.get("extensions", {}):
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": "http.response.pathsend", "path": str(self.path)})
            return
        try:
            self._file = await anyio.open_file(self.path, "rb")
        except FileNotFoundError:
            raise NotFound("The linked file no longer exists.", code=Code.FILE_NOT_FOUND) from None
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._file.aclose()

    async def _pieces(self) -> AsyncIterator[bytes]:
        assert self._file is not None  # opened by __call__ before the body is iterated
        while piece := await self._file.read(READ_BYTES):
            yield piece
