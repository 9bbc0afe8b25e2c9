"""The DOKU-compatible partner endpoints (DESIGN 2) and GET /file/{id} (DESIGN 3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from berkas.api import schemas
from berkas.api.errors import error_response
from berkas.api.multipart import read_form
from berkas.api.schemas import ERRORS_OPENAPI
from berkas.core.errors import AuthenticationFailed, BerkasError, InvalidRequest, PayloadTooLarge
from berkas.core.models import Client
from berkas.services.ingest import Spool
from berkas.services.requests import IdempotentUploads, SignedRequest
from berkas.services.uploads import UploadResult, UploadTarget
from berkas.wiring import Container

PREFIX = "/adv-core-api/partner/v1.0"
MAX_JSON_BODY = 64 * 1024
# Multipart framing around the file: boundaries, part headers and the short text fields.
MULTIPART_OVERHEAD = 64 * 1024
# After refusing an oversize upload we keep reading (and dropping) this much more so the
# client, still sending, can read our 413 instead of a reset connection.
DRAIN_LIMIT = 64 * 1024 * 1024


def router(container: Container) -> APIRouter:
    """Routes bound to one container; thin: parse, call a use case, shape the answer."""
    api = APIRouter(prefix=PREFIX)

    @api.post(
        "/token",
        summary="Generate Token (DOKU)",
        response_model=schemas.TokenResponse,
        responses=ERRORS_OPENAPI,
        openapi_extra=schemas.TOKEN_BODY,
    )
    async def token(request: Request) -> Response:
        body = await _small_body(request)
        signed = _signed(request, body)
        client = await run_in_threadpool(container.requests.authenticate, signed)

        async def issue() -> Response:
            payload = _json_object(body)
            if payload.get("grant_type") != "client_credentials":
                raise InvalidRequest(
                    'grant_type must be "client_credentials".', code="grant_type_invalid"
                )
            issued = container.tokens.issue(client.client_id, payload.get("valid_time"))
            return JSONResponse({"token": issued.token})

        return await _once(container, client, signed, issue)

    @api.get(
        "/file",
        summary="File Requirements (DOKU)",
        responses={
            200: {
                "description": "The documents a merchant of this kind must provide "
                "(DOKU's shape; the example is PERSONAL / PERSEORANGAN / RETAIL / ID).",
                "content": {
                    "application/json": {
                        "example": container.requirements.lookup(
                            {
                                "businessType": "PERSONAL",
                                "businessLegalEntity": "PERSEORANGAN",
                                "brandBusinessLine": "RETAIL",
                                "businessContactNationality": "ID",
                            }
                        )
                    }
                },
            },
            **ERRORS_OPENAPI,
        },
        openapi_extra={"parameters": schemas.SIGNED_HEADERS + schemas.REQUIREMENT_QUERY},
    )
    async def requirements(request: Request) -> Response:
        signed = _signed(request, None)
        client = await run_in_threadpool(container.requests.authenticate, signed)

        async def lookup() -> Response:
            repeated = sorted(
                {k for k in request.query_params if len(request.query_params.getlist(k)) > 1}
            )
            if repeated:
                raise InvalidRequest(
                    f"query parameter {repeated[0]} is given more than once; send it once.",
                    code="parameter_repeated",
                )
            return JSONResponse(container.requirements.lookup(dict(request.query_params)))

        return await _once(container, client, signed, lookup)

    @api.post(
        "/file",
        summary="Upload File (DOKU)",
        response_model=schemas.UploadResponse,
        responses=ERRORS_OPENAPI,
        openapi_extra={"security": [{"bearer": []}], **schemas.UPLOAD_BODY},
    )
    async def upload(request: Request) -> Response:
        client = await _bearer(container, request)
        return await _upload(container, client, request)

    @api.get(
        "/file/{file_id}",
        summary="File metadata and a fresh link",
        response_model=schemas.FileMetadata,
        responses=ERRORS_OPENAPI,
        openapi_extra={"security": [{"bearer": []}]},
    )
    async def describe(file_id: str, request: Request) -> Response:
        client = await _bearer(container, request)
        view = await run_in_threadpool(container.files.describe, client, file_id)
        stored = view.stored
        return JSONResponse(
            {
                "id": stored.id,
                "category": stored.category,
                "code": stored.code,
                "content_type": stored.content_type,
                "size": stored.size,
                "sha256": stored.sha256,
                "width": stored.width,
                "height": stored.height,
                "created_at": stored.created_at.isoformat().replace("+00:00", "Z"),
                "link": view.link.url,
                "link_expires_at": _iso(view.link.expires_at),
            }
        )

    return api


async def _upload(container: Container, client: Client, request: Request) -> Response:
    uploads = container.uploads
    max_file = uploads.max_upload_bytes()
    raw_key = request.headers.get("idempotency-key") or request.headers.get("request-id")
    key = IdempotentUploads.check_key(raw_key) if raw_key is not None else None
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_file + DRAIN_LIMIT:
        raise PayloadTooLarge(
            f"request body is larger than {max_file // (1024 * 1024)} MB, the most any "
            "upload accepts per file.",
            code="file_too_large",
        )

    def open_spool(fields: dict[str, str]) -> Spool:
        # When category/code came before the file (the usual order), cap at their limit
        # while streaming; otherwise at the largest limit, tightened once they are known.
        try:
            target = uploads.target(fields.get("category"), fields.get("code"))
        except InvalidRequest:
            return uploads.open_spool()
        return uploads.open_spool(target.max_bytes, target.label)

    stream = request.stream()
    try:
        form = await read_form(
            request.headers.get("content-type"),
            stream,
            open_spool,
            max_body=max_file + MULTIPART_OVERHEAD,
        )
    except BerkasError:
        # Read (and drop) what the client is still sending, so it sees our error rather
        # than a reset connection.
        await _drain(stream)
        raise
    spool = form.spool
    try:
        target = uploads.target(form.fields.get("category"), form.fields.get("code"))
        file_url = (form.fields.get("file_url") or "").strip() or None
        if (spool is None) == (file_url is None):
            raise InvalidRequest(
                "send exactly one of file (the document) and file_url (a URL to fetch); "
                + ("both were sent." if spool is not None else "neither was sent."),
                code="file_or_url_required",
            )
        if key is not None:
            content = spool.sha256 if spool is not None else f"url:{file_url}"
            fingerprint = IdempotentUploads.fingerprint(
                target.category.value, target.code.value if target.code else None, content
            )
            first = await run_in_threadpool(container.idempotency.begin, client, key, fingerprint)
            if first is not None:
                return await _replay_upload(container, client, first)
        try:
            if file_url is not None:
                spool = uploads.open_spool(target.max_bytes, target.label)
                await uploads.fetch(target, file_url, spool)
                result = await _store(container, client, target, spool, None, fetched=True)
            else:
                assert spool is not None
                result = await _store(
                    container, client, target, spool, form.filename, fetched=False
                )
        except BaseException:
            if key is not None:
                await run_in_threadpool(container.idempotency.release, client, key)
            raise
        body = _upload_body(result)
        if key is not None:
            encoded = json.dumps(body).encode()
            await run_in_threadpool(container.idempotency.finish, client, key, encoded)
        return JSONResponse(body)
    finally:
        if spool is not None:
            spool.discard()


async def _replay_upload(container: Container, client: Client, first: bytes) -> Response:
    """The first upload's answer again, with a fresh link (the first may have expired)."""
    body = json.loads(first)
    view = await run_in_threadpool(container.files.describe, client, body["id"])
    body["link"] = view.link.url
    body["link_expires_at"] = _iso(view.link.expires_at)
    return JSONResponse(body, headers={"Idempotent-Replayed": "true"})


