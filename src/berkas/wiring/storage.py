"""The blob store a ``BERKAS_STORAGE_URL`` names (local directory, S3 bucket, memory), its
presigner, and ``berkas storage init``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.config import Settings, s3_bucket_and_prefix
from berkas.core.ports import BlobStore, LinkPresigner

if TYPE_CHECKING:
    from berkas.adapters.storage.s3 import S3BlobStore


def local_root(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    # file:///abs/path only: a host part (file://relative/path) would silently drop
    # the first segment and store documents somewhere else entirely.
    if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
        raise ValueError(f"BERKAS_STORAGE_URL {url!r} must name an absolute path: file:///abs/path")
    return Path(parsed.path)


def init_storage(settings: Settings) -> str:
    """Create the blob store's bucket or directory if it is missing (idempotent); returns
    what was done, for ``berkas storage init``. Raises ``Unavailable`` naming the store."""
    url = settings.resolved_storage_url
    if is_s3(url):
        store = s3_store(settings)
        where = f"S3 bucket {store.location.bucket!r} at {store.location.endpoint_shown}"
        return f"created {where}" if store.create_bucket() else f"{where} already exists"
    local = local_root(url)
    if local is not None:
        existed = local.is_dir()
        LocalBlobStore(local, create=True)
        return f"storage directory {local} {'already exists' if existed else 'created'}"
    return f"storage {url} needs no set-up"


def is_s3(url: str) -> bool:
    return urlparse(url).scheme == "s3"


def s3_store(settings: Settings) -> S3BlobStore:
    try:
        # Imported only for s3:// so that boto3 stays an optional extra.
        from berkas.adapters.storage.s3 import S3BlobStore, S3Location  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(
            f"BERKAS_STORAGE_URL {settings.resolved_storage_url!r} needs boto3, which is not "
            f"installed ({exc}); pip install 'berkas[s3]'"
        ) from None
    bucket, prefix = s3_bucket_and_prefix(settings.resolved_storage_url)
    return S3BlobStore(
        S3Location(
            bucket=bucket,
            prefix=prefix,
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
    url = settings.resolved_storage_url
    local = local_root(url)
    if local is not None:
        return LocalBlobStore(local, create=False)
    if urlparse(url).scheme == "memory":
        return MemoryBlobStore()
    if is_s3(url):
        return s3_store(settings)
    raise ValueError(
        f"BERKAS_STORAGE_URL scheme {urlparse(url).scheme!r} is not supported; "
        "use file:///abs/path or s3://bucket/prefix"
    )
