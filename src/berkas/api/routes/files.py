"""Reading stored files back and their lifecycle (docs/design.md 3.1, 6): metadata with a
fresh link, the bytes behind a link, deletion, revocation and the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from berkas.api import openapi, openapi_listing, schemas
from berkas.api.deps import BearerClient, CallerDep, ServicesDep
from berkas.api.file_response import LocalFileResponse
from berkas.api.threads import each_in_thread, in_thread
from berkas.core.codes import Code
from berkas.core.errors import PermissionDenied
from berkas.core.listing import parse_query
from berkas.core.wire import API_PREFIX

router = APIRouter()


@router.get(
    f"{API_PREFIX}/file/{{file_id}}",
    summary="File metadata and a fresh link",
    tags=["partner"],
    response_model=schemas.FileMetadata,
    responses=openapi.DESCRIBE_ERRORS,
    openapi_extra={"security": [{"bearer": []}]},
)
async def describe(
    file_id: str, client: BearerClient, caller: CallerDep, svc: ServicesDep
) -> Response:
    view = await in_thread(svc.files.describe, client, file_id, caller)
    return JSONResponse(schemas.FileMetadata.of(view).model_dump(mode="json"))


@router.get(
    f"{API_PREFIX}/files",
    summary="List your files, newest first",
    description="Your files (never another partner's), newest first in (created_at, id) "
    "order, a page at a time with Stripe's cursor pagination: pass the last id of a page "
    "as starting_after for the next one while has_more is true. Deleted files are not "
    "listed; no link is issued (GET /file/{id} gives one).",
    tags=["partner"],
    response_model=schemas.FileList,
    responses={
        200: {"content": {"application/json": {"example": openapi_listing.LIST_EXAMPLE}}},
        **openapi.LIST_ERRORS,
    },
    openapi_extra={"security": [{"bearer": []}], "parameters": openapi_listing.LIST_QUERY},
)
async def list_files(request: Request, client: BearerClient, svc: ServicesDep) -> Response:
    params = request.query_params
    query = parse_query({name: params.getlist(name) for name in params})
    page = await run_in_threadpool(svc.files.list_own, client, query)
    return JSONResponse(schemas.FileList.of(page).model_dump(mode="json"))


@router.get(
    f"{API_PREFIX}/file/{{file_id}}/events",
    summary="The file's audit trail",
    tags=["partner"],
    response_model=schemas.FileEvents,
    responses=openapi.DESCRIBE_ERRORS,
    openapi_extra={"security": [{"bearer": []}]},
)
async def events(file_id: str, client: BearerClient, svc: ServicesDep) -> Response:
    trail = await run_in_threadpool(svc.files.events, client, file_id)
    return JSONResponse(schemas.FileEvents.of(file_id, trail).model_dump(mode="json"))


@router.delete(
    f"{API_PREFIX}/file/{{file_id}}",
    summary="Delete a file, its bytes and its links",
    tags=["partner"],
    status_code=204,
    response_class=Response,
    responses=openapi.DELETE_RESPONSES,
    openapi_extra={"security": [{"bearer": []}]},
)
async def delete(
    file_id: str, client: BearerClient, caller: CallerDep, svc: ServicesDep
) -> Response:
    await run_in_threadpool(svc.files.delete, client, file_id, caller)
    return Response(status_code=204)


@router.post(
    f"{API_PREFIX}/file/{{file_id}}/links/revoke",
    summary="Revoke every link issued so far",
    tags=["partner"],
    response_model=schemas.FileMetadata,
    responses=openapi.DESCRIBE_ERRORS,
    openapi_extra={"security": [{"bearer": []}]},
)
async def revoke_links(
    file_id: str, client: BearerClient, caller: CallerDep, svc: ServicesDep
) -> Response:
    view = await run_in_threadpool(svc.files.revoke_links, client, file_id, caller)
    return JSONResponse(schemas.FileMetadata.of(view).model_dump(mode="json"))


@router.get(
    "/links/{key:path}",
    summary="Download through a signed link",
    tags=["links"],
    response_class=Response,
    responses=openapi.LINK_RESPONSES,
    openapi_extra=openapi.LINK_OPENAPI,
)
async def download(key: str, request: Request, caller: CallerDep, svc: ServicesDep) -> Response:
    expires = request.query_params.get("expires")
    signature = request.query_params.get("signature")
    if expires is None or signature is None:
        raise PermissionDenied(
            "this link is incomplete; ask the API for a fresh one (GET /file/{id}).",
            code=Code.LINK_INVALID,
        )
    opened = await in_thread(svc.files.download, key, expires, signature, caller)
    stored = opened.stored
    extension = stored.key.rsplit(".", 1)[-1]
    headers = {
        "Content-Length": str(stored.size),
        # The bytes are KYC documents: never cached by shared caches, never sniffed.
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{stored.id}.{extension}"',
    }
    if opened.path is not None:  # stored as sent, in a local file: sent from that file
        return LocalFileResponse(opened.path, media_type=stored.content_type, headers=headers)
    return StreamingResponse(
        each_in_thread(opened.chunks), media_type=stored.content_type, headers=headers
    )
