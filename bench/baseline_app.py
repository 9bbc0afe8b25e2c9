"""The least an upload endpoint can do: stream the body to a temp file and fsync it.

berkas' upload is measured against this, so the ratio shows what parsing, hashing,
inspection, atomic storage and the metadata row cost on this machine today.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    fd, path = tempfile.mkstemp(prefix="baseline-")
    try:
        more = True
        while more:
            message = await receive()
            os.write(fd, message.get("body", b""))
            more = message.get("more_body", False)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"ok":true}'})
