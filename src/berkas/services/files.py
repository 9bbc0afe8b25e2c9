"""Reading stored files back: metadata with a fresh link, and bytes behind a link."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from berkas.core.codes import Code
from berkas.core.errors import NotFound
from berkas.core.ids import is_file_id
from berkas.core.models import Client, StoredFile
from berkas.core.ports import BlobStore, FileRepository
from berkas.services.links import IssuedLink, LinkService


@dataclass(frozen=True, slots=True)
class FileView:
    stored: StoredFile
    link: IssuedLink


class FileService:
    """A partner sees only its own files; a link holder sees exactly one object."""

    def __init__(self, files: FileRepository, blobs: BlobStore, links: LinkService) -> None:
        self._files = files
        self._blobs = blobs
        self._links = links

    def describe(self, client: Client, file_id: str) -> FileView:
        """Metadata and a fresh link; 404 for ids that are absent or not this client's."""
        stored = self._files.get(file_id)
        # Another partner's id answers exactly like a missing one: existence is not revealed.
        if stored is None or stored.client_id != client.client_id:
            shown = repr(file_id) if is_file_id(file_id) else "of that form"
            raise NotFound(
                f"No file with id {shown}; ids look like DCM-0001-1732700000000.",
                code=Code.FILE_NOT_FOUND,
            )
        return FileView(stored=stored, link=self._links.issue(stored))

    def open_link(
        self, key: str, expires: str, signature: str
    ) -> tuple[StoredFile, Iterator[bytes]]:
        """Check the link, then stream the exact stored bytes."""
        self._links.check(key, expires, signature)
        stored = self._files.get_by_key(key)
        if stored is None:
            raise NotFound("The linked file no longer exists.", code=Code.FILE_NOT_FOUND)
        return stored, self._blobs.open(key)