async def _store(
    container: Container,
    client: Client,
    target: UploadTarget,
    spool: Spool,
    filename: str | None,
    *,
    fetched: bool,
) -> UploadResult:
    return await run_in_threadpool(
        lambda: container.uploads.store(client, target, spool, filename=filename, fetched=fetched)
    )


async def _drain(stream: AsyncIterator[bytes]) -> None:
    drained = 0
    try:
        async for chunk in stream:
            drained += len(chunk)
            if drained > DRAIN_LIMIT:
                return
    except Exception:  # the client went away; the 413 stands regardless
        return


def _upload_body(result: UploadResult) -> dict[str, Any]:
    stored = result.stored
    return {
        "id": stored.id,
        "link": result.link.url,
        "category": stored.category,
        "code": stored.code,
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
        "link_expires_at": _iso(result.link.expires_at),
    }


async def _once(
    container: Container,
    client: Client,
    signed: SignedRequest,
    handler: Callable[[], Awaitable[Response]],
) -> Response:
    """Run a signed request at most once per Request-Id (DOKU's idempotency rule)."""
    await run_in_threadpool(container.requests.begin, client, signed)
    try:
        response = await handler()
    except BerkasError as exc:
        response = error_response(exc)
    except BaseException:
        await run_in_threadpool(container.requests.finish, client, signed, 500, b"")
        raise
    await run_in_threadpool(
        container.requests.finish, client, signed, response.status_code, bytes(response.body)
    )
    return response


async def _bearer(container: Container, request: Request) -> Client:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            f"Authorization: Bearer <token> is required; get a token from POST {PREFIX}/token.",
            code="token_missing",
        )
    return await run_in_threadpool(container.tokens.verify, token.strip())


def _signed(request: Request, body: bytes | None) -> SignedRequest:
    headers = request.headers
    return SignedRequest(
        client_id=headers.get("client-id"),
        request_id=headers.get("request-id"),
        timestamp=headers.get("request-timestamp"),
        signature=headers.get("signature"),
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        body=body,
    )


async def _small_body(request: Request) -> bytes:
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_JSON_BODY:
            raise PayloadTooLarge(
                f"request body is larger than {MAX_JSON_BODY // 1024} KB.", code="body_too_large"
            )
    return bytes(chunks)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    # ValueError covers JSONDecodeError, bad UTF-8 and Python's cap on integer digits
    # (CVE-2020-10735); RecursionError a body of deeply nested arrays.
    except (ValueError, RecursionError):
        raise InvalidRequest(
            'body must be a JSON object like {"grant_type": "client_credentials"}.',
            code="invalid_json",
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("body must be a JSON object.", code="invalid_json")
    return payload


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))
