"""Encryption at rest on a real server, embedded and PostgreSQL + Ceph RGW (issue 11): the
store holds envelopes, never the document; the link gives the exact bytes; delete takes
the object and its key; an altered object or a key moved to another row opens nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from berkas.core import envelope
from tests.support import backstage, samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server


def _object(server: Server, request: pytest.FixtureRequest, answer: dict[str, Any]) -> str:
    """The name in the store of the object behind ``answer``'s link."""
    key = unquote(urlsplit(answer["link"]).path.removeprefix("/links/"))
    names = [n for n in backstage.stored_names(server, request) if n.endswith(key)]
    assert len(names) == 1, names
    return names[0]


def _data_key(server: Server, file_id: str) -> str:
    rows = backstage.query(server, "SELECT data_key FROM files WHERE id = :id", id=file_id)
    assert rows, file_id
    return str(rows[0][0])


def _drain(pieces: Iterator[bytes], into: bytearray) -> None:
    for piece in pieces:
        into += piece


def _windows(data: bytes, width: int = 24, step: int = 997) -> list[bytes]:
    """Runs of the plaintext spread over it, none of which an envelope may contain."""
    return [data[i : i + width] for i in range(0, len(data) - width, step)]


@pytest.mark.parametrize(
    "content",
    [samples.big_jpeg(300_000, seed=81), samples.pdf(pages=2), samples.png(seed=82)],
    ids=["jpeg-300k", "pdf", "png"],
)
def test_the_store_holds_no_plaintext_and_the_link_gives_the_exact_bytes(
    server: Server, partner: Partner, request: pytest.FixtureRequest, content: bytes
) -> None:
    filename = {b"%PDF": "d.pdf", b"\x89PNG": "d.png"}.get(content[:4], "d.jpg")
    answer = partner.upload(content, filename=filename).json()

    stored = backstage.stored_objects(server, request)[_object(server, request, answer)]

    assert stored.startswith(envelope.MAGIC)
    assert len(stored) == envelope.sealed_size(len(content))
    leaked = [window for window in _windows(content) if window in stored]
    assert not leaked, f"{len(leaked)} runs of the document are in the store"
    got = httpx.get(answer["link"], timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == content
    assert got.headers["content-length"] == str(len(content))
    assert answer["sha256"] == samples.sha256(content)
    # The data key is in the database sealed under the master key, bound to this row.
    assert _data_key(server, answer["id"]).startswith("sealed:v1:")


def test_after_delete_the_object_and_its_key_are_gone(
    server: Server, partner: Partner, request: pytest.FixtureRequest
) -> None:
    answer = partner.upload(samples.jpeg(seed=83)).json()
    name = _object(server, request, answer)
    wrapped = _data_key(server, answer["id"])

    deleted = partner.http.request("DELETE", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())

    assert deleted.status_code == 204, deleted.text
    assert name not in backstage.stored_names(server, request)
    # Crypto-shredding: no row holds the key any more, so a copy of the object taken
    # earlier (a backup of the store) opens for no one.
    held = backstage.query(server, "SELECT count(*) FROM files WHERE data_key = :k", k=wrapped)
    assert held == [(0,)]


_FIRST_CHUNK_END = envelope.HEADER_BYTES + envelope.CHUNK_BYTES + envelope.TAG_BYTES


def _damage(sealed: bytearray, how: str) -> None:
    if how == "flip-first-chunk":
        sealed[envelope.HEADER_BYTES + 10] ^= 0x01
    elif how == "flip-header":
        sealed[7] ^= 0x01  # the chunk size
    elif how == "cut-at-a-chunk-boundary":
        del sealed[_FIRST_CHUNK_END:]
    else:  # cut inside the second chunk
        del sealed[_FIRST_CHUNK_END + 100 :]


def _replace(
    server: Server, request: pytest.FixtureRequest, answer: dict[str, Any], how: str
) -> None:
    name = _object(server, request, answer)
    sealed = bytearray(backstage.stored_objects(server, request)[name])
    _damage(sealed, how)
    backstage.replace_object(server, request, name, bytes(sealed))


@pytest.mark.parametrize("damage", ["flip-first-chunk", "flip-header", "cut-at-a-chunk-boundary"])
def test_an_altered_object_is_refused_not_served(
    server: Server, partner: Partner, request: pytest.FixtureRequest, damage: str
) -> None:
    content = samples.big_jpeg(150_000, seed=84)
    answer = partner.upload(content).json()
    _replace(server, request, answer, damage)

    got = httpx.get(answer["link"], timeout=30)

    # Refused before any byte: the first chunk (or the header, or the last-chunk flag of
    # what is now the end) fails its tag, so the answer is still an error envelope.
    assert got.status_code == 500, got.text
    assert got.json()["error"]["code"] == "file_unreadable"
    assert "Traceback" not in got.text


def test_damage_past_the_first_chunk_cuts_the_download_short(
    server: Server, partner: Partner, request: pytest.FixtureRequest
) -> None:
    content = samples.big_jpeg(200_000, seed=87)
    answer = partner.upload(content).json()
    _replace(server, request, answer, "cut-inside-a-chunk")

    received = bytearray()
    with httpx.stream("GET", answer["link"]) as got:
        assert got.status_code == 200
        pieces = got.iter_bytes()
        with pytest.raises(httpx.RemoteProtocolError):
            _drain(pieces, received)
    # Headers were sent with the full Content-Length; the body stops at the last chunk
    # that authenticated, so no client takes what it got for the whole document.
    assert bytes(received) == content[: envelope.CHUNK_BYTES]


def test_a_data_key_moved_to_another_row_opens_nothing(server: Server, partner: Partner) -> None:
    first = partner.upload(samples.jpeg(seed=85)).json()
    second = partner.upload(samples.jpeg(seed=86)).json()
    # Someone with write access to the database points the second file at the first
    # file's key: the key is sealed for the first row only (AAD file:<id>:data_key).
    moved = backstage.execute(
        server,
        "UPDATE files SET data_key = :k WHERE id = :id",
        k=_data_key(server, first["id"]),
        id=second["id"],
    )
    assert moved == 1

    got = httpx.get(second["link"], timeout=30)

    assert got.status_code == 500, got.text
    assert got.json()["error"]["code"] == "file_unreadable"
    assert "Traceback" not in got.text
    assert httpx.get(first["link"], timeout=30).status_code == 200
