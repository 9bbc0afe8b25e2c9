"""POST /file (docs/design.md 2.4): stream the multipart body into a spool, hand it to the use case.

One upload crosses into the services three times: the bearer check, the spool for the
``file`` part (opened by the parser), and ``upload_file`` or ``upload_url``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from berkas.api import observe, openapi, schemas
from berkas.api.deps import BearerClient, CallerDep, ServicesDep
from berkas.api.multipart import read_form
from berkas.core.codes import Code
from berkas.core.errors import BerkasError, InvalidRequest, PayloadTooLarge
from berkas.core.models import Client
from berkas.core.wire import API_PREFIX
from berkas.services.bundle import Services
from berkas.services.spool import Spool

router = APIRouter(prefix=API_PREFIX, tags=["partner"])

# After refusing an upload we keep reading (and dropping) this much more so the client,
# still sending, can read our error instead of a reset connection.
DRAIN_LIMIT = 64 * 1024 * 1024


@router.post(
    "/file",
    summary="Upload File (DOKU)",
    response_model=schemas.UploadResponse | schemas.DryRunResponse,
    responses=openapi.UPLOAD_ERRORS,
    openapi_extra={"security": [{"bearer": []}], **openapi.UPLOAD_BODY},
)
async def upload(
    request: Request, client: BearerClient, caller: CallerDep, svc: ServicesDep
) -> Response:
    uploads = svc.uploads
    # A header sent empty is a key (refused as such), not an absent one: `or` would let
    # "Idempotency-Key:" upload without the retry safety its sender asked for.
    key = request.headers.get("idempotency-key")
    if key is None:
        key = request.headers.get("request-id")
    dry_run = _dry_run(request.headers.get("berkas-dry-run"))
    declared = request.headers.get("content-length")
    most = uploads.max_upload_bytes
    if declared is not None and declared.isdigit() and int(declared) > most + DRAIN_LIMIT:
        # Refused before a byte of the body is read: not even draining would help.
        raise PayloadTooLarge(
            f"request body is larger than {most // (1024 * 1024)} MB, the most any upload "
            "accepts per file.",
            code=Code.FILE_TOO_LARGE,
        )
    # The client's upload rate and a slot on this node, before a byte of the body is read
    # (a refusal drains nothing: reading it is what the limit saves); the slot is held
    # until the upload is handled, however that ends (README "Limits").
    with svc.limits.upload(client.client_id):
        stream = request.stream()
        try:
            form = await read_form(request.headers.get("content-type"), stream, uploads.open_spool)
            observe.note_upload(form.fields.get("category"), fetched=form.spool is None)
            if dry_run:
                return await _check(svc, client, form.fields, form.spool)
            if form.spool is not None:
                result = await uploads.upload_file(client, form.fields, form.spool, key, caller)
            else:
                with svc.limits.fetching(client.client_id):
                    result = await uploads.upload_url(client, form.fields, key, caller)
        except BerkasError:
            await _drain(stream)
            raise
    observe.note_stored(result.stored.size, replayed=result.replayed)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(schemas.UploadResponse.of(result).model_dump(mode="json"), headers=headers)


def _dry_run(value: str | None) -> bool:
    if value is None or value.strip().lower() == "false":
        return False
    if value.strip().lower() == "true":
        return True
    raise InvalidRequest(
        f"Berkas-Dry-Run is true (check and answer, store nothing) or false; got {value[:40]!r}.",
        code=Code.INVALID_DRY_RUN,
    )


async def _check(
    svc: Services, client: Client, fields: Mapping[str, str], spool: Spool | None
) -> Response:
    # The same checks, the same limits held, the same errors; nothing stored.
    if spool is not None:
        result = await svc.uploads.check_file(client, fields, spool)
    else:
        with svc.limits.fetching(client.client_id):
            result = await svc.uploads.check_url(client, fields)
    return JSONResponse(schemas.DryRunResponse.of(result).model_dump(mode="json"))


async def _drain(stream: AsyncIterator[bytes]) -> None:
    # Read (and drop) what the client is still sending, so it sees our error rather than
    # a reset connection; a body already read to its end yields nothing more.
    drained = 0
    try:
        async for chunk in stream:
            drained += len(chunk)
            if drained > DRAIN_LIMIT:
                return
    except Exception:  # the client went away, or the body was consumed; the error stands
        return
