"""The blob store ``BERKAS_STORAGE_URL`` names (``Settings.storage``: a local directory, an
S3 bucket, memory), its presigner, and ``berkas storage init``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from berkas import install_hint
from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.config import Settings
from berkas.core.ports import BlobStore, LinkPresigner
from berkas.wiring.datadir import refuse_foreign_owner

if TYPE_CHECKING:
    from berkas.adapters.storage.s3 import S3BlobStore


def init_storage(settings: Settings) -> str:
    """Create the blob store's bucket or directory if it is missing (idempotent); returns
    what was done, for ``berkas storage init``. Raises ``Unavailable`` naming the store."""
    storage = settings.storage
    if storage.scheme == "s3":
        store = s3_store(settings)
        where = f"S3 bucket {store.location.bucket!r} at {store.location.endpoint_shown}"
        return f"created {where}" if store.create_bucket() else f"{where} already exists"
    if storage.root is not None:
        refuse_foreign_owner(settings)  # the default store is in the data dir
        existed = storage.root.is_dir()
        LocalBlobStore(storage.root, create=True)
        return f"storage directory {storage.root} {'already exists' if existed else 'created'}"
    return f"storage {storage.url} needs no set-up"


def s3_store(settings: Settings) -> S3BlobStore:
    try:
        # Imported only for s3:// so that boto3 stays an optional extra.
        from berkas.adapters.storage.s3 import S3BlobStore, S3Location  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(
            f"BERKAS_STORAGE_URL {settings.resolved_storage_url!r} needs boto3, which is not "
            f"installed ({exc}); {install_hint('s3')}"
        ) from None
    storage = settings.storage
    return S3BlobStore(
        S3Location(
            bucket=storage.bucket,
            prefix=storage.prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            addressing_style=settings.s3_addressing_style,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    )


def presigner(settings: Settings, blobs: BlobStore) -> LinkPresigner | None:
    if settings.link_mode != "presigned":
        return None
    # Config allows presigned only with an s3:// store, whose adapter signs its own URLs.
    if not isinstance(blobs, LinkPresigner):
        raise ValueError("BERKAS_LINK_MODE=presigned needs an S3 store (BERKAS_STORAGE_URL=s3://…)")
    return blobs


def blob_store(settings: Settings) -> BlobStore:
    storage = settings.storage
    if storage.scheme == "file":
        assert storage.root is not None
        return LocalBlobStore(storage.root, create=False)
    if storage.scheme == "memory":
        return MemoryBlobStore()
    return s3_store(settings)
