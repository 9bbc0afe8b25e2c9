"""Small test doubles shared by unit and API tests: a settable clock, raw multipart bodies
and a streamed request body that records how much of it the server pulled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

BOUNDARY = "berkas-test-boundary"


class FakeClock:
    """A clock that stands still until a test moves it (set ``current`` or ``advance``).

    It is a ``berkas.core.ports.Clock`` (``now``), and calling it gives epoch seconds: the
    ``Callable[[], float]`` shape of ``time.time`` (the SDK's clock, a key ring's monotonic).
    It starts near the real time unless told otherwise, so third parties that read the
    real clock (PyJWT's exp check, a server's Request-Timestamp window) agree with it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.current

    def __call__(self) -> float:
        return self.current.timestamp()

    def advance(self, delta: timedelta) -> None:
        self.current += delta


Part = tuple[str, bytes | str] | tuple[str, bytes | str, str]


def multipart(*parts: Part, boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """A multipart/form-data body, byte for byte: parts in the order given.

    A part is ``(name, value)`` for a text field or ``(name, value, filename)`` for a
    file. ``close=False`` leaves out the closing boundary (a truncated upload).
    """
    out = bytearray()
    for part in parts:
        name, value = part[0], part[1]
        disposition = f'form-data; name="{name}"'
        if len(part) == 3:
            disposition += f'; filename="{part[2]}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if len(part) == 3:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n"
        out += value.encode() if isinstance(value, str) else value
        out += b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def multipart_type(boundary: str = BOUNDARY) -> str:
    return f"multipart/form-data; boundary={boundary}"


class StreamedBody:
    """A request body handed out ``chunk`` bytes at a time, recording every piece pulled.

    Give it to ``httpx`` as ``content=``: ``httpx.ASGITransport`` pulls a piece only when
    the app asks to ``receive`` one, so ``pulled`` is exactly what the app read.
    """

    def __init__(self, data: bytes, chunk: int = 1024) -> None:
        self.data = data
        self.chunk = chunk
        self.pulled: list[int] = []

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            piece = self.data[start : start + self.chunk]
            self.pulled.append(len(piece))
            yield piece
