"""``S3BlobStore``: blobs as objects in one bucket of an S3-compatible store (AWS S3,
Ceph RGW, MinIO), each written with one conditional PUT. Needs the ``s3`` extra."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest, Unavailable
from berkas.core.object_keys import MAX_KEY_LENGTH, duplicate_key, file_not_found, validate_key

log = logging.getLogger(__name__)

AddressingStyle = Literal["path", "virtual", "auto"]

# Bounded so a hung store costs a request seconds, not minutes: botocore's defaults are
# 60 s connect and read, with retries on top.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
MAX_ATTEMPTS = 3  # botocore "standard" mode: the first try plus two retries, with backoff

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})


@dataclass(frozen=True)
class S3Location:
    """Where the blobs go: a bucket, a key prefix in it, and how to reach the store."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: AddressingStyle = "auto"
    # The endpoint partners' browsers reach, when not the one nodes use (presigned links).
    public_endpoint_url: str | None = None

    @property
    def endpoint_shown(self) -> str:
        """The endpoint as operators may see it (no user info), for start-up errors and logs."""
        if self.endpoint_url is None:
            return f"AWS S3 ({self.region})"
        parsed = urlparse(self.endpoint_url)
        return f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")


class S3BlobStore:
    """Blobs in ``location.bucket`` under ``location.prefix`` (implements ``core.ports.BlobStore``).

    Credentials come from the standard AWS chain (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role). Errors raised to callers never
    name the endpoint, bucket or credentials (they can reach the wire through /readyz and
    uploads); the details go to the log.
    """

    def __init__(
        self,
        location: S3Location,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.location = location
        self._bucket = location.bucket
        self._prefix = f"{location.prefix}/" if location.prefix else ""
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            s3={"addressing_style": location.addressing_style},
            # SigV4 everywhere: botocore would presign with the deprecated SigV2 (HMAC-SHA1,
            # no region binding) for a custom endpoint otherwise.
            signature_version="s3v4",
        )
        # A client of its own session: thread-safe for the worker threads that call us, and
        # untouched by whatever default session another library configured.
        self._s3: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=location.endpoint_url,
            region_name=location.region,
            config=config,
        )
        # The conditional PUT gets one attempt: if a first try stored the object but its
        # answer was lost, botocore's retry would meet our own object (412) and the upload
        # would be taken for a key clash. A failed PUT is a 503; the partner's retry (with
        # an Idempotency-Key) is the retry.
        self._put: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=location.endpoint_url,
            region_name=location.region,
            config=config.merge(Config(retries={"mode": "standard", "total_max_attempts": 1})),
        )
        # SigV4 signs the Host, so a link for another endpoint must be signed for that
        # endpoint (rewriting a signed URL's host would invalidate it). Presigning is
        # local computation: this client never sends a request.
        self._signer: Any = (
            self._s3
            if location.public_endpoint_url is None
            else boto3.session.Session().client(
                "s3",
                endpoint_url=location.public_endpoint_url,
                region_name=location.region,
                config=config,
            )
        )

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Upload the file at ``path`` to ``key`` in one PUT; durable when this returns.

        The body is streamed from the open file (botocore reads it in chunks), never held
        in memory; one PUT takes up to 5 GiB, far over any category's cap. ``If-None-Match:
        *`` makes the store refuse an existing key atomically (RFC 9110 13.1.2; AWS since
        2024-08, Ceph RGW since long before: measured on 16.2, eight racing writers of one
        key get one 200 and seven 412). Raises ``Conflict`` (``duplicate_key``) when taken.
        """
        name = self._name(key)
        try:
            with open(path, "rb") as body:
                self._put.put_object(
                    Bucket=self._bucket,
                    Key=name,
                    Body=body,
                    ContentType=content_type,
                    IfNoneMatch="*",
                )
        except ClientError as exc:
            status, code = _status(exc), _code(exc)
            # 409 ConditionalRequestConflict: another conditional PUT of this key is in
            # flight (AWS); keys are unique per file, so that writer holds the key.
            if status == 412 or code in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise duplicate_key(key) from exc
            raise self._unavailable("put", exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable("put", exc) from exc

    def presign(self, key: str, *, content_type: str, filename: str, expires_in: int) -> str:
        """A SigV4 query-signed GET of ``key`` valid ``expires_in`` seconds (implements
        ``core.ports.LinkPresigner``).

        The response overrides are part of what is signed (AWS S3 API, GetObject
        ``response-*`` parameters), so the store itself refuses a link whose type, cache
        or disposition was altered, as it refuses an altered or expired signature: the
        store, not berkas, enforces these links (tested on Ceph RGW; moto would not).
        """
        return str(
            self._signer.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": self._name(key),
                    # The sniffed type, never the uploader's; KYC scans are never cached by
                    # shared caches (as proxy links: private, no-store).
                    "ResponseContentType": content_type,
                    "ResponseCacheControl": "private, no-store",
                    "ResponseContentDisposition": f'inline; filename="{filename}"',
                },
                ExpiresIn=expires_in,
            )
        )

    def open(
        self, key: str, chunk_size: int = 65536, *, first_size: int | None = None
    ) -> Iterator[bytes]:
        """Yield the bytes stored under ``key``; ``NotFound`` (``file_not_found``) if absent.

        The GET is sent here, before the first chunk, so absence is known before a caller
        starts its response.
        """
        for label, size in (("chunk_size", chunk_size), ("first_size", first_size)):
            if size is not None and size < 1:
                raise ValueError(f"{label} must be a positive number of bytes, got {size}")
        name = self._name(key)
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise file_not_found(key) from exc
            raise self._unavailable("get", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("get", exc) from exc
        return self._chunks(response["Body"], chunk_size, first_size)

    def delete(self, key: str) -> None:
        """Remove ``key``; an absent key is not an error (S3 answers 204 either way)."""
        name = self._name(key)
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("delete", exc) from exc

    def check(self) -> None:
        """Raise ``Unavailable`` unless the bucket answers a HEAD (for /readyz)."""
        try:
            self._s3.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("check", exc) from exc

    def require_bucket(self) -> None:
        """At start: raise ``Unavailable`` naming bucket and endpoint unless the bucket is
        there and ours. For operators (a terminal, a log), never for the wire."""
        where = f"S3 bucket {self._bucket!r} at {self.location.endpoint_shown}"
        try:
            self._s3.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            status = _status(exc)
            if status == 404 or _code(exc) in _NO_BUCKET:
                problem = "does not exist; create it with `berkas storage init`"
            elif status == 403:
                problem = "refuses these credentials (see AWS_ACCESS_KEY_ID and friends)"
            else:
                problem = f"answered {status} {_code(exc)}"
            raise Unavailable(f"{where} {problem}", code=Code.STORAGE_UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise Unavailable(
                f"{where} cannot be reached ({type(exc).__name__}); "
                "check BERKAS_S3_ENDPOINT_URL and the network",
                code=Code.STORAGE_UNAVAILABLE,
            ) from exc

    def create_bucket(self) -> bool:
        """Create the bucket; False when it already exists and is ours (idempotent)."""
        where = f"S3 bucket {self._bucket!r} at {self.location.endpoint_shown}"
        # Asked first: RGW (like AWS in us-east-1) answers 200 to re-creating one's own
        # bucket, so the CreateBucket answer alone cannot tell "created" from "was there".
        try:
            self.require_bucket()
        except Unavailable:
            pass
        else:
            return False
        arguments: dict[str, Any] = {"Bucket": self._bucket}
        if self.location.region != "us-east-1":
            # us-east-1 is the one region that refuses an explicit location constraint.
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.location.region}
        try:
            self._s3.create_bucket(**arguments)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return False
            if _code(exc) == "BucketAlreadyExists":
                raise Unavailable(
                    f"{where} already exists and belongs to someone else; choose another name",
                    code=Code.STORAGE_UNAVAILABLE,
                ) from exc
            raise Unavailable(
                f"{where} could not be created: {_status(exc)} {_code(exc)}",
                code=Code.STORAGE_UNAVAILABLE,
            ) from exc
        except BotoCoreError as exc:
            raise Unavailable(
                f"{where} cannot be reached ({type(exc).__name__})", code=Code.STORAGE_UNAVAILABLE
            ) from exc
        return True

    def _name(self, key: str) -> str:
        name = self._prefix + validate_key(key)
        if len(name) > MAX_KEY_LENGTH:
            raise InvalidRequest(
                f"storage key {key[:80]!r} is too long with the bucket prefix "
                f"({len(name)} characters; S3 takes at most {MAX_KEY_LENGTH}).",
                code=Code.INVALID_KEY,
            )
        return name

    def _chunks(self, body: Any, chunk_size: int, first_size: int | None) -> Iterator[bytes]:
        try:
            if first_size is not None:
                # StreamingBody.read(n) reads until n bytes or the end, as iter_chunks does.
                first = body.read(first_size)
                if not first:
                    return
                yield first
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable("get", exc) from exc
        finally:
            body.close()

    def _unavailable(self, operation: str, exc: Exception) -> Unavailable:
        # The detail (endpoint, bucket, the store's own words) is for the operator's log.
        log.warning(
            "S3 %s on bucket %r at %s failed: %s",
            operation,
            self._bucket,
            self.location.endpoint_shown,
            exc,
        )
        return Unavailable(
            "File storage is unreachable; try again later.", code=Code.STORAGE_UNAVAILABLE
        )


def _status(exc: ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
